/**
 * Random cluster models as a user would write them with the constructs: hosts, clusters, VMs,
 * failover groups and standalone VMs. Plain data (fast-check prints a failing one as it is), and a
 * builder that turns one into a stack `test`. `validModelArb` draws models that should synthesize
 * (room to spare, nothing pinned to a host that is down); `modelArb` draws anything, mistakes
 * included: too-big VMs, hosts down, bad pins, duplicate names, hard rules that cannot hold,
 * shared hosts and lock files, secrets in run commands, unknown time zones.
 */
import * as path from 'path';
import { TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import fc from 'fast-check';
import {
  AntiAffinity, Cluster, DomainType, FailoverGroup, FailureDomain, Host, HostState, Image, PlacementPolicy, RestartPriority, Schedule, Size, VirtualMachine,
} from '../../lib';

export interface HostModel {
  readonly id: string;
  /** Set to give two hosts one name. */
  readonly hostName?: string;
  /** Absent: a host without capacity (standalone only). */
  readonly cores?: number;
  readonly memoryMiB: number;
  readonly reservedCores: number;
  readonly rack?: string;
  readonly state: HostState;
}

export interface VmModel {
  readonly id: string;
  readonly name?: string;
  readonly vcpus: number;
  readonly maxVcpus?: number;
  readonly memoryMiB: number;
  readonly maxMemoryMiB?: number;
  /** Index into the model's hosts. */
  readonly pin?: number;
  readonly priority?: RestartPriority;
  readonly dataDiskMiB?: number;
  readonly runCommand?: readonly string[];
}

export interface GroupModel {
  readonly id: string;
  /** A constant, or windows as [start, replicas]. */
  readonly replicas: number | readonly (readonly [string, number])[];
  readonly hard: boolean;
  readonly acrossRack: boolean;
  readonly vcpus: number;
  readonly memoryMiB: number;
}

export interface ClusterModel {
  readonly id: string;
  /** Indices into the model's hosts. */
  readonly hosts: readonly number[];
  readonly failuresToTolerate: number;
  readonly cpuOvercommit: number;
  readonly policy: PlacementPolicy;
  readonly timeZone: string;
  readonly sharedStorage: boolean;
  /** Set to give two clusters one lock file. */
  readonly lockName?: string;
  readonly vms: readonly VmModel[];
  readonly groups: readonly GroupModel[];
}

export interface Model {
  readonly hosts: readonly HostModel[];
  readonly clusters: readonly ClusterModel[];
  /** VMs standing alone on a host, by host index; without one, a VM that has neither host nor cluster. */
  readonly standalone: readonly (VmModel & { readonly host?: number })[];
  readonly instant: string;
}

const RACKS = ['r0', 'r1', 'r2'];
const INSTANTS = ['2026-11-26T03:00:00Z', '2026-11-26T09:30:00Z', '2026-10-25T01:15:00Z', '2026-03-29T01:30:00Z'];
const SCHEDULES: readonly (readonly (readonly [string, number])[])[] = [
  [['08:00', 2], ['20:00', 1]],
  [['02:30', 3], ['20:00', 2]],
  [['00:00', 1]],
];

/** Hosts h0..h(n-1); in a valid model every one has room and at least the first is active. */
function hostsArb(valid: boolean): fc.Arbitrary<HostModel[]> {
  const state = fc.oneof(
    { weight: 5, arbitrary: fc.constant(HostState.ACTIVE) },
    { weight: 1, arbitrary: fc.constantFrom(HostState.MAINTENANCE, HostState.STANDBY, HostState.FAILED) },
  );
  const host = fc.record({
    cores: valid ? fc.integer({ min: 4, max: 8 }) : fc.option(fc.integer({ min: 1, max: 8 }), { nil: undefined, freq: 8 }),
    memoryMiB: valid ? fc.constantFrom(4096, 8192) : fc.constantFrom(512, 2048, 4096),
    reservedCores: fc.constantFrom(0, 0, 1),
    rack: fc.option(fc.constantFrom(...RACKS), { nil: undefined, freq: 4 }),
    state,
    sameNameAs: valid ? fc.constant(undefined) : fc.option(fc.nat(), { nil: undefined, freq: 12 }),
  });
  return fc.array(host, { minLength: 1, maxLength: 4 }).map((list) =>
    list.map((h, i) => ({
      id: `h${i}`,
      hostName: h.sameNameAs !== undefined && i > 0 ? `h${h.sameNameAs % i}` : undefined,
      cores: h.cores === undefined ? undefined : Math.max(h.cores, h.reservedCores + 1),
      memoryMiB: h.memoryMiB,
      reservedCores: h.reservedCores,
      rack: h.rack,
      state: valid && i === 0 ? HostState.ACTIVE : h.state,
    })),
  );
}

function vmArb(id: string, hosts: readonly HostModel[], valid: boolean): fc.Arbitrary<VmModel> {
  const pinnable = hosts.map((h, i) => [h, i] as const).filter(([h]) => !valid || h.state === HostState.ACTIVE).map(([, i]) => i);
  return fc.record({
    id: fc.constant(id),
    name: valid ? fc.constant(undefined) : fc.option(fc.constantFrom('web', 'db', 'web-1'), { nil: undefined, freq: 5 }),
    vcpus: fc.integer({ min: 1, max: valid ? 2 : 4 }),
    maxVcpus: fc.option(fc.integer({ min: 2, max: valid ? 2 : 12 }), { nil: undefined, freq: 4 }),
    memoryMiB: valid ? fc.constantFrom(64, 128, 256) : fc.constantFrom(64, 256, 1024, 8192),
    maxMemoryMiB: fc.option(fc.constant(valid ? 384 : 4096), { nil: undefined, freq: 4 }),
    pin: pinnable.length > 0 ? fc.option(fc.constantFrom(...pinnable), { nil: undefined, freq: 4 }) : fc.constant(undefined),
    priority: fc.option(fc.constantFrom(...Object.values(RestartPriority)), { nil: undefined }),
    dataDiskMiB: fc.option(fc.constantFrom(32, 1024), { nil: undefined, freq: 3 }),
    runCommand: fc.option(
      valid
        ? fc.constant(['systemctl', 'enable', '--now', 'postfix'])
        : fc.constantFrom(['systemctl', 'enable', '--now', 'postfix'], ['sh', '-c', 'echo root:hunter2 | chpasswd'], ['mysql', '-psecret']),
      { nil: undefined, freq: 4 },
    ),
  }).map((vm) => ({ ...vm, maxVcpus: vm.maxVcpus === undefined ? undefined : Math.max(vm.maxVcpus, vm.vcpus) }));
}

function groupArb(id: string, valid: boolean): fc.Arbitrary<GroupModel> {
  return fc.record({
    id: fc.constant(id),
    replicas: fc.oneof(fc.integer({ min: 1, max: valid ? 2 : 3 }), fc.constantFrom(...SCHEDULES)),
    // Valid: soft rules, which admission control may relax but never fails on.
    hard: valid ? fc.constant(false) : fc.boolean(),
    acrossRack: fc.boolean(),
    vcpus: fc.constant(1),
    memoryMiB: valid ? fc.constant(64) : fc.constantFrom(64, 1024),
  });
}

function clusterArb(id: string, hosts: readonly HostModel[], members: readonly number[], valid: boolean, vmPrefix: string): fc.Arbitrary<ClusterModel> {
  const clustered = members.map((i) => hosts[i]);
  return fc.record({
    id: fc.constant(id),
    hosts: fc.constant(members),
    failuresToTolerate: valid ? fc.constant(0) : fc.integer({ min: 0, max: 2 }),
    // Valid: room for every VM and replica on one host of 3 or more usable cores.
    cpuOvercommit: valid ? fc.constant(4) : fc.constantFrom(1, 2, 4),
    policy: fc.constantFrom(...Object.values(PlacementPolicy)),
    timeZone: valid ? fc.constantFrom('UTC', 'Europe/Zurich') : fc.constantFrom('UTC', 'Europe/Zurich', 'Europe/Zurich', 'Mars/Olympus'),
    sharedStorage: fc.boolean(),
    lockName: valid ? fc.constant(undefined) : fc.option(fc.constant('shared-lock'), { nil: undefined, freq: 6 }),
    vms: fc.integer({ min: 0, max: 3 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => vmArb(`${vmPrefix}vm${i}`, clustered.length > 0 ? hosts : [], valid)))),
    groups: fc.integer({ min: 0, max: 2 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => groupArb(`${vmPrefix}g${i}`, valid)))),
  }).map((c) => ({
    ...c,
    // Pins name the model's hosts; in a valid model only the cluster's own active hosts.
    vms: c.vms.map((vm) => (valid && vm.pin !== undefined && !members.includes(vm.pin) ? { ...vm, pin: undefined } : vm)),
  }));
}

