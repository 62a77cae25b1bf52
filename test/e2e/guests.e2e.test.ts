/**
 * What the library claims about guests, on a real libvirtd: a 32-bit guest runs as i686, and
 * vCPU and memory ceilings above the start values reach the domain (the provider's own
 * `vcpu_current` and `current_memory`), and plan clean afterwards.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, LocalBackend, TerraformStack } from 'cdktf';
import { DomainType, GuestArchitecture, Host, Image, Size, VirtualMachine } from '../../lib';
import { SystemLibvirtd } from './system-libvirtd';
import { describeE2e, tofu, tofuPlan, virsh } from './toolchain';

describeE2e('guest shapes on a real libvirtd', () => {
  let daemon: SystemLibvirtd;
  let work: string;
  let dir: string;
  let applied = false;

  beforeAll(async () => {
    daemon = await SystemLibvirtd.ensure();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'guests-e2e-'));
    fs.chmodSync(work, 0o755); // QEMU runs as its own user and must reach the pool below
    const app = new App({ outdir: path.join(work, 'out') });
    const stack = new TerraformStack(app, 'guests');
    new LocalBackend(stack, { path: path.join(work, 'terraform.tfstate') });
    const host = new Host(stack, 'lab', { uri: daemon.uri, domainType: DomainType.QEMU, poolPath: path.join(work, 'pool') });
    const image = Image.blank('blank', Size.mebibytes(16));
    new VirtualMachine(stack, 'legacy32', { host, architecture: GuestArchitecture.I686, memory: Size.mebibytes(64), image, network: false });
    new VirtualMachine(stack, 'growable', { host, vcpus: 1, maxVcpus: 2, memory: Size.mebibytes(64), maxMemory: Size.mebibytes(128), image, network: false });
    app.synth();
    dir = path.join(work, 'out', 'stacks', 'guests');
    tofu(dir, ['init', '-input=false']);
  });

  afterAll(async () => {
    try {
      if (applied) tofu(dir, ['destroy', '-auto-approve', '-input=false']);
    } finally {
      for (const vm of ['legacy32', 'growable']) {
        if (daemon && virsh(daemon.uri, 'list', '--all', '--name').split('\n').includes(vm)) virsh(daemon.uri, 'undefine', vm);
      }
      await daemon?.release();
      if (work) fs.rmSync(work, { recursive: true, force: true });
    }
  });

  test('a 32-bit guest runs as i686 under the 32-bit emulator', () => {
    applied = true;
    tofu(dir, ['apply', '-auto-approve', '-input=false']);
    expect(virsh(daemon.uri, 'domstate', 'legacy32').trim()).toBe('running');
    const xml = virsh(daemon.uri, 'dumpxml', 'legacy32');
    expect(xml).toMatch(/<type arch='i686'/);
    expect(xml).toMatch(/<emulator>\/usr\/bin\/qemu-system-i386<\/emulator>/);
  });

  test('ceilings: the domain starts at 1 vCPU and 64 MiB with room for 2 vCPUs and 128 MiB', () => {
    expect(virsh(daemon.uri, 'domstate', 'growable').trim()).toBe('running');
    // The definition; a running guest reaches its start memory only through its balloon driver,
    // which a guest sitting in the BIOS does not have.
    const xml = virsh(daemon.uri, 'dumpxml', '--inactive', 'growable');
    expect(xml).toMatch(/<vcpu placement='static' current='1'>2<\/vcpu>/);
    expect(xml).toMatch(/<memory unit='KiB'>131072<\/memory>/);
    expect(xml).toMatch(/<currentMemory unit='KiB'>65536<\/currentMemory>/);
    expect(virsh(daemon.uri, 'vcpucount', 'growable', '--live', '--active').trim()).toBe('1');
  });

  test('a second plan shows no changes, ceilings included', () => {
    const plan = tofuPlan(dir);
    expect(plan.output).toContain('No changes');
    expect(plan.code).toBe(0);
  });
});
