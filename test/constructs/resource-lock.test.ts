/**
 * The stack's resource lock, through `app.synth()` as `cdktf synth` runs it: a code change never
 * destroys a data disk or a renamed VM, and what the provider cannot apply is refused at synth.
 * Each test synthesizes twice or more against one lock folder, as a user's successive synths do.
 */
import * as fs from 'fs';
import * as path from 'path';
import { App, TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import {
  Cluster,
  DomainType,
  Duration,
  FailoverGroup,
  Host,
  HostState,
  Image,
  RemovalPolicy,
  RESOURCE_LOCK_CONTEXT,
  Schedule,
  Size,
  VirtualMachine,
  VirtualMachineProps,
} from '../../lib';
import { scratchDir, scratchLock, synth, synthProblems } from '../synth';

const image = Image.blank('base', Size.mebibytes(64));
const capacity = { cores: 8, memory: Size.gibibytes(16) };

/** Synthesizes with one resource-lock folder, unfrozen unless told. */
function withLock(dir = scratchDir('rlock-'), frozen = false) {
  const context = { [RESOURCE_LOCK_CONTEXT.dir]: dir, [RESOURCE_LOCK_CONTEXT.frozen]: frozen };
  return {
    dir,
    file: path.join(dir, 'test.resources-lock.json'),
    synth: (build: (app: App) => void) => synth(build, { context }),
    problems: (build: (app: App) => void) => synthProblems(build, { context }),
    frozen: () => withLock(dir, true),
  };
}

/** One stack `test`, one host `kvm1`, the VMs `vms` declares. */
function standalone(vms: (stack: TerraformStack, host: Host) => void) {
  return (app: Construct) => {
    const stack = new TerraformStack(app, 'test');
    vms(stack, new Host(stack, 'kvm1', { domainType: DomainType.QEMU, capacity }));
  };
}

function vm(props: Partial<VirtualMachineProps> = {}): (stack: Construct, host: Host, id?: string) => VirtualMachine {
  return (stack, host, id = 'db') => new VirtualMachine(stack, id, { host, image, dataDisk: { size: Size.gibibytes(10) }, ...props });
}

/** A two-host cluster with shared storage and a group `mail` of `replicas`, under `groupId`. */
function clustered(lockFile: string, replicas: number | Schedule, groupId = 'mail', instant = '2026-11-26T03:00:00Z') {
  return (app: Construct) => {
    const stack = new TerraformStack(app, 'test');
    const hosts = ['h1', 'h2'].map((h) => new Host(stack, h, { domainType: DomainType.QEMU, capacity }));
    const cluster = new Cluster(stack, 'cluster', { hosts, sharedStorage: { poolName: 'shared', path: '/srv/shared' }, lockFile, frozenLock: false, instant: new Date(instant) });
    new FailoverGroup(stack, groupId, { cluster, namePrefix: 'mail', replicas, template: { image, dataDisk: { size: Size.gibibytes(5) } } });
  };
}

const removedFrom = (json: any) => (json.removed ?? []).map((r: any) => [r.from, r.lifecycle.destroy]);
const movedIn = (json: any) => (json.moved ?? []).map((m: any) => `${m.from} -> ${m.to}`);
const volumes = (json: any) => json.resource.libvirt_volume ?? {};
const addressOfVolume = (json: any, name: string) => `libvirt_volume.${Object.entries<any>(volumes(json)).find(([, v]) => v.name === name)![0]}`;

describe('data disks outlive their VM', () => {
  test('a VM deleted from the code: its data disk is forgotten (removed, destroy = false), nothing else of it is', () => {
    const lock = withLock();
    const before = lock.synth(standalone((s, h) => (vm()(s, h), vm({ dataDisk: undefined })(s, h, 'web')))).json('test');
    const disk = addressOfVolume(before, 'db-data.qcow2');
    const after = lock.synth(standalone((s, h) => vm({ dataDisk: undefined })(s, h, 'web')));
    expect(removedFrom(after.json('test'))).toEqual([[disk, false]]);
    expect(after.warnings('test')).toContainEqual(expect.stringContaining(`the data disk of VM db@host kvm1 (db-data.qcow2 in pool cdktf-local, host kvm1) is kept: Terraform forgets ${disk}`));
    // Still forgotten in the next synth (the apply may not have run yet), not reported as new.
    const again = lock.synth(standalone((s, h) => vm({ dataDisk: undefined })(s, h, 'web')));
    expect(removedFrom(again.json('test'))).toEqual([[disk, false]]);
    expect(again.warnings('test').filter((w) => w.includes('is kept'))).toEqual([]);
    expect(JSON.parse(fs.readFileSync(lock.file, 'utf8')).forgotten).toEqual([{ address: disk, pool: 'cdktf-local', volume: 'db-data.qcow2', vm: 'db@host kvm1', where: 'host kvm1' }]);
  });

  test('a data disk taken off a VM that stays is forgotten too', () => {
    const lock = withLock();
    const disk = addressOfVolume(lock.synth(standalone((s, h) => vm()(s, h))).json('test'), 'db-data.qcow2');
    expect(removedFrom(lock.synth(standalone((s, h) => vm({ dataDisk: undefined })(s, h))).json('test'))).toEqual([[disk, false]]);
  });

  test('RemovalPolicy.DESTROY lets the disk go with its VM', () => {
    const lock = withLock();
    lock.synth(standalone((s, h) => (vm({ dataDisk: { size: Size.gibibytes(1), removalPolicy: RemovalPolicy.DESTROY } })(s, h), vm({ dataDisk: undefined })(s, h, 'web'))));
    expect(lock.synth(standalone((s, h) => vm({ dataDisk: undefined })(s, h, 'web'))).json('test').removed).toBeUndefined();
  });

  test("a group's replicas lowered for good: the dropped replica's data disk is forgotten, the others stay", () => {
    const lock = withLock();
    const lockFile = scratchLock();
    const before = lock.synth(clustered(lockFile, 3)).json('test');
    const third = addressOfVolume(before, 'mail-3-data.qcow2');
    const after = lock.synth(clustered(lockFile, 2)).json('test');
    expect(removedFrom(after)).toEqual([[third, false]]);
    expect(Object.values<any>(volumes(after)).map((v) => v.name)).toEqual(expect.arrayContaining(['mail-1-data.qcow2', 'mail-2-data.qcow2']));
    expect(after.resource.libvirt_volume[third.split('.')[1]]).toBeUndefined();
  });

  test('a replica outside its window is no change: the lock is the same at night and at the peak', () => {
    const lock = withLock();
    const lockFile = scratchLock();
    const schedule = Schedule.from('08:00', 3).and('20:00', 2);
    lock.synth(clustered(lockFile, schedule, 'mail', '2026-11-26T03:00:00Z'));
    const night = fs.readFileSync(lock.file, 'utf8');
    // Frozen, as in CI: the peak's synth must not want to change the lock.
    const peak = lock.frozen().synth(clustered(lockFile, schedule, 'mail', '2026-11-26T09:00:00Z')).json('test');
    expect(Object.keys(peak.resource.libvirt_domain)).toHaveLength(3);
    expect(fs.readFileSync(lock.file, 'utf8')).toBe(night);
  });

  test('a VM declared again at its old address with its kept disk is refused: the provider cannot adopt the volume', () => {
    const lock = withLock();
    lock.synth(standalone((s, h) => (vm()(s, h), vm({ dataDisk: undefined })(s, h, 'web'))));
    lock.synth(standalone((s, h) => vm({ dataDisk: undefined })(s, h, 'web')));
    expect(lock.problems(standalone((s, h) => (vm()(s, h), vm({ dataDisk: undefined })(s, h, 'web'))))).toEqual([
      expect.stringMatching(/^\[test\/db\] a data disk db-data\.qcow2 in pool cdktf-local was kept on host kvm1 when VM db left the code, and the provider cannot adopt an existing volume: to keep its data, give this VM another name; to start empty, delete that volume/),
    ]);
  });
});

describe('renames are moves', () => {
  test('a standalone VM under a new construct id (same name): moved blocks for its domain and every volume', () => {
    const lock = withLock();
    const before = lock.synth(standalone((s, h) => vm()(s, h, 'db'))).json('test');
    const after = lock.synth(standalone((s, h) => vm({ name: 'db' })(s, h, 'database'))).json('test');
    const pairs = (json: any) => ({
      domain: `libvirt_domain.${Object.keys(json.resource.libvirt_domain)[0]}`,
      boot: addressOfVolume(json, 'db-boot.qcow2'),
      data: addressOfVolume(json, 'db-data.qcow2'),
      seed: addressOfVolume(json, Object.values<any>(volumes(json)).find((v) => v.name.startsWith('db-cloudinit-')).name),
    });
    const [a, b] = [pairs(before), pairs(after)];
    expect(movedIn(after).sort()).toEqual([`${a.boot} -> ${b.boot}`, `${a.data} -> ${b.data}`, `${a.domain} -> ${b.domain}`, `${a.seed} -> ${b.seed}`].sort());
    expect(after.removed).toBeUndefined();
  });

  test('a failover group under a new construct id (same namePrefix): every replica moves; the moves stay in later synths', () => {
    const lock = withLock();
    const lockFile = scratchLock();
    const before = lock.synth(clustered(lockFile, 2, 'mail')).json('test');
    const after = lock.synth(clustered(lockFile, 2, 'email'));
    const moved = movedIn(after.json('test'));
    expect(moved).toHaveLength(8); // 2 replicas × domain, boot, seed, data
    for (const address of Object.keys(before.resource.libvirt_domain)) expect(moved).toContainEqual(expect.stringMatching(new RegExp(`^libvirt_domain\\.${address} -> libvirt_domain\\.email_replica-`)));
    expect(after.warnings('test')).toContainEqual(expect.stringMatching(/^test\/email\/replica-1: libvirt_domain\.mail_replica-1_\w+ moves to libvirt_domain\.email_replica-1_\w+ \(a renamed construct/));
    expect(movedIn(lock.synth(clustered(lockFile, 2, 'email')).json('test'))).toEqual(moved);
    // Renamed back: the moves are undone, not chained into a cycle.
    const back = movedIn(lock.synth(clustered(lockFile, 2, 'mail')).json('test'));
    expect(back).toHaveLength(8);
    for (const m of back) expect(m).toMatch(/^libvirt_\w+\.email_replica-\d_\w+ -> libvirt_\w+\.mail_replica-/);
  });

  test("a VM's libvirt name changed at the same address, with a data disk: refused (the volume would be replaced)", () => {
    const lock = withLock();
    lock.synth(standalone((s, h) => vm()(s, h, 'db')));
    expect(lock.problems(standalone((s, h) => vm({ name: 'db2' })(s, h, 'db')))).toEqual([
      expect.stringMatching(/^\[test\/db\] its data disk's Terraform address held db-data\.qcow2 \(VM db\), and a new name makes the provider replace the volume, destroying its data: keep name 'db'/),
    ]);
  });
});

describe('disk changes the provider cannot apply in place', () => {
  test('a new image renames the boot disk only (a replacement); the data disk and the addresses stay', () => {
    const lock = withLock();
    const before = lock.synth(standalone((s, h) => vm()(s, h))).json('test');
    const debian = Image.fromFile('debian', '/srv/images/debian.qcow2');
    const after = lock.synth(standalone((s, h) => vm({ image: debian })(s, h))).json('test');
    const boot = addressOfVolume(before, 'db-boot.qcow2');
    const renamed = after.resource.libvirt_volume[boot.split('.')[1]];
    expect(renamed.name).toMatch(/^db-boot-[0-9a-f]{8}\.qcow2$/);
    expect(addressOfVolume(after, 'db-data.qcow2')).toBe(addressOfVolume(before, 'db-data.qcow2'));
    expect(Object.keys(after.resource.libvirt_domain)).toEqual(Object.keys(before.resource.libvirt_domain));
    // The same image again keeps the new name: the lock remembers which image the disk has.
    expect(lock.synth(standalone((s, h) => vm({ image: debian })(s, h))).json('test').resource.libvirt_volume[boot.split('.')[1]].name).toBe(renamed.name);
  });

  test('a data disk may grow; shrinking it, or the boot disk, is refused', () => {
    const lock = withLock();
    lock.synth(standalone((s, h) => vm({ bootDiskSize: Size.gibibytes(2) })(s, h)));
    const grown = lock.synth(standalone((s, h) => vm({ bootDiskSize: Size.gibibytes(3), dataDisk: { size: Size.gibibytes(20) } })(s, h))).json('test');
    expect(grown.resource.libvirt_volume[addressOfVolume(grown, 'db-data.qcow2').split('.')[1]].capacity).toBe(20 * 2 ** 30);
    expect(lock.problems(standalone((s, h) => vm({ bootDiskSize: Size.gibibytes(1), dataDisk: { size: Size.gibibytes(5) } })(s, h))).sort()).toEqual([
      '[test/db] bootDiskSize is 1 GiB, smaller than the 3 GiB the disk has: a disk cannot shrink without losing data; keep 3 GiB or more',
      '[test/db] dataDisk.size is 5 GiB, smaller than the 20 GiB the disk has: a disk cannot shrink without losing data; keep 20 GiB or more',
    ]);
  });

  test('a data disk moved to shared storage is refused: the provider would replace it', () => {
    const lock = withLock();
    const build = (shared: boolean) => (app: Construct) => {
      const stack = new TerraformStack(app, 'test');
      const hosts = ['h1', 'h2'].map((h) => new Host(stack, h, { domainType: DomainType.QEMU, capacity }));
      const cluster = new Cluster(stack, 'cluster', { hosts, lockFile, frozenLock: false, ...(shared ? { sharedStorage: { poolName: 'shared', path: '/srv/shared' } } : {}) });
      new VirtualMachine(stack, 'db', { cluster, image, dataDisk: { size: Size.gibibytes(1) } });
    };
    const lockFile = scratchLock();
    lock.synth(build(false));
    expect(lock.problems(build(true))).toEqual([expect.stringMatching(/^\[test\/db\] its data disk db-data\.qcow2 is in pool cdktf-local, and the code now puts it in pool shared: the provider would replace it/)]);
  });
});

describe('the lock in CI', () => {
  test('frozen (CI=true or the context value), a lock that would change fails the synth and is not written', () => {
    const lock = withLock();
    expect(lock.frozen().problems(standalone((s, h) => vm()(s, h)))).toEqual([
      expect.stringMatching(/^\[test\/LibvirtClusterPlacement\] resource lock .*test\.resources-lock\.json would change, and locks are frozen \(CI=true or libvirt-cluster:frozen-lock\): synthesize locally, review the moves and kept disks it reports, and commit the lock file$/),
    ]);
    expect(fs.existsSync(lock.file)).toBe(false);
    lock.synth(standalone((s, h) => vm()(s, h)));
    expect(() => lock.frozen().synth(standalone((s, h) => vm()(s, h)))).not.toThrow();
  });

  test('a broken lock file is a problem to fix, not a fresh start', () => {
    const lock = withLock();
    fs.writeFileSync(lock.file, '{"version": 7}');
    expect(lock.problems(standalone((s, h) => vm()(s, h)))).toEqual([
      `[test/LibvirtClusterPlacement] resource lock ${lock.file} cannot be used: its version is 7, not 1; restore it from version control`,
    ]);
  });
});

describe('a failed synth writes nothing of its own', () => {
  test('no seed disk, no lock, no controller.json; the report says the synth failed', () => {
    const lock = withLock();
    const outdir = scratchDir('out-');
    const lockFile = scratchLock();
    const build = (app: Construct) => {
      const stack = new TerraformStack(app, 'test');
      const hosts = ['h1', 'h2'].map((h) => new Host(stack, h, { domainType: DomainType.QEMU, capacity }));
      const cluster = new Cluster(stack, 'cluster', { hosts, lockFile, frozenLock: false });
      new VirtualMachine(stack, 'web', { cluster, image, cloudInit: { runCommands: [['sh', '-c', 'echo root:hunter2 | chpasswd']] } });
      new VirtualMachine(stack, 'bad', { cluster, image, vcpus: 0 });
    };
    expect(() => synth(build, { outdir, context: { [RESOURCE_LOCK_CONTEXT.dir]: lock.dir } })).toThrow(/Validation failed/);
    const dir = path.join(outdir, 'stacks', 'test');
    expect(fs.existsSync(path.join(dir, 'cloud-init'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'controller.json'))).toBe(false);
    expect(fs.existsSync(lockFile)).toBe(false);
    expect(fs.existsSync(lock.file)).toBe(false);
    const report = fs.readFileSync(path.join(dir, 'placement-report.md'), 'utf8');
    expect(report).toMatch(/\*\*Synth FAILED with \d+ problem\(s\): nothing here is deployed or deployable until they are fixed\.\*\*/);
    expect(report).toContain('[test/bad] vcpus is 0');
    expect(report).not.toContain('Admission control: OK');
  });

  test("a fixed synth replaces the failed one's report", () => {
    const outdir = scratchDir('out-');
    const build = (vcpus: number) => (app: Construct) => {
      const stack = new TerraformStack(app, 'test');
      const hosts = ['h1', 'h2'].map((h) => new Host(stack, h, { domainType: DomainType.QEMU, capacity }));
      new VirtualMachine(stack, 'web', { cluster: new Cluster(stack, 'cluster', { hosts, lockFile, frozenLock: false }), image, vcpus });
    };
    const lockFile = scratchLock();
    expect(() => synth(build(0), { outdir })).toThrow(/Validation failed/);
    synth(build(1), { outdir });
    expect(fs.readFileSync(path.join(outdir, 'stacks', 'test', 'placement-report.md'), 'utf8')).toContain('Admission control: OK');
  });
});

describe('inputs that cannot work, refused with the path, the value and the fix', () => {
  const one = (body: (stack: TerraformStack, host: Host) => void, hostProps = {}) => (app: Construct) => {
    const stack = new TerraformStack(app, 'test');
    body(stack, new Host(stack, 'kvm1', { domainType: DomainType.QEMU, capacity, ...hostProps }));
  };

  test('a host with no memory', () => {
    expect(synthProblems(one(() => undefined, { capacity: { cores: 4, memory: Size.bytes(0) } }))).toEqual([
      '[test/kvm1] capacity.memory is 0 B: a host needs memory for its guests; give its physical memory, e.g. Size.gibibytes(64)',
    ]);
  });

  test('an all-zero MAC', () => {
    const problems = synthProblems(one((s, host) => new VirtualMachine(s, 'web', { host, image, nics: [{ segment: host.defaultSegment, mac: '00:00:00:00:00:00' }] })));
    expect(problems).toEqual([expect.stringMatching(/^\[test\/web\] .*MAC 00:00:00:00:00:00 is all zeros, which no NIC can use; give another, or leave mac out to derive one/)]);
  });

  test('two VMs whose names differ only by case on one host', () => {
    const problems = synthProblems(one((s, host) => (new VirtualMachine(s, 'a', { host, image, name: 'Web' }), new VirtualMachine(s, 'b', { host, image, name: 'web' }))));
    expect(problems).toContainEqual('[test/LibvirtClusterPlacement] 2 VMs are named web on host kvm1, ignoring case (test/a, test/b): libvirt domain and disk names, and guest hostnames, must be unique on a host; set name');
  });

  test('an image with an empty or relative path', () => {
    const problems = synthProblems(
      one((s, host) => {
        new VirtualMachine(s, 'a', { host, image: Image.fromFile('empty', '') });
        new VirtualMachine(s, 'b', { host, image: Image.fromFile('relative', 'images/debian.qcow2') });
      }),
    );
    expect(problems).toEqual([
      "[test/a] image 'empty' has an empty source: give the absolute path of a qcow2 file, or an http(s) URL",
      "[test/b] image 'relative' source 'images/debian.qcow2' is neither an absolute path nor an http(s) URL: Terraform reads it from the stack's folder under cdktf.out, so a relative path breaks; give an absolute path (e.g. path.resolve('images/debian.qcow2'))",
    ]);
  });

  test('a FailoverGroup without a cluster, as JavaScript allows', () => {
    const problems = synthProblems(one((s) => new FailoverGroup(s, 'mail', { template: { image } } as any)));
    expect(problems).toEqual(['[test/mail] a FailoverGroup needs a cluster to place its replicas: set cluster to a Cluster of the hosts that back each other up']);
  });

  test('a host-state override for a host the app does not have', () => {
    const problems = synthProblems(one(() => undefined), { context: { 'libvirt-cluster:host-state:kvm9': 'failed' } });
    expect(problems).toEqual(['[test/LibvirtClusterPlacement] context libvirt-cluster:host-state:kvm9 names no host of this app (hosts: kvm1): the override would be ignored; correct the host name or remove it']);
  });

  test('a host-state typo is reported at the host alone, not as the admission failures of a state nobody meant', () => {
    const lockFile = scratchLock();
    const problems = synthProblems(
      (app) => {
        const stack = new TerraformStack(app, 'test');
        const hosts = ['h1', 'h2'].map((h) => new Host(stack, h, { domainType: DomainType.QEMU, capacity }));
        const cluster = new Cluster(stack, 'cluster', { hosts, lockFile, frozenLock: false });
        new VirtualMachine(stack, 'web', { cluster, image, memory: Size.gibibytes(12) });
        new VirtualMachine(stack, 'db', { cluster, image, memory: Size.gibibytes(12) });
      },
      { context: { 'libvirt-cluster:host-state:h1': 'faild' } },
    );
    expect(problems).toEqual(["[test/h1] context libvirt-cluster:host-state:h1='faild' is not a host state; use one of active, maintenance, standby, failed"]);
  });
});

describe('one app, one picture of each machine', () => {
  test('a host URI in two stacks: both would manage it, and booking it twice over is an error naming both stacks', () => {
    const problems = synthProblems((app) => {
      for (const name of ['web', 'batch']) {
        const stack = new TerraformStack(app, name);
        const host = new Host(stack, 'kvm1', { uri: 'qemu+ssh://admin@kvm1.example.net/system', domainType: DomainType.QEMU, capacity: { cores: 8, memory: Size.gibibytes(8) } });
        new VirtualMachine(stack, `${name}-vm`, { host, image, memory: Size.gibibytes(5) });
      }
    });
    expect(problems).toEqual([
      '[web/LibvirtClusterPlacement] host kvm1 (web/kvm1) and host kvm1 of stack batch (batch/kvm1) are one machine, qemu+ssh://admin@kvm1.example.net/system: both stacks would manage its pool cdktf-local and networks and define domains there; declare the machine in one stack, with all the VMs it runs',
      "[web/LibvirtClusterPlacement] machine qemu+ssh://admin@kvm1.example.net/system is over-booked: stack web places 5120 MiB on it (web-vm) and stack batch 5120 MiB (batch-vm), 10240 MiB at the VMs' ceilings for its 8192 MiB for guests: move VMs to another host, or lower their memory",
    ]);
  });
});

test('a host marked failed keeps its VMs data disks in the lock (nothing forgotten by a failover)', () => {
  const lock = withLock();
  const lockFile = scratchLock();
  const build = (state: HostState) => (app: Construct) => {
    const stack = new TerraformStack(app, 'test');
    const hosts = ['h1', 'h2'].map((h) => new Host(stack, h, { domainType: DomainType.QEMU, capacity, state: h === 'h1' ? state : HostState.ACTIVE }));
    const cluster = new Cluster(stack, 'cluster', { hosts, sharedStorage: { poolName: 'shared', path: '/srv/shared' }, lockFile, frozenLock: false });
    new FailoverGroup(stack, 'mail', { cluster, replicas: 2, template: { image, dataDisk: { size: Size.gibibytes(5) } } });
  };
  lock.synth(build(HostState.ACTIVE));
  const before = fs.readFileSync(lock.file, 'utf8');
  const failed = lock.synth(build(HostState.FAILED)).json('test');
  expect(removedFrom(failed).map(([from]: [string]) => from).filter((a: string) => a.includes('DataDisk'))).toEqual([]);
  expect(fs.readFileSync(lock.file, 'utf8')).toBe(before);
});

describe('the placement report tells the truth', () => {
  test("storage: each pool's disks with their sizes as written; kept data disks; a drained host's tolerance now", () => {
    const lock = withLock();
    const lockFile = scratchLock();
    const build = (replicas: number, state: HostState) => (app: Construct) => {
      const stack = new TerraformStack(app, 'test');
      const hosts = ['h1', 'h2', 'h3'].map((h) => new Host(stack, h, { domainType: DomainType.QEMU, capacity, state: h === 'h3' ? state : HostState.ACTIVE }));
      const cluster = new Cluster(stack, 'cluster', { hosts, sharedStorage: { poolName: 'shared', path: '/srv/shared' }, lockFile, frozenLock: false });
      new FailoverGroup(stack, 'mail', { cluster, replicas, template: { image, dataDisk: { size: Size.gibibytes(50) } } });
    };
    lock.synth(build(2, HostState.ACTIVE));
    const report = lock.synth(build(1, HostState.MAINTENANCE)).file('test', 'placement-report.md');
    expect(report).toContain('| shared | mail-1-boot.qcow2 | mail-1 | 64 MiB |');
    expect(report).toContain('| shared | mail-1-data.qcow2 | mail-1 | 50 GiB |');
    expect(report).toMatch(/data disk mail-2-data\.qcow2 of VM mail-2, no longer in the code, is kept in pool shared: Terraform forgets libvirt_volume\.mail_replica-2_DataDisk_\w+ \(removed block\)/);
    expect(report).toContain('tolerates 0 further host failure(s) now, of 1 (h3 maintenance)');
  });
});

describe('moves the lock cannot see, and image sources', () => {
  test('renamedFrom: a VM and a group renamed without a lock entry get moved blocks from their old paths', () => {
    const old = withLock();
    const lockFile = scratchLock();
    const before = old.synth(clustered(lockFile, 1, 'mail')).json('test');
    const fresh = withLock(); // a lock that was never committed: the rename is named in the code
    const after = fresh.synth((app) => {
      const stack = new TerraformStack(app, 'test');
      const hosts = ['h1', 'h2'].map((h) => new Host(stack, h, { domainType: DomainType.QEMU, capacity }));
      const cluster = new Cluster(stack, 'cluster', { hosts, sharedStorage: { poolName: 'shared', path: '/srv/shared' }, lockFile, frozenLock: false, instant: new Date('2026-11-26T03:00:00Z') });
      new FailoverGroup(stack, 'email', { cluster, namePrefix: 'mail', renamedFrom: 'mail', replicas: 1, template: { image, dataDisk: { size: Size.gibibytes(5) } } });
    }).json('test');
    const oldAddresses = Object.entries<any>(before.resource).flatMap(([type, byName]) => Object.keys(byName).filter((n) => n.startsWith('mail_')).map((n) => `${type}.${n}`)).sort();
    expect(movedIn(after).map((m: string) => m.split(' -> ')[0]).sort()).toEqual(oldAddresses);
    expect(oldAddresses).toHaveLength(4);
  });

  test("an image whose source changes under the same name is refused: its base volume cannot be updated", () => {
    const lock = withLock();
    lock.synth(standalone((s, h) => vm({ image: Image.fromFile('debian', '/srv/images/debian-12.qcow2') })(s, h)));
    expect(lock.problems(standalone((s, h) => vm({ image: Image.fromFile('debian', '/srv/images/debian-13.qcow2') })(s, h)))).toEqual([
      "[test/db] image 'debian' is now from /srv/images/debian-13.qcow2, was from /srv/images/debian-12.qcow2: its base volume cannot be updated in place; give the new image its own name (e.g. 'debian-2'), so it gets a base volume of its own and the boot disk is rebuilt on it",
    ]);
  });
});

describe('graceful destroy: a domain keeps the destroy behaviour it was created with', () => {
  const booting = Image.fromFile('debian', '/srv/images/debian.qcow2');
  const domainsOf = (json: any) => Object.values<any>(json.resource.libvirt_domain);
  const destroyOf = (json: any, name: string) => domainsOf(json).find((d) => d.name === name)?.destroy;
  const recordOf = (file: string, key: string) => JSON.parse(fs.readFileSync(file, 'utf8')).vms[key];

  test('a new VM booting an OS: Terraform destroys it through an ACPI shutdown bounded by its shutdownTimeout; a blank image has no OS to hear it', () => {
    const lock = withLock();
    const json = lock
      .synth(standalone((s, h) => (vm({ image: booting })(s, h, 'db'), vm({ image: booting, shutdownTimeout: Duration.seconds(90) })(s, h, 'slow'), vm()(s, h, 'scratch'))))
      .json('test');
    expect(destroyOf(json, 'db')).toEqual({ shutdown: { timeout: 30 } });
    expect(destroyOf(json, 'slow')).toEqual({ shutdown: { timeout: 90 } });
    expect(destroyOf(json, 'scratch')).toBeUndefined();
    expect(recordOf(lock.file, 'db@host kvm1').gracefulDestroy).toBe(true);
    expect(recordOf(lock.file, 'scratch@host kvm1').gracefulDestroy).toBeUndefined();
  });

  test('a VM the lock knows without it keeps none (adding it would restart the VM); set explicitly it is added, and then kept', () => {
    const lock = withLock();
    lock.synth(standalone((s, h) => vm({ image: booting })(s, h)));
    // A lock written before graceful destroy existed: the VM is there, without the flag.
    const old = JSON.parse(fs.readFileSync(lock.file, 'utf8'));
    delete old.vms['db@host kvm1'].gracefulDestroy;
    fs.writeFileSync(lock.file, JSON.stringify(old, null, 2));
    const kept = lock.synth(standalone((s, h) => vm({ image: booting })(s, h))).json('test');
    expect(destroyOf(kept, 'db')).toBeUndefined();
    expect(recordOf(lock.file, 'db@host kvm1').gracefulDestroy).toBeUndefined();
    const opted = lock.synth(standalone((s, h) => vm({ image: booting, gracefulDestroy: true })(s, h))).json('test');
    expect(destroyOf(opted, 'db')).toEqual({ shutdown: { timeout: 30 } });
    // Recorded: the next synth keeps it without the prop.
    const later = lock.synth(standalone((s, h) => vm({ image: booting })(s, h))).json('test');
    expect(destroyOf(later, 'db')).toEqual({ shutdown: { timeout: 30 } });
    // And a frozen synth of the same code passes: nothing left to record.
    expect(destroyOf(lock.frozen().synth(standalone((s, h) => vm({ image: booting })(s, h))).json('test'), 'db')).toEqual({ shutdown: { timeout: 30 } });
  });

  test('an off-window replica keeps its flag in the lock, and has it again when its window opens', () => {
    const lock = withLock();
    const lockFile = path.join(lock.dir, 'placement.json');
    const schedule = Schedule.from('08:00', 2).and('20:00', 1);
    const at = (instant: string) =>
      lock.synth((app) => {
        const stack = new TerraformStack(app, 'test');
        const hosts = ['h1', 'h2'].map((h) => new Host(stack, h, { domainType: DomainType.QEMU, capacity }));
        const cluster = new Cluster(stack, 'cluster', { hosts, lockFile, frozenLock: false, instant: new Date(instant) });
        new FailoverGroup(stack, 'mail', { cluster, namePrefix: 'mail', replicas: schedule, template: { image: booting } });
      });
    expect(destroyOf(at('2026-11-26T09:00:00Z').json('test'), 'mail-2')).toEqual({ shutdown: { timeout: 30 } });
    expect(destroyOf(at('2026-11-26T03:00:00Z').json('test'), 'mail-2')).toBeUndefined();
    expect(recordOf(lock.file, 'mail-2@cluster cluster').gracefulDestroy).toBe(true);
    expect(destroyOf(at('2026-11-26T10:00:00Z').json('test'), 'mail-2')).toEqual({ shutdown: { timeout: 30 } });
  });
});