function arb(valid: boolean): fc.Arbitrary<Model> {
  return hostsArb(valid).chain((hosts) => {
    const n = hosts.length;
    // Which hosts each cluster has: a valid model gives each host to at most one cluster.
    const split = fc.array(fc.constantFrom<'a' | 'b' | 'both' | 'none'>(...(valid ? (['a', 'a', 'b', 'none'] as const) : (['a', 'a', 'b', 'both', 'none'] as const))), {
      minLength: n,
      maxLength: n,
    });
    return split.chain((owner) => {
      const a = [...Array(n).keys()].filter((i) => owner[i] === 'a' || owner[i] === 'both' || (valid && i === 0));
      const drawn = [...Array(n).keys()].filter((i) => (owner[i] === 'b' || owner[i] === 'both') && !a.includes(i));
      // Valid: a second cluster only with an active host; otherwise its hosts stand alone.
      const b = valid && !drawn.some((i) => hosts[i].state === HostState.ACTIVE) ? [] : drawn;
      const alone = [...Array(n).keys()].filter((i) => !a.includes(i) && !b.includes(i));
      // Valid: a host outside every cluster has no one to stand in for it, so it stays up.
      const placed = valid ? hosts.map((h, i) => (alone.includes(i) ? { ...h, state: HostState.ACTIVE } : h)) : hosts;
      const standaloneHosts = valid ? alone.filter((i) => placed[i].cores !== undefined) : [...Array(n).keys()];
      return fc.record({
        hosts: fc.constant(placed),
        clusters: fc.tuple(
          clusterArb('cluster', placed, a, valid, ''),
          ...(b.length > 0 ? [clusterArb('other', placed, b, valid, 'o-')] : []),
        ),
        standalone:
          standaloneHosts.length === 0
            ? fc.constant([])
            : fc.integer({ min: 0, max: 2 }).chain((k) =>
                fc.tuple(
                  ...Array.from({ length: k }, (_, i) =>
                    fc.record({ vm: vmArb(`s${i}`, [], valid), host: fc.constantFrom(...standaloneHosts) }).map(({ vm, host }) => ({ ...vm, host })),
                  ),
                ),
              ),
        instant: fc.constantFrom(...INSTANTS),
      });
    });
  });
}

