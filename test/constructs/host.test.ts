import { Testing, TerraformStack } from 'cdktf';
import { DomainType, Host, HostState, Size } from '../lib';

function synthError(build: (stack: TerraformStack) => void, context?: Record<string, unknown>): string {
  const app = Testing.app({ context });
  const stack = new TerraformStack(app, 'test');
  build(stack);
  try {
    app.synth();
  } catch (err) {
    return String(err);
  }
  return '';
}

describe('Host', () => {
  test('configures its own aliased provider, a dir pool and an isolated network without forwarding', () => {
    const app = Testing.app();
    const stack = new TerraformStack(app, 'test');
    new Host(stack, 'kvm1', { uri: 'qemu+ssh://admin@kvm1/system', domainType: DomainType.QEMU });
    new Host(stack, 'kvm2', { uri: 'qemu+ssh://admin@kvm2/system' });
    const json = JSON.parse(Testing.synth(stack));
    expect(json.provider.libvirt).toEqual([
      { alias: 'kvm1', uri: 'qemu+ssh://admin@kvm1/system' },
      { alias: 'kvm2', uri: 'qemu+ssh://admin@kvm2/system' },
    ]);
    const pools = Object.values<any>(json.resource.libvirt_pool);
    expect(pools).toContainEqual(expect.objectContaining({ name: 'cdktf-local', type: 'dir', target: { path: '/var/lib/libvirt/images/kvm1' }, provider: 'libvirt.kvm1' }));
    const networks = Object.values<any>(json.resource.libvirt_network);
    expect(networks.map((n) => [n.name, n.mode])).toEqual([['kvm1-isolated', 'none'], ['kvm2-isolated', 'none']]);
    expect(json.terraform.required_providers.libvirt).toEqual({ source: 'dmacvicar/libvirt', version: '0.8.3' });
  });

  test('rejects a 32-bit host, a bad name and impossible capacity, all at once', () => {
    const message = synthError((stack) => {
      new Host(stack, 'Old_Box', { architecture: 'i686', capacity: { cores: 2, memory: Size.gibibytes(4), reservedCores: 2, reservedMemory: Size.gibibytes(4) } });
    });
    expect(message).toContain("[test/Old_Box] host name 'Old_Box' must start with a letter");
    expect(message).toContain("[test/Old_Box] host architecture 'i686' is not 64-bit");
    expect(message).toContain('capacity.reservedCores is 2; it must be a whole number below capacity.cores (2)');
    expect(message).toContain('capacity.reservedMemory (4 GiB) leaves no memory of 4 GiB for guests');
  });

  test('a context value overrides the declared state for emergencies', () => {
    const app = Testing.app({ context: { 'libvirt-cluster:host-state:kvm1': 'failed' } });
    const stack = new TerraformStack(app, 'test');
    const kvm1 = new Host(stack, 'kvm1', { state: HostState.ACTIVE });
    const kvm2 = new Host(stack, 'kvm2', { state: HostState.MAINTENANCE });
    expect(kvm1.state).toBe(HostState.FAILED);
    expect(kvm2.state).toBe(HostState.MAINTENANCE);
    expect(synthError(() => undefined, { 'libvirt-cluster:host-state:kvm1': 'broken' })).toBe('');
    const bad = synthError((s) => new Host(s, 'kvm1'), { 'libvirt-cluster:host-state:kvm1': 'broken' });
    expect(bad).toContain("context libvirt-cluster:host-state:kvm1='broken' is not a host state");
    const alone = synthError((s) => new Host(s, 'kvm1'), { 'libvirt-cluster:host-state:kvm1': 'failed' });
    expect(alone).toContain('host kvm1 is failed but belongs to no cluster');
  });

  test('remote URIs must verify the host key unless the host opts out, and plain TCP is refused', () => {
    const message = synthError((stack) => {
      new Host(stack, 'a', { uri: 'qemu+ssh://root@a/system?no_verify=1' });
      new Host(stack, 'b', { uri: 'qemu+ssh://root@b/system?known_hosts_verify=ignore' });
      new Host(stack, 'c', { uri: 'qemu+tcp://c/system' });
      new Host(stack, 'd', { uri: 'qemu+ssh://root@d/system?knownhosts=/etc/ssh/ssh_known_hosts' });
      new Host(stack, 'e', { uri: 'qemu+ssh://root@e/system?no_verify=1', insecureSkipHostKeyVerification: true });
    });
    expect(message).toContain('[test/a] uri qemu+ssh://root@a/system?no_verify=1 does not verify the host key');
    expect(message).toContain('[test/b] uri qemu+ssh://root@b/system?known_hosts_verify=ignore does not verify the host key');
    expect(message).toContain('[test/c] uri qemu+tcp://c/system uses unauthenticated, unencrypted TCP');
    expect(message).not.toContain('[test/d]');
    expect(message).not.toContain('[test/e]');
  });
});
