import * as fs from 'fs';
import * as path from 'path';
import { TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import { Cluster, DomainType, Host, HostState, Image, Size, VirtualMachine } from '../../lib';
import { domains, inDirectory, referencedAddresses, resources, scratchDir, scratchLock, synth, synthError, synthProblems } from '../synth';

const image = Image.blank('base', Size.mebibytes(64));
const capacity = { cores: 2, memory: Size.gibibytes(2) };

/** Hosts a1 (active) and a2 in cluster `cluster`, b1 and b2 (active) in cluster `other`; one VM in each. */
function twoClusters(states: { readonly a2?: HostState; readonly b1?: HostState } = {}) {
  return (app: Construct) => {
    const stack = new TerraformStack(app, 'test');
    const host = (name: string, state?: HostState) => new Host(stack, name, { uri: `qemu+ssh://admin@${name}/system`, domainType: DomainType.QEMU, capacity, state });
    const a = [host('a1'), host('a2', states.a2)];
    const b = [host('b1', states.b1), host('b2')];
    // Default lock files: the test runs in a scratch working directory.
    const cluster = new Cluster(stack, 'cluster', { hosts: a, failuresToTolerate: 0, frozenLock: false });
    const other = new Cluster(stack, 'other', { hosts: b, failuresToTolerate: 0, frozenLock: false });
    new VirtualMachine(stack, 'va', { cluster, image });
    new VirtualMachine(stack, 'vb', { cluster: other, image });
  };
}

describe('two clusters in one stack', () => {
  test('keep their own lock files, named after the stack and the cluster id', () => {
    const cwd = scratchDir();
    inDirectory(cwd, () => synth(twoClusters()));
    expect(fs.readdirSync(cwd).sort()).toEqual(['test.other.placement-lock.json', 'test.placement-lock.json']);
    const lock = (file: string) => JSON.parse(fs.readFileSync(path.join(cwd, file), 'utf8')).placements;
    expect(lock('test.placement-lock.json')).toEqual({ va: expect.stringMatching(/^a[12]$/) });
    expect(lock('test.other.placement-lock.json')).toEqual({ vb: expect.stringMatching(/^b[12]$/) });
  });

  test('keep their own report sections and drawings', () => {
    const out = inDirectory(scratchDir(), () => synth(twoClusters()));
    const report = out.file('test', 'placement-report.md');
    const [first, second] = report.split(/^(?=# Placement of )/m);
    expect(first).toMatch(/^# Placement of test\/cluster\n/);
    expect(second).toMatch(/^# Placement of test\/other\n/);
    expect(first).toContain('va');
    expect(first).not.toMatch(/\bvb\b|\bb[12]\b/);
    expect(second).toContain('vb');
    expect(second).not.toMatch(/\bva\b|\ba[12]\b/);
    expect(out.file('test', 'placement-report-cluster.svg')).toContain('test/cluster');
    expect(out.file('test', 'placement-report-other.svg')).toContain('test/other');
  });

  test('share one controller.json next to the JSON, clusters by id; the same synth gives the same bytes', () => {
    const context = { 'libvirt-cluster:instant': '2026-11-26T03:00:00+01:00', 'libvirt-cluster:host-state:a2': 'standby' };
    const dir = scratchDir();
    const first = inDirectory(dir, () => synth(twoClusters(), { context }));
    const second = inDirectory(dir, () => synth(twoClusters(), { context }));
    const text = first.file('test', 'controller.json');
    expect(second.file('test', 'controller.json')).toBe(text);
    expect(JSON.parse(text)).toEqual({
      version: 1,
      stack: 'test',
      clusters: ['cluster', 'other'].map((id) => ({
        id,
        timeZone: 'UTC',
        instant: '2026-11-26T02:00:00.000Z',
        unattended: [],
        windowStarts: [],
        nextWindowStart: null,
        hosts: id === 'cluster' ? [{ name: 'a1', state: 'active' }, { name: 'a2', state: 'standby' }] : [{ name: 'b1', state: 'active' }, { name: 'b2', state: 'active' }],
        standbyCandidates: id === 'cluster' ? [] : [expect.stringMatching(/^b[12]$/)],
        recoverySeconds: 120,
        failuresToTolerate: 0,
      })),
    });
  });

  test("merge their removed blocks: a failed host in each, and both hosts' pool and network are forgotten, never destroyed", () => {
    const json = inDirectory(scratchDir(), () => synth(twoClusters({ a2: HostState.FAILED, b1: HostState.FAILED }))).json('test');
    const removed: { from: string; lifecycle: unknown }[] = json.removed;
    expect(removed.map((r) => r.from)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^libvirt_pool\.a2_Pool_/),
        expect.stringMatching(/^libvirt_network\.a2_Network_/),
        expect.stringMatching(/^libvirt_pool\.b1_Pool_/),
        expect.stringMatching(/^libvirt_network\.b1_Network_/),
      ]),
    );
    for (const r of removed) expect(r.lifecycle).toEqual({ destroy: false });
    // What is forgotten is neither declared nor referenced, and nothing runs through a failed host.
    const declared = new Set(resources(json).map(([type, name]) => `${type}.${name}`));
    expect([...referencedAddresses(json)]).toContainEqual(expect.stringMatching(/^libvirt_pool\.a1_Pool_/));
    for (const r of removed) {
      expect(declared).not.toContain(r.from);
      expect(referencedAddresses(json)).not.toContain(r.from);
    }
    expect(resources(json).filter(([, , body]) => body.provider === 'libvirt.a2' || body.provider === 'libvirt.b1')).toEqual([]);
    expect(Object.values(domains(json)).map((d) => [d.name, d.provider]).sort()).toEqual([['va', 'libvirt.a1'], ['vb', 'libvirt.b2']]);
    // Each failed host's alias points at a survivor of its own cluster.
    const uris = Object.fromEntries(json.provider.libvirt.map((p: any) => [p.alias, p.uri]));
    expect(uris.a2).toBe(uris.a1);
    expect(uris.b1).toBe(uris.b2);
  });

  test('may not share a host', () => {
    const message = synthError((app) => {
      const stack = new TerraformStack(app, 'test');
      const [h1, h2, h3] = ['h1', 'h2', 'h3'].map((n) => new Host(stack, n, { capacity }));
      new Cluster(stack, 'cluster', { hosts: [h1, h2], lockFile: scratchLock(), failuresToTolerate: 0 });
      new Cluster(stack, 'other', { hosts: [h2, h3], lockFile: scratchLock(), failuresToTolerate: 0 });
    });
    expect(message).toContain('[test/LibvirtClusterPlacement] host h2 (test/h2) is in two clusters, test/cluster and test/other: each would book its capacity; give it to one');
  });

  test('may not share a lock file', () => {
    const lockFile = scratchLock();
    const message = synthError((app) => {
      const stack = new TerraformStack(app, 'test');
      const [h1, h2] = ['h1', 'h2'].map((n) => new Host(stack, n, { capacity }));
      new Cluster(stack, 'cluster', { hosts: [h1], lockFile, failuresToTolerate: 0 });
      new Cluster(stack, 'other', { hosts: [h2], lockFile, failuresToTolerate: 0 });
    });
    expect(message).toContain(`[test/LibvirtClusterPlacement] clusters test/cluster and test/other share the lock file ${lockFile}: each would overwrite the other's; give one its own lockFile`);
  });
});

test('two hosts of one name are an error: the name is their provider alias', () => {
  const problems = synthProblems((app) => {
    const stack = new TerraformStack(app, 'test');
    new Host(stack, 'a', { hostName: 'kvm' });
    new VirtualMachine(stack, 'vm', { host: new Host(stack, 'b', { hostName: 'kvm' }), image });
  });
  expect(problems).toEqual([
    '[test/LibvirtClusterPlacement] hosts test/a and test/b are both named kvm: the name is their provider alias and network, unique in a stack; set hostName',
  ]);
});

/** Pinned VMs, standalone on a host or pinned in a cluster, are checked like placed ones. */
describe('pinned VMs', () => {
  /** Hosts h1 and h2 of 2 cores and 2 GiB in cluster `cluster`, and what `body` adds. */
  const pinned = (body: (stack: TerraformStack, cluster: Cluster, h1: Host) => void, h1State?: HostState) => (app: Construct) => {
    const stack = new TerraformStack(app, 'test');
    const h1 = new Host(stack, 'h1', { capacity, state: h1State });
    const h2 = new Host(stack, 'h2', { capacity });
    body(stack, new Cluster(stack, 'cluster', { hosts: [h1, h2], lockFile: scratchLock(), failuresToTolerate: 0 }), h1);
  };

  test('two VMs of one name on one host: standalone', () => {
    const problems = synthProblems((app) => {
      const stack = new TerraformStack(app, 'test');
      const host = new Host(stack, 'kvm1', { capacity });
      new VirtualMachine(stack, 'a', { host, name: 'web', image });
      new VirtualMachine(stack, 'b', { host, name: 'web', image });
    });
    expect(problems).toEqual([
      '[test/LibvirtClusterPlacement] 2 VMs are named web on host kvm1, ignoring case (test/a, test/b): libvirt domain and disk names, and guest hostnames, must be unique on a host; set name',
    ]);
  });

  test('two VMs of one name on one host: pinned in a cluster', () => {
    const problems = synthProblems(
      pinned((s, cluster, h1) => {
        new VirtualMachine(s, 'a', { cluster, host: h1, name: 'web', image });
        new VirtualMachine(s, 'b', { cluster, host: h1, name: 'web', image });
      }),
    );
    expect(problems).toContain(
      '[test/LibvirtClusterPlacement] 2 VMs are named web on host h1, ignoring case (test/a, test/b): libvirt domain and disk names, and guest hostnames, must be unique on a host; set name',
    );
  });

  test('bigger than its host: standalone', () => {
    const problems = synthProblems((app) => {
      const stack = new TerraformStack(app, 'test');
      const host = new Host(stack, 'kvm1', { capacity });
      new VirtualMachine(stack, 'big', { host, vcpus: 3, memory: Size.gibibytes(3), image });
    });
    expect(problems.sort()).toEqual([
      '[test/LibvirtClusterPlacement] VM big on host kvm1 has 3 vCPUs at its ceiling, more than the host\'s 2 cores for guests: lower vcpus/maxVcpus',
      '[test/LibvirtClusterPlacement] the VMs on host kvm1 (big) need 3072 MiB at their ceilings, 1024 MiB more than its 2048 MiB for guests: lower their memory or move some to another host',
    ]);
  });

  test('bigger than its host: pinned in a cluster', () => {
    const problems = synthProblems(pinned((s, cluster, h1) => new VirtualMachine(s, 'big', { cluster, host: h1, memory: Size.gibibytes(3), image })));
    expect(problems).toContainEqual(
      expect.stringMatching(/^\[test\/big\] \[capacity\] big: VM big \(1 vCPU, 3072 MiB\) cannot be placed: 1 eligible host\(s\) lack room; the closest, h1, has 8 vCPU and 2048 MiB free \(short 0 vCPU, 1024 MiB\)/),
    );
  });

  test('pinned to a host its cluster marks failed: an error, and no Terraform at all', () => {
    const outdir = scratchDir();
    const problems = synthProblems(
      pinned((s, cluster, h1) => new VirtualMachine(s, 'db', { cluster, host: h1, image, dataDisk: { size: Size.gibibytes(1) } }), HostState.FAILED),
      { outdir },
    );
    // Nothing that could reference h1's forgotten pool is written.
    expect(fs.existsSync(path.join(outdir, 'stacks', 'test', 'cdk.tf.json'))).toBe(false);
    expect(problems).toContain('[test/db] [pinned-host] db: VM db is pinned to h1, which is failed (pin it to an active host, remove the pin, or bring the host back to active)');
  });

  test('standalone on a host its cluster marks failed: an error, not a VM outside its cluster', () => {
    const problems = synthProblems(pinned((s, _cluster, h1) => new VirtualMachine(s, 'db', { host: h1, image }), HostState.FAILED));
    expect(problems).toContain('[test/db] host h1 is failed and the VM has no cluster to restart it elsewhere; mark the host active, or place the VM with a cluster');
  });
});