/** Models that should synthesize. */
export function validModelArb(): fc.Arbitrary<Model> {
  return arb(true);
}

/** A model as drawn: valid, valid but for some mistakes, or anything. */
export interface DrawnModel {
  readonly model: Model;
  /** Drawn valid: synth must write it. */
  readonly valid: boolean;
  /** The mistakes put into a valid model, each named. */
  readonly mistakes: readonly string[];
  /** Whether one of the mistakes must fail the synth (a host going down need not). */
  readonly mustFail: boolean;
}

/** Valid models, valid models with one or two mistakes, and models drawn with no care at all. */
export function modelArb(): fc.Arbitrary<DrawnModel> {
  const mistake = fc.record({ name: fc.constantFrom(...Object.keys(MISTAKES)), k: fc.nat(12) });
  return fc.oneof(
    arb(true).map((model) => ({ model, valid: true, mistakes: [], mustFail: false })),
    fc.tuple(arb(true), fc.array(mistake, { minLength: 1, maxLength: 2 })).map(([valid, made]) => ({
      model: made.reduce((m, { name, k }) => MISTAKES[name].make(m, k), valid),
      valid: false,
      mistakes: made.map(({ name }) => name),
      mustFail: made.some(({ name }) => MISTAKES[name].fails),
    })),
    arb(false).map((model) => ({ model, valid: false, mistakes: ['drawn with no care'], mustFail: false })),
  );
}

