/**
 * The walking skeleton against a real libvirtd: synthesize the demo stack, apply it with OpenTofu,
 * check the guest with virsh, plan again (no changes), destroy (nothing left).
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App } from 'cdktf';
import { DomainType } from '../../lib';
import { DemoStack } from '../../stacks/demo';
import { SystemLibvirtd } from './system-libvirtd';
import { describeE2e, tofu, tofuPlan, virsh } from './toolchain';

describeE2e('demo stack on a real libvirtd', () => {
  let daemon: SystemLibvirtd;
  let work: string;
  let dir: string;
  let applied = false;
  const poolName = 'cdktf-local';

  beforeAll(async () => {
    daemon = await SystemLibvirtd.ensure();
    for (const leftover of ['demo-vm']) {
      expect(virsh(daemon.uri, 'list', '--all', '--name')).not.toContain(leftover);
    }
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'demo-e2e-'));
    fs.chmodSync(work, 0o755); // QEMU runs as its own user and must reach the pool below
    const app = new App({ outdir: path.join(work, 'out') });
    new DemoStack(app, 'demo', {
      uri: daemon.uri,
      domainType: DomainType.QEMU,
      poolPath: path.join(work, 'pool'),
      statePath: path.join(work, 'terraform.tfstate'),
    });
    app.synth();
    dir = path.join(work, 'out', 'stacks', 'demo');
    tofu(dir, ['init', '-input=false']);
  });

  afterAll(async () => {
    try {
      if (applied && dir) tofu(dir, ['destroy', '-auto-approve', '-input=false']);
    } finally {
      // A failed apply can leave a defined domain Terraform never recorded: remove what we made.
      if (daemon && virsh(daemon.uri, 'list', '--all', '--name').split('\n').includes('demo-vm')) {
        virsh(daemon.uri, 'undefine', 'demo-vm');
      }
      await daemon?.release();
      if (work) fs.rmSync(work, { recursive: true, force: true });
    }
  });

  test('tofu validate accepts the synthesized stack', () => {
    expect(tofu(dir, ['validate'])).toContain('Success');
  });

  test('apply creates a running guest with the declared shape', () => {
    const started = Date.now();
    applied = true;
    tofu(dir, ['apply', '-auto-approve', '-input=false']);
    console.log(`apply took ${((Date.now() - started) / 1000).toFixed(1)} s`);

    expect(virsh(daemon.uri, 'domstate', 'demo-vm').trim()).toBe('running');
    const xml = virsh(daemon.uri, 'dumpxml', 'demo-vm');
    expect(xml).toMatch(/<domain type='qemu'/);
    expect(xml).toMatch(/<vcpu placement='static'>1<\/vcpu>/);
    expect(xml).toMatch(/<memory unit='KiB'>98304<\/memory>/);
    expect(xml).toMatch(/<type arch='x86_64'/);
    expect(xml).toMatch(/<graphics type='vnc' port='\d+' autoport='yes' listen='127\.0\.0\.1'>/);

    const disks = virsh(daemon.uri, 'domblklist', 'demo-vm', '--details');
    const pool = path.join(work, 'pool');
    expect(disks).toMatch(/volume\s+disk\s+vda\s+demo-vm-boot\.qcow2/);
    expect(disks).toMatch(/volume\s+disk\s+vdb\s+demo-vm-data\.qcow2/);
    expect(xml).toContain(`<source pool='${poolName}' volume='demo-vm-boot.qcow2'`);
    expect(disks).toMatch(new RegExp(`file\\s+cdrom\\s+hdd\\s+${pool}/demo-vm-cloudinit\\.iso`));

    // The boot disk is a copy-on-write overlay of the base image volume.
    const boot = virsh(daemon.uri, 'vol-dumpxml', '--pool', poolName, 'demo-vm-boot.qcow2');
    expect(boot).toMatch(new RegExp(`<backingStore>\\s*<path>${pool}/base-blank\\.qcow2</path>`));
    const data = virsh(daemon.uri, 'vol-dumpxml', '--pool', poolName, 'demo-vm-data.qcow2');
    expect(data).toMatch(/<capacity unit='bytes'>33554432<\/capacity>/);

    // The cloud-init disk carries the typed user data.
    const userData = execFileSync('isoinfo', ['-R', '-i', `${pool}/demo-vm-cloudinit.iso`, '-x', '/user-data'], { encoding: 'utf8' });
    expect(userData.startsWith('#cloud-config\n')).toBe(true);
    const doc = JSON.parse(userData.slice('#cloud-config\n'.length));
    expect(doc.users[1]).toMatchObject({ name: 'ops', lock_passwd: true, sudo: 'ALL=(ALL) NOPASSWD:ALL' });

    // One NIC, on an isolated network: no <forward>.
    expect(virsh(daemon.uri, 'domiflist', 'demo-vm')).toMatch(/network\s+demo-isolated/);
    expect(virsh(daemon.uri, 'net-dumpxml', 'demo-isolated')).not.toContain('<forward');
  });

  test('a second plan shows no changes', () => {
    const plan = tofuPlan(dir);
    expect(plan.output).toContain('No changes');
    expect(plan.code).toBe(0);
  });

  test('destroy leaves no domain, volume, pool or network behind', () => {
    tofu(dir, ['destroy', '-auto-approve', '-input=false']);
    applied = false;
    expect(virsh(daemon.uri, 'list', '--all', '--name')).not.toContain('demo-vm');
    expect(virsh(daemon.uri, 'pool-list', '--all', '--name')).not.toContain(poolName);
    expect(virsh(daemon.uri, 'net-list', '--all', '--name')).not.toContain('demo-isolated');
    expect(fs.existsSync(path.join(work, 'pool'))).toBe(false);
  });
});
