import { TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import { detectDomainType, DomainType, Host, HostState, Image, Size, VirtualMachine } from '../../lib';
import { synth, synthError } from '../synth';

/** One stack named `test`, built by `build`. */
function stack(build: (scope: Construct) => void) {
  return (app: Construct) => build(new TerraformStack(app, 'test'));
}

describe('Host', () => {
  test('configures its own aliased provider, a dir pool, and an isolated network without forwarding once a VM uses it', () => {
    const json = synth(
      stack((s) => {
        const kvm1 = new Host(s, 'kvm1', { uri: 'qemu+ssh://admin@kvm1/system', domainType: DomainType.QEMU });
        const kvm2 = new Host(s, 'kvm2', { uri: 'qemu+ssh://admin@kvm2/system' });
        new Host(s, 'kvm3', { uri: 'qemu+ssh://admin@kvm3/system' }); // no VM: no network
        for (const host of [kvm1, kvm2]) new VirtualMachine(s, `vm-${host.hostName}`, { host, image: Image.blank('b', Size.mebibytes(64)), memory: Size.mebibytes(64) });
      }),
    ).json('test');
    expect(json.provider.libvirt).toEqual([
      { alias: 'kvm1', uri: 'qemu+ssh://admin@kvm1/system' },
      { alias: 'kvm2', uri: 'qemu+ssh://admin@kvm2/system' },
      { alias: 'kvm3', uri: 'qemu+ssh://admin@kvm3/system' },
    ]);
    const pools = Object.values<any>(json.resource.libvirt_pool);
    expect(pools).toContainEqual(expect.objectContaining({ name: 'cdktf-local', type: 'dir', target: { path: '/var/lib/libvirt/images/kvm1' }, provider: 'libvirt.kvm1' }));
    // No <forward> and no <ip>: an isolated network, whose guests reach only each other.
    const networks = Object.values<any>(json.resource.libvirt_network).map(({ '//': _metadata, ...n }) => n);
    expect(networks).toEqual([
      { name: 'kvm1-isolated', autostart: true, provider: 'libvirt.kvm1' },
      { name: 'kvm2-isolated', autostart: true, provider: 'libvirt.kvm2' },
    ]);
    expect(json.terraform.required_providers.libvirt).toEqual({ source: 'dmacvicar/libvirt', version: '0.9.7' });
  });

  test('rejects a 32-bit host, a bad name and impossible capacity, all at once', () => {
    const message = synthError(
      stack((s) => {
        new Host(s, 'Old_Box', { architecture: 'i686', capacity: { cores: 2, memory: Size.gibibytes(4), reservedCores: 2, reservedMemory: Size.gibibytes(4) } });
      }),
    );
    expect(message).toContain("[test/Old_Box] host name 'Old_Box' must start with a letter");
    expect(message).toContain("[test/Old_Box] host architecture 'i686' is not 64-bit");
    expect(message).toContain('capacity.reservedCores is 2; it must be a whole number below capacity.cores (2)');
    expect(message).toContain('capacity.reservedMemory (4 GiB) leaves no memory of 4 GiB for guests');
  });

  test('a context value overrides the declared state for emergencies', () => {
    const context = { 'libvirt-cluster:host-state:kvm1': 'failed' };
    let kvm1!: Host;
    let kvm2!: Host;
    const message = synthError(
      stack((s) => {
        kvm1 = new Host(s, 'kvm1', { state: HostState.ACTIVE });
        kvm2 = new Host(s, 'kvm2', { state: HostState.MAINTENANCE });
      }),
      { context },
    );
    expect(kvm1.state).toBe(HostState.FAILED);
    expect(kvm2.state).toBe(HostState.MAINTENANCE);
    // Outside a cluster nothing can stand in for a failed host; a drained one is still reachable.
    expect(message).toContain('[test/LibvirtClusterPlacement] host kvm1 (test/kvm1) is failed but belongs to no cluster');
    expect(message).not.toContain('kvm2');
    // An override for a host the app does not have is no problem; a state that does not exist is.
    expect(() => synth(stack(() => undefined), { context: { 'libvirt-cluster:host-state:kvm1': 'broken' } })).not.toThrow();
    const bad = synthError(stack((s) => new Host(s, 'kvm1')), { context: { 'libvirt-cluster:host-state:kvm1': 'broken' } });
    expect(bad).toContain("[test/kvm1] context libvirt-cluster:host-state:kvm1='broken' is not a host state");
  });

  test('remote URIs must verify the host key unless the host opts out, and plain TCP is refused', () => {
    const message = synthError(
      stack((s) => {
        new Host(s, 'a', { uri: 'qemu+ssh://root@a/system?no_verify=1' });
        new Host(s, 'b', { uri: 'qemu+ssh://root@b/system?known_hosts_verify=ignore' });
        new Host(s, 'c', { uri: 'qemu+tcp://c/system' });
        new Host(s, 'd', { uri: 'qemu+ssh://root@d/system?knownhosts=/etc/ssh/ssh_known_hosts' });
        new Host(s, 'e', { uri: 'qemu+ssh://root@e/system?no_verify=1', insecureSkipHostKeyVerification: true });
      }),
    );
    expect(message).toContain('[test/a] uri qemu+ssh://root@a/system?no_verify=1 does not verify the host key');
    expect(message).toContain('[test/b] uri qemu+ssh://root@b/system?known_hosts_verify=ignore does not verify the host key');
    expect(message).toContain('[test/c] uri qemu+tcp://c/system uses unauthenticated, unencrypted TCP');
    expect(message).not.toContain('[test/d]');
    expect(message).not.toContain('[test/e]');
  });
});

describe('detectDomainType', () => {
  test('uses kvm where the KVM device exists and qemu where it does not', () => {
    expect(detectDomainType({}, __filename)).toBe(DomainType.KVM);
    expect(detectDomainType({}, '/nonexistent/kvm')).toBe(DomainType.QEMU);
  });

  test('LIBVIRT_DOMAIN_TYPE wins, and a wrong value is an error', () => {
    expect(detectDomainType({ LIBVIRT_DOMAIN_TYPE: 'qemu' }, __filename)).toBe(DomainType.QEMU);
    expect(() => detectDomainType({ LIBVIRT_DOMAIN_TYPE: 'xen' })).toThrow('LIBVIRT_DOMAIN_TYPE=xen is not one of kvm, qemu');
  });
});