const editCluster = (m: Model, i: number, edit: (c: ClusterModel) => ClusterModel): Model => ({ ...m, clusters: m.clusters.map((c, j) => (j === i ? edit(c) : c)) });
const editHost = (m: Model, i: number, edit: (h: HostModel) => HostModel): Model => ({ ...m, hosts: m.hosts.map((h, j) => (j === i ? edit(h) : h)) });
const withHost = (m: Model): [Model, number] => [{ ...m, hosts: [...m.hosts, { id: `h${m.hosts.length}`, cores: 4, memoryMiB: 4096, reservedCores: 0, state: HostState.ACTIVE }] }, m.hosts.length];
const smallVm = (id: string): VmModel => ({ id, vcpus: 1, memoryMiB: 64 });
/** The first cluster's `k`-th VM (added when it has none) edited. */
const editVm = (m: Model, k: number, edit: (vm: VmModel) => VmModel): Model =>
  editCluster(m, 0, (c) => {
    const vms = c.vms.length > 0 ? c.vms : [smallVm('added')];
    return { ...c, vms: vms.map((vm, j) => (j === k % vms.length ? edit(vm) : vm)) };
  });
/** A host of the first cluster, chosen by `k`. */
const clusterHost = (m: Model, k: number): number => m.clusters[0].hosts[k % m.clusters[0].hosts.length];

/**
 * Mistakes a user makes, each put into a valid model (whose first cluster holds host 0, active).
 * All but the host states must fail the synth.
 */
const MISTAKES: Readonly<Record<string, { readonly fails: boolean; readonly make: (m: Model, k: number) => Model }>> = {
  'a host of a cluster fails': { fails: false, make: (m, k) => editHost(m, clusterHost(m, k), (h) => ({ ...h, state: HostState.FAILED })) },
  'a host of a cluster goes to standby': { fails: false, make: (m, k) => editHost(m, clusterHost(m, k), (h) => ({ ...h, state: HostState.STANDBY })) },
  'every host of a cluster is down': {
    fails: true,
    make: (m) => m.clusters[0].hosts.reduce((acc, i) => editHost(acc, i, (h) => ({ ...h, state: HostState.FAILED })), m),
  },
  'a VM too big for every host': { fails: true, make: (m, k) => editVm(m, k, (vm) => ({ ...vm, memoryMiB: 65536, maxMemoryMiB: undefined })) },
  'a VM pinned to a failed host': {
    fails: true,
    make: (m, k) => editHost(editVm(m, k, (vm) => ({ ...vm, pin: clusterHost(m, k) })), clusterHost(m, k), (h) => ({ ...h, state: HostState.FAILED })),
  },
  'a VM pinned to a host outside its cluster': {
    fails: true,
    make: (m, k) => {
      const [more, i] = withHost(m);
      return editVm(more, k, (vm) => ({ ...vm, pin: i }));
    },
  },
  'hard anti-affinity over more replicas than hosts': {
    fails: true,
    make: (m) => editCluster(m, 0, (c) => ({ ...c, groups: [...c.groups, { id: `hard-${c.groups.length}`, replicas: c.hosts.length + 1, hard: true, acrossRack: false, vcpus: 1, memoryMiB: 64 }] })),
  },
  'two VMs of one name in a cluster': {
    fails: true,
    make: (m) => editCluster(m, 0, (c) => ({ ...c, vms: [...c.vms, { ...smallVm(`twin-${c.vms.length}`), name: 'twin' }, { ...smallVm(`twin-${c.vms.length + 1}`), name: 'twin' }] })),
  },
  'two hosts of one name': {
    fails: true,
    make: (m, k) => {
      const [more, i] = withHost(m);
      return editHost(more, i, (h) => ({ ...h, hostName: more.hosts[k % i].hostName ?? more.hosts[k % i].id }));
    },
  },
  'a host in two clusters': {
    fails: true,
    make: (m) => ({ ...m, clusters: [...m.clusters, { ...m.clusters[0], id: `again-${m.clusters.length}`, vms: [], groups: [] }] }),
  },
  'two clusters on one lock file': {
    fails: true,
    make: (m) => {
      const [more, i] = withHost(m);
      return { ...more, clusters: [...more.clusters, { ...more.clusters[0], id: `again-${more.clusters.length}`, hosts: [i], vms: [], groups: [], lockName: more.clusters[0].id }] };
    },
  },
  'a password in run commands': { fails: true, make: (m, k) => editVm(m, k, (vm) => ({ ...vm, runCommand: ['sh', '-c', 'echo root:hunter2 | chpasswd'] })) },
  'an unknown time zone': { fails: true, make: (m) => editCluster(m, 0, (c) => ({ ...c, timeZone: 'Mars/Olympus' })) },
  'more failures to tolerate than hosts': { fails: true, make: (m) => editCluster(m, 0, (c) => ({ ...c, failuresToTolerate: c.hosts.length })) },
  'a host without capacity in a cluster': { fails: true, make: (m, k) => editHost(m, clusterHost(m, k), (h) => ({ ...h, cores: undefined })) },
  'a cluster without hosts': {
    fails: true,
    make: (m) => ({ ...m, clusters: [...m.clusters, { ...m.clusters[0], id: `empty-${m.clusters.length}`, hosts: [], vms: [smallVm(`homeless-${m.clusters.length}`)], groups: [] }] }),
  },
  'a standalone VM on a host of a cluster': { fails: true, make: (m, k) => ({ ...m, standalone: [...m.standalone, { ...smallVm(`stray-${m.standalone.length}`), host: clusterHost(m, k) }] }) },
  'a VM with neither host nor cluster': { fails: true, make: (m) => ({ ...m, standalone: [...m.standalone, smallVm(`nowhere-${m.standalone.length}`)] }) },
};

