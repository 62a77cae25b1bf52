import * as fs from 'fs';
import * as path from 'path';
import { TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import {
  AntiAffinity, Cluster, ClusterProps, DomainType, Duration, FailoverGroup, FailureDomain, Host, HostState, Image, PlacementPolicy, RestartPriority, Schedule, Size,
  UnattendedAction, VirtualMachine, VmLimits,
} from '../../lib';
import { domains, scratchDir, scratchLock, synth, synthError, synthProblems } from '../synth';

const image = Image.blank('base', Size.mebibytes(64));

interface Shape {
  /** Hosts h1..hN, with racks r1, r2, r1, ... @default 2 */
  readonly hosts?: number;
  readonly capacity?: { readonly cores: number; readonly memoryMiB: number };
  readonly cluster?: Partial<ClusterProps>;
  readonly states?: Readonly<Record<string, HostState>>;
  readonly wakeTimes?: Readonly<Record<string, Duration>>;
  readonly lockFile?: string;
  readonly body: (stack: TerraformStack, cluster: Cluster, hosts: Host[]) => void;
}

/** An app with one stack `test`: hosts h1..hN in a cluster `cluster`, and what `body` adds. */
function clustered(shape: Shape) {
  return (app: Construct) => {
    const stack = new TerraformStack(app, 'test');
    const cap = shape.capacity ?? { cores: 4, memoryMiB: 4096 };
    const hosts = Array.from({ length: shape.hosts ?? 2 }, (_, i) =>
      new Host(stack, `h${i + 1}`, {
        domainType: DomainType.QEMU,
        uri: `qemu+ssh://admin@h${i + 1}.example.net/system`,
        capacity: { cores: cap.cores, memory: Size.mebibytes(cap.memoryMiB) },
        labels: { rack: `r${(i % 2) + 1}` },
        state: shape.states?.[`h${i + 1}`],
        wakeTime: shape.wakeTimes?.[`h${i + 1}`],
      }),
    );
    const cluster = new Cluster(stack, 'cluster', { hosts, lockFile: shape.lockFile ?? scratchLock(), frozenLock: false, ...shape.cluster });
    shape.body(stack, cluster, hosts);
  };
}

describe('Cluster', () => {
  test('3 replicas with hard anti-affinity on 2 hosts: the rule is named', () => {
    const message = synthError(
      clustered({ body: (s, cluster) => new FailoverGroup(s, 'web', { cluster, replicas: 3, antiAffinity: AntiAffinity.hard(), template: { image } }) }),
    );
    expect(message).toContain('[test/cluster] [anti-affinity-hard] web: 3 replicas of group web need 3 distinct hosts with hard anti-affinity; only 2 active hosts');
  });

  test('VMs with RestartPriority.NONE need no room to restart', () => {
    const vms = (priority?: RestartPriority) =>
      clustered({
        capacity: { cores: 1, memoryMiB: 1024 },
        body: (s, cluster) => {
          new VirtualMachine(s, 'a', { cluster, memory: Size.mebibytes(700), image, priority });
          new VirtualMachine(s, 'b', { cluster, memory: Size.mebibytes(700), image, priority });
        },
      });
    expect(() => synth(vms(RestartPriority.NONE))).not.toThrow();
    expect(synthError(vms())).toContain('admission control');
  });

  test('adding a host or a VM moves no existing VM (the lock)', () => {
    const lockFile = scratchLock();
    const shape = (hosts: number, vms: number) =>
      clustered({
        hosts,
        lockFile,
        body: (s, cluster) => {
          for (let i = 1; i <= vms; i++) new VirtualMachine(s, `vm${i}`, { cluster, memory: Size.mebibytes(256), image });
        },
      });
    const before = domains(synth(shape(2, 4)).json('test'));
    const after = domains(synth(shape(3, 6)).json('test'));
    expect(Object.keys(after)).toHaveLength(6);
    for (const [address, d] of Object.entries(before)) expect(after[address]).toEqual(d);
    expect(JSON.parse(fs.readFileSync(lockFile, 'utf8')).placements).toMatchObject(
      Object.fromEntries(Object.values(before).map((d) => [d.name, d.provider.replace('libvirt.', '')])),
    );
  });

  test("maintenance moves only the drained host's VMs", () => {
    const lockFile = scratchLock();
    const shape = (states?: Record<string, HostState>) =>
      clustered({
        hosts: 3,
        lockFile,
        states,
        body: (s, cluster) => {
          for (let i = 1; i <= 6; i++) new VirtualMachine(s, `vm${i}`, { cluster, memory: Size.mebibytes(256), image });
        },
      });
    const before = domains(synth(shape()).json('test'));
    const after = domains(synth(shape({ h2: HostState.MAINTENANCE })).json('test'));
    expect(Object.values(before).filter((d) => d.provider === 'libvirt.h2')).not.toHaveLength(0);
    for (const [address, d] of Object.entries(before)) {
      if (d.provider === 'libvirt.h2') expect(after[address].provider).not.toBe('libvirt.h2');
      else expect(after[address]).toEqual(d);
    }
  });

  test('a frozen lock fails the synth when placement would change, naming the change', () => {
    const lockFile = path.join(scratchDir(), 'frozen.json');
    fs.writeFileSync(lockFile, JSON.stringify({ version: 1, placements: {} }));
    const message = synthError(
      clustered({ lockFile, cluster: { frozenLock: true }, body: (s, cluster) => new VirtualMachine(s, 'vm1', { cluster, image }) }),
    );
    expect(message).toMatch(/\[test\/cluster\] placement lock .*frozen.json would change \(vm1 → h\d \(new\)\)/);
    expect(JSON.parse(fs.readFileSync(lockFile, 'utf8')).placements).toEqual({});
  });

  test('every problem is reported at once: limits profile, missing capacity, bad tolerance', () => {
    const message = synthError((app) => {
      const stack = new TerraformStack(app, 'test');
      const h1 = new Host(stack, 'h1', { capacity: { cores: 16, memory: Size.gibibytes(64) } });
      const h2 = new Host(stack, 'h2');
      const cluster = new Cluster(stack, 'cluster', { hosts: [h1, h2], failuresToTolerate: 2, vmLimits: VmLimits.originalProduct(), lockFile: scratchLock(), frozenLock: false });
      new VirtualMachine(stack, 'big', { cluster, vcpus: 6, memory: Size.gibibytes(40), image });
    });
    expect(message).toContain("VM big (test/big): 6 vCPUs exceeds the 4-vCPU ceiling of the 'original product (4 vCPUs, 32 GiB)' limits profile");
    expect(message).toContain('VM big (test/big): 40 GiB of memory exceeds the 32 GiB ceiling');
    expect(message).toContain('[test/cluster] host h2 (test/h2) has no capacity');
    expect(message).toContain('[test/cluster] failuresToTolerate is 2 but the cluster has 2 host(s)');
  });

  test('an invalid instant and an unknown time zone are validation errors, not exceptions', () => {
    const problems = synthProblems(
      clustered({ cluster: { instant: new Date('not a date'), timeZone: 'Mars/Olympus' }, body: (s, cluster) => new VirtualMachine(s, 'vm', { cluster, image }) }),
    );
    expect(problems).toEqual([
      "[test/cluster] instant is an invalid Date; give a valid one such as new Date('2026-11-26T08:00:00+01:00')",
      "[test/cluster] timeZone 'Mars/Olympus' is not an IANA time zone such as 'Europe/Zurich'",
    ]);
  });

  test('a cluster without hosts is a validation error, even with failover groups that start after each other', () => {
    const problems = synthProblems((app) => {
      const stack = new TerraformStack(app, 'test');
      const cluster = new Cluster(stack, 'cluster', { hosts: [], lockFile: scratchLock(), failuresToTolerate: 0 });
      const db = new FailoverGroup(stack, 'db', { cluster, template: { image } });
      new FailoverGroup(stack, 'web', { cluster, startAfter: [db], template: { image } });
    });
    expect(problems).toContain('[test/cluster] a cluster needs at least one host');
    expect(problems).toContainEqual(expect.stringMatching(/^\[test\/web\/replica-1\] \[capacity\] .*cannot be placed: there are no active hosts/));
  });

  test.each(['null', '[]', '"lock"'])('a lock file holding %s is a validation error naming the file', (text) => {
    const lockFile = path.join(scratchDir(), 'broken.json');
    fs.writeFileSync(lockFile, text);
    const problems = synthProblems(clustered({ lockFile, body: (s, cluster) => new VirtualMachine(s, 'vm', { cluster, image }) }));
    expect(problems).toEqual([`[test/cluster] placement lock ${lockFile} holds ${text}, not a lock object; restore it from version control or delete it`]);
  });

  test('placement reserves the ceilings, not the start values', () => {
    const vm = (maxVcpus: number) =>
      clustered({
        hosts: 1,
        capacity: { cores: 1, memoryMiB: 4096 },
        cluster: { failuresToTolerate: 0, cpuOvercommit: 1 },
        body: (s, cluster) => new VirtualMachine(s, 'db', { cluster, vcpus: 1, maxVcpus, image }),
      });
    expect(() => synth(vm(1))).not.toThrow();
    expect(synthError(vm(2))).toContain('VM db (2 vCPU, 512 MiB) cannot be placed');
  });

  test('hosts with nothing running are standby candidates, in a Terraform output and the report', () => {
    const out = synth(
      clustered({ hosts: 3, cluster: { placementPolicy: PlacementPolicy.PACK }, body: (s, cluster) => new VirtualMachine(s, 'only', { cluster, image }) }),
    );
    const [output] = Object.values<any>(out.json('test').output);
    expect(output.value).toHaveLength(2);
    const report = out.file('test', 'placement-report.md');
    expect(report).toContain('# Placement of test/cluster');
    for (const h of output.value) expect(report).toContain(h);
    expect(out.file('test', 'placement-report.svg')).toMatch(/^<svg/);
  });

  test('a host unknown to the cluster cannot be pinned or preferred', () => {
    const message = synthError(
      clustered({
        body: (s, cluster) => {
          const stranger = new Host(s, 'stranger', { capacity: { cores: 1, memory: Size.gibibytes(1) } });
          new VirtualMachine(s, 'vm', { cluster, host: stranger, image });
          new VirtualMachine(s, 'other', { cluster, preferredHosts: [stranger], image });
        },
      }),
    );
    expect(message).toContain('[test/cluster] VM vm (test/vm) names host stranger, which is not in cluster test/cluster');
    expect(message).toContain('[test/cluster] VM other (test/other) names host stranger, which is not in cluster test/cluster');
  });
});

/** What a user sees when a VM has no place: one validation error, at the VM, with the reason and a fix. */
describe('a VM the cluster cannot place', () => {
  const expectOneValidationError = (problems: string[], vmPath: string, reason: RegExp) => {
    const atVm = problems.filter((p) => p.startsWith(`[${vmPath}] `));
    expect(atVm).toEqual([expect.stringMatching(reason)]);
    for (const p of problems) expect(p).not.toMatch(/Resolution error|has no host/);
  };

  test('too big for every host: says how much is missing on the closest host, and how to fix it', () => {
    const problems = synthProblems(
      clustered({ cluster: { failuresToTolerate: 0 }, body: (s, cluster) => new VirtualMachine(s, 'big', { cluster, memory: Size.gibibytes(8), image }) }),
    );
    expectOneValidationError(problems, 'test/big', /^\[test\/big\] \[capacity\] .*VM big \(1 vCPU, 8192 MiB\) cannot be placed: 2 active host\(s\) lack room; the closest, h\d, has 16 vCPU and 4096 MiB free \(short 0 vCPU, 4096 MiB\) \(add or reactivate hosts, raise the overcommit ratio, or make the VM smaller\)$/);
  });

  test('every host down: says there is no active host', () => {
    const problems = synthProblems(
      clustered({
        states: { h1: HostState.FAILED, h2: HostState.STANDBY },
        cluster: { failuresToTolerate: 0 },
        body: (s, cluster) => new VirtualMachine(s, 'vm', { cluster, image }),
      }),
    );
    expectOneValidationError(problems, 'test/vm', /cannot be placed: there are no active hosts \(add or reactivate hosts/);
    expect(problems).toContain('[test/cluster] every host of the cluster is failed or standby: there is nowhere to run anything; mark a host active');
  });

  test('pinned to a failed host: says the host is failed, and how to fix it', () => {
    const problems = synthProblems(
      clustered({
        states: { h1: HostState.FAILED },
        cluster: { failuresToTolerate: 0 },
        body: (s, cluster, [h1]) => new VirtualMachine(s, 'vm', { cluster, host: h1, image }),
      }),
    );
    expectOneValidationError(problems, 'test/vm', /VM vm is pinned to h1, which is failed \(pin it to an active host, remove the pin, or bring the host back to active\)$/);
  });

  test('hard anti-affinity that cannot be met: names the label and the replica left without a place', () => {
    const problems = synthProblems(
      clustered({
        cluster: { failuresToTolerate: 0 },
        body: (s, cluster) =>
          new FailoverGroup(s, 'web', { cluster, replicas: 3, antiAffinity: AntiAffinity.hard().across(FailureDomain.label('rack')), template: { image } }),
      }),
    );
    expectOneValidationError(problems, 'test/web/replica-3', /VM web-3 .*cannot be placed: 2 active host\(s\) are excluded by hard anti-affinity of group web .*\(add hosts in other failure domains, lower the replica count of group web, or make its anti-affinity soft\)$/);
    expect(problems).toContain(
      '[test/cluster] [anti-affinity-hard] web: 3 replicas of group web need 3 distinct values of label rack with hard anti-affinity; active hosts span only 2 (r1, r2) (add hosts in another rack, lower the replica count, or make the anti-affinity soft)',
    );
  });
});

describe('admission control', () => {
  test('states the real deficit: only the resource that is short, and on which host', () => {
    const problems = synthProblems(
      clustered({
        capacity: { cores: 1, memoryMiB: 1024 },
        body: (s, cluster) => {
          new VirtualMachine(s, 'a', { cluster, memory: Size.mebibytes(700), image });
          new VirtualMachine(s, 'b', { cluster, memory: Size.mebibytes(700), image });
        },
      }),
    );
    // Each host has 1024 MiB: the survivor has 324 MiB left for a 700 MiB restart, so 376 MiB are
    // missing; vCPUs (4 per host at the default overcommit) are not short, so they are not named.
    expect(problems.sort()).toEqual([
      '[test/cluster] admission control: if host h1 fails, VM a cannot restart: the surviving hosts are short of 376 MiB (on h2). Fix: add hosts or capacity, lower failuresToTolerate, or give some VMs RestartPriority.NONE',
      '[test/cluster] admission control: if host h2 fails, VM b cannot restart: the surviving hosts are short of 376 MiB (on h1). Fix: add hosts or capacity, lower failuresToTolerate, or give some VMs RestartPriority.NONE',
    ]);
  });

  test('names the label a hard rule spreads over, and how many values are left', () => {
    const problems = synthProblems(
      clustered({
        hosts: 3,
        body: (s, cluster) =>
          new FailoverGroup(s, 'web', { cluster, replicas: 2, antiAffinity: AntiAffinity.hard().across(FailureDomain.label('rack')), template: { image } }),
      }),
    );
    // h1 and h3 are rack r1, h2 rack r2: losing h2 leaves one rack for two replicas.
    expect(problems).toEqual([
      "[test/cluster] admission control: if host h2 fails, VM web-2 cannot restart: hard anti-affinity of group web across 'rack' has 1 value left for 2 replicas. Fix: add a host in another rack, lower the replica count of group web, or make its anti-affinity soft",
    ]);
  });
});

describe('soft anti-affinity relaxed in a what-if failure', () => {
  test('is a synth warning at the cluster and a line of the placement report', () => {
    const out = synth(
      clustered({ body: (s, cluster) => new FailoverGroup(s, 'web', { cluster, replicas: 2, antiAffinity: AntiAffinity.soft(), template: { image } }) }),
    );
    const relaxed = out.warnings('test').filter((w) => w.includes('[anti-affinity-soft-relaxed-on-failure]'));
    expect(relaxed.sort()).toEqual([
      'test/cluster: [anti-affinity-soft-relaxed-on-failure] web: if host h1 fails, soft anti-affinity by host of group web relaxed: web-1, web-2 share host h2 (no restart plan keeps it) (add hosts: 2 replicas and 1 host to run them; or lower the replica count)',
      'test/cluster: [anti-affinity-soft-relaxed-on-failure] web: if host h2 fails, soft anti-affinity by host of group web relaxed: web-1, web-2 share host h1 (no restart plan keeps it) (add hosts: 2 replicas and 1 host to run them; or lower the replica count)',
    ]);
    const report = out.file('test', 'placement-report.md');
    expect(report).toContain('**anti-affinity-soft-relaxed-on-failure** (web): if host h1 fails, soft anti-affinity by host of group web relaxed: web-1, web-2 share host h2');
    expect(report).toContain('**anti-affinity-soft-relaxed-on-failure** (web): if host h2 fails, soft anti-affinity by host of group web relaxed: web-1, web-2 share host h1');
  });
});

describe('unattended actions', () => {
  const section = (report: string) => report.split('\n').find((l) => l.startsWith('- Unattended actions:'));
  const controller = (out: ReturnType<typeof synth>) => JSON.parse(out.file('test', 'controller.json')).clusters[0];
  const oneVm = (cluster?: Partial<ClusterProps>) => clustered({ cluster, body: (s, c) => new VirtualMachine(s, 'vm', { cluster: c, image }) });

  test('none is on unless named: the report says the controller only watches', () => {
    const out = synth(oneVm());
    expect(section(out.file('test', 'placement-report.md'))).toBe('- Unattended actions: none: the controller only watches');
    expect(controller(out).unattended).toEqual([]);
  });

  test('the context value adds to the props, as a comma-separated string or a list', () => {
    const props = { unattended: [UnattendedAction.FAILOVER] };
    const fromString = synth(oneVm(props), { context: { 'libvirt-cluster:unattended': 'standby-power, schedule' } });
    expect(section(fromString.file('test', 'placement-report.md'))).toBe('- Unattended actions: failover, schedule, standby-power');
    expect(controller(fromString).unattended).toEqual(['failover', 'schedule', 'standby-power']);
    const fromList = synth(oneVm(), { context: { 'libvirt-cluster:unattended': ['schedule'] } });
    expect(controller(fromList).unattended).toEqual(['schedule']);
    expect(controller(synth(oneVm(props))).unattended).toEqual(['failover']);
  });

  test('unknown names fail the synth, each listing the valid ones, with every other problem', () => {
    const problems = synthProblems(oneVm({ failuresToTolerate: -1, unattended: ['fail-over' as UnattendedAction] }), {
      context: { 'libvirt-cluster:unattended': 'failover,reboot' },
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        '[test/cluster] unattended names "fail-over", which is not an unattended action; use one or more of failover, schedule, standby-power',
        '[test/cluster] context libvirt-cluster:unattended names "reboot", which is not an unattended action; use one or more of failover, schedule, standby-power',
        '[test/cluster] failuresToTolerate is -1; give a whole number, 0 or more',
      ]),
    );
  });
});

describe('a host in standby as capacity for failures', () => {
  // Two VMs that need all of one host: with h2 in standby, only h2 can take h1's VMs.
  const shape = (wakeTime: Duration | undefined, cluster: Partial<ClusterProps> = {}) =>
    clustered({
      states: { h2: HostState.STANDBY },
      wakeTimes: wakeTime ? { h2: wakeTime } : {},
      cluster,
      body: (s, c) => {
        new VirtualMachine(s, 'a', { cluster: c, vcpus: 8, memory: Size.mebibytes(1024), image });
        new VirtualMachine(s, 'b', { cluster: c, vcpus: 8, memory: Size.mebibytes(1024), image });
      },
    });
  const standbySection = (report: string) => report.split('## Hosts in standby\n\n')[1].split('\n\n')[0].split('\n').slice(2);

  test('counts when it wakes within the recovery time (2 min by default): the synth passes and the report says why', () => {
    const out = synth(shape(Duration.seconds(90)));
    const report = out.file('test', 'placement-report.md');
    expect(report).toContain('(2 scenarios checked; standby host(s) h2 counted as capacity)');
    expect(report).toContain('| h1 | a → h2 (woken from standby), b → h2 (woken from standby) | — |');
    expect(standbySection(report)).toEqual(['| h2 | 90 s | yes | wakes in 90 s, within the recovery time of 2 min |']);
    expect(JSON.parse(out.file('test', 'controller.json')).clusters[0]).toMatchObject({
      hosts: [{ name: 'h1', state: 'active' }, { name: 'h2', state: 'standby', wakeSeconds: 90 }],
      recoverySeconds: 120,
    });
  });

  test('does not count without a wake time, as before: admission control fails, and says why the spare does not count', () => {
    expect(synthProblems(shape(undefined))).toEqual([
      '[test/cluster] admission control: if host h1 fails, VMs a, b cannot restart: a: no host survives; b: no host survives. ' +
        'Fix: let a, b run on more hosts (pinnedHost, allowedHosts) or give them RestartPriority.NONE; ' +
        'not counted as capacity: standby host h2 (no wake time is known: give the host a wakeTime to count it)',
    ]);
  });

  test('does not count when it wakes after the recovery time; the report says why', () => {
    const outdir = scratchDir('out-');
    expect(synthError(shape(Duration.minutes(3)), { outdir })).toContain('admission control: if host h1 fails, VMs a, b cannot restart');
    const report = fs.readFileSync(path.join(outdir, 'stacks', 'test', 'placement-report.md'), 'utf8');
    expect(standbySection(report)).toEqual(['| h2 | 3 min | no | wakes in 3 min, longer than the recovery time of 2 min: a failover would not wait for it |']);
    expect(() => synth(shape(Duration.minutes(3), { recoveryTime: Duration.minutes(5) }))).not.toThrow();
  });
});

describe('controller.json', () => {
  test("the schedules' window starts and the next boundary, DST-safe, in the cluster's time zone", () => {
    const build = (instant: string) =>
      clustered({
        cluster: { timeZone: 'Europe/Zurich', instant: new Date(instant) },
        body: (s, cluster) => {
          new FailoverGroup(s, 'mail', { cluster, replicas: Schedule.from('08:00', 2).and('20:00', 1), template: { image } });
          new FailoverGroup(s, 'dir', { cluster, replicas: 1, template: { image } });
        },
      });
    // 21:00 CET the evening before the spring-forward night: 08:00 is CEST, 06:00Z
    const file = JSON.parse(synth(build('2026-03-28T20:00:00Z')).file('test', 'controller.json'));
    expect(file.clusters[0]).toMatchObject({
      id: 'cluster',
      timeZone: 'Europe/Zurich',
      instant: '2026-03-28T20:00:00.000Z',
      windowStarts: ['08:00', '20:00'],
      nextWindowStart: '2026-03-29T06:00:00.000Z',
    });
  });
});