const image = Image.blank('base', Size.mebibytes(64));

/** The model as constructs in a stack `test`; lock files go into `lockDir`. */
export function buildModel(model: Model, lockDir: string): (app: Construct) => void {
  return (app) => {
    const stack = new TerraformStack(app, 'test');
    const hosts = model.hosts.map(
      (h) =>
        new Host(stack, h.id, {
          hostName: h.hostName,
          uri: `qemu+ssh://admin@${h.id}.example.net/system`,
          domainType: DomainType.QEMU,
          capacity: h.cores === undefined ? undefined : { cores: h.cores, memory: Size.mebibytes(h.memoryMiB), reservedCores: h.reservedCores },
          labels: h.rack === undefined ? {} : { rack: h.rack },
          state: h.state,
        }),
    );
    for (const c of model.clusters) {
      const cluster = new Cluster(stack, c.id, {
        hosts: c.hosts.map((i) => hosts[i]),
        failuresToTolerate: c.failuresToTolerate,
        cpuOvercommit: c.cpuOvercommit,
        placementPolicy: c.policy,
        timeZone: c.timeZone,
        instant: new Date(model.instant),
        sharedStorage: c.sharedStorage ? { poolName: 'shared', path: '/srv/vmstore' } : undefined,
        lockFile: path.join(lockDir, `${c.lockName ?? c.id}.json`),
        frozenLock: false,
      });
      for (const vm of c.vms) new VirtualMachine(stack, vm.id, { ...vmProps(vm), cluster, host: vm.pin === undefined ? undefined : hosts[vm.pin], priority: vm.priority });
      for (const g of c.groups) {
        const rule = g.hard ? AntiAffinity.hard() : AntiAffinity.soft();
        new FailoverGroup(stack, g.id, {
          cluster,
          replicas: typeof g.replicas === 'number' ? g.replicas : g.replicas.slice(1).reduce((s, [start, n]) => s.and(start, n), Schedule.from(...g.replicas[0])),
          antiAffinity: g.acrossRack ? rule.across(FailureDomain.label('rack')) : rule,
          template: { vcpus: g.vcpus, memory: Size.mebibytes(g.memoryMiB), image },
        });
      }
    }
    for (const vm of model.standalone) new VirtualMachine(stack, vm.id, { ...vmProps(vm), host: vm.host === undefined ? undefined : hosts[vm.host] });
  };
}

function vmProps(vm: VmModel) {
  return {
    name: vm.name,
    vcpus: vm.vcpus,
    maxVcpus: vm.maxVcpus,
    memory: Size.mebibytes(vm.memoryMiB),
    maxMemory: vm.maxMemoryMiB === undefined ? undefined : Size.mebibytes(Math.max(vm.maxMemoryMiB, vm.memoryMiB)),
    image,
    dataDisk: vm.dataDiskMiB === undefined ? undefined : { size: Size.mebibytes(vm.dataDiskMiB) },
    cloudInit: vm.runCommand === undefined ? undefined : { runCommands: [vm.runCommand] },
  };
}

/** The provider aliases of the model's reachable hosts (neither failed nor in standby). */
export function reachableAliases(model: Model): Set<string> {
  return new Set(
    model.hosts.filter((h) => h.state !== HostState.FAILED && h.state !== HostState.STANDBY).map((h) => `libvirt.${h.hostName ?? h.id}`),
  );
}
