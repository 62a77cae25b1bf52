/** Random small clusters and VM sets for the property tests of the placement core. */
import fc from 'fast-check';
import {
  AntiAffinitySpec,
  ClusterSpec,
  FailureDomainSpec,
  HOST_DOMAIN,
  HostSpec,
  HostState,
  PlacementPolicy,
  RestartPriority,
  VmSpec,
  failureDomainKey,
  labelDomain,
} from '../../lib/core';

export function host(name: string, overrides: Partial<HostSpec> = {}): HostSpec {
  return { name, cores: 8, memoryMiB: 16384, reservedCores: 0, reservedMemoryMiB: 0, labels: {}, state: HostState.ACTIVE, ...overrides };
}

export function vm(name: string, overrides: Partial<VmSpec> = {}): VmSpec {
  return { name, vcpus: 1, memoryMiB: 1024, priority: RestartPriority.MEDIUM, active: true, ...overrides };
}

export function cluster(hosts: readonly HostSpec[], overrides: Partial<ClusterSpec> = {}): ClusterSpec {
  return { hosts, failuresToTolerate: 1, cpuOvercommit: 1, memoryOvercommit: 1, policy: PlacementPolicy.SPREAD, ...overrides };
}

const stateArb: fc.Arbitrary<HostState> = fc.oneof(
  { weight: 6, arbitrary: fc.constant(HostState.ACTIVE) },
  { weight: 1, arbitrary: fc.constantFrom(HostState.MAINTENANCE, HostState.STANDBY, HostState.FAILED) },
);

export function hostsArb(opts: { min?: number; max: number; allActive?: boolean }): fc.Arbitrary<HostSpec[]> {
  return fc
    .array(
      fc.record({
        cores: fc.integer({ min: 1, max: 8 }),
        memoryMiB: fc.constantFrom(2048, 4096, 8192),
        reservedCores: fc.constantFrom(0, 0, 1),
        reservedMemoryMiB: fc.constantFrom(0, 0, 1024),
        rack: fc.constantFrom<string | undefined>('r0', 'r1', 'r2', undefined),
        // a label that happens to be called `host`: a label like any other, not the host itself
        hostLabel: fc.constantFrom<string | undefined>('x', 'y', undefined),
        state: opts.allActive ? fc.constant(HostState.ACTIVE) : stateArb,
      }),
      { minLength: opts.min ?? 1, maxLength: opts.max },
    )
    .map((list) =>
      list.map((h, i) =>
        host(`h${i}`, {
          cores: h.cores,
          memoryMiB: h.memoryMiB,
          reservedCores: Math.min(h.reservedCores, h.cores),
          reservedMemoryMiB: h.reservedMemoryMiB,
          labels: { ...(h.rack === undefined ? {} : { rack: h.rack }), ...(h.hostLabel === undefined ? {} : { host: h.hostLabel }) },
          state: h.state,
        }),
      ),
    );
}

export function clusterArb(opts: { minHosts?: number; maxHosts: number; maxFailures?: number; allActive?: boolean }): fc.Arbitrary<ClusterSpec> {
  return fc
    .record({
      hosts: hostsArb({ min: opts.minHosts, max: opts.maxHosts, allActive: opts.allActive }),
      failuresToTolerate: fc.integer({ min: 0, max: opts.maxFailures ?? 2 }),
      cpuOvercommit: fc.constantFrom(1, 1.5, 2, 4),
      memoryOvercommit: fc.constantFrom(1, 1, 1.5),
      policy: fc.constantFrom(...Object.values(PlacementPolicy)),
    })
    .map((c) => cluster(c.hosts, c));
}

const antiAffinityArb: fc.Arbitrary<AntiAffinitySpec | undefined> = fc.option(
  fc.record({ hard: fc.boolean(), domain: fc.constantFrom(HOST_DOMAIN, labelDomain('rack'), labelDomain('host')) }),
  { nil: undefined },
);

const priorityArb = fc.constantFrom(...Object.values(RestartPriority));

/** Draws a VM; group members share the group's anti-affinity, as a failover group would give them. */
function vmFieldsArb(hostCount: number) {
  const hostName = fc.integer({ min: 0, max: Math.max(0, hostCount) }).map((i) => `h${i}`); // may name a host that does not exist
  return fc.record({
    vcpus: fc.integer({ min: 1, max: 8 }),
    memoryMiB: fc.constantFrom(512, 1024, 2048, 4096),
    group: fc.constantFrom<string | undefined>(undefined, 'a', 'a', 'b'),
    pinnedHost: fc.option(hostName, { nil: undefined, freq: 8 }),
    allowedHosts: fc.option(fc.uniqueArray(hostName, { minLength: 1, maxLength: 3 }), { nil: undefined, freq: 4 }),
    preferredHosts: fc.option(fc.uniqueArray(hostName, { minLength: 1, maxLength: 3 }), { nil: undefined, freq: 3 }),
    priority: priorityArb,
    active: fc.boolean(),
  });
}

export type VmFields = ReturnType<typeof vmFieldsArb> extends fc.Arbitrary<infer T> ? T : never;
export type GroupSpecs = Record<string, AntiAffinitySpec | undefined>;

export function groupSpecsArb(): fc.Arbitrary<GroupSpecs> {
  return fc.record({ a: antiAffinityArb, b: antiAffinityArb });
}

export function toVm(name: string, f: VmFields, groups: GroupSpecs): VmSpec {
  return vm(name, {
    ...f,
    antiAffinity: f.group === undefined ? undefined : groups[f.group],
  });
}

export function vmsArb(hostCount: number, maxVms: number, groups: GroupSpecs): fc.Arbitrary<VmSpec[]> {
  return fc.array(vmFieldsArb(hostCount), { maxLength: maxVms }).map((list) => list.map((f, i) => toVm(`v${i}`, f, groups)));
}

/** A cluster, its VMs and one extra VM drawn the same way (for "adding a VM moves nothing"). */
export function scenarioArb(opts: { maxHosts: number; maxVms: number; maxFailures?: number; allActive?: boolean }) {
  return clusterArb({ maxHosts: opts.maxHosts, maxFailures: opts.maxFailures, allActive: opts.allActive }).chain((c) =>
    groupSpecsArb().chain((groups) =>
      fc.record({
        cluster: fc.constant(c),
        groups: fc.constant(groups),
        vms: vmsArb(c.hosts.length, opts.maxVms, groups),
        extra: vmFieldsArb(c.hosts.length),
      }),
    ),
  );
}

/** Capacity as the user would compute it by hand, independently of the engine. */
export function capacityOf(h: HostSpec, c: ClusterSpec): { vcpus: number; memoryMiB: number } {
  return {
    vcpus: Math.floor((h.cores - h.reservedCores) * c.cpuOvercommit + 1e-9),
    memoryMiB: Math.floor((h.memoryMiB - h.reservedMemoryMiB) * c.memoryOvercommit + 1e-9),
  };
}

/** The failure domain a host is in; a host without the label is a domain of its own. */
export function domainOf(h: HostSpec, domain: FailureDomainSpec): string {
  if (domain.kind === 'host') return `host:${h.name}`;
  const value = Object.prototype.hasOwnProperty.call(h.labels, domain.label) ? h.labels[domain.label] : undefined;
  return value === undefined ? `unlabelled:${h.name}` : `label:${value}`;
}

/** Hard failure domains of each group, from every member that declares one. */
export function hardDomains(vms: readonly VmSpec[]): Map<string, FailureDomainSpec[]> {
  const out = new Map<string, Map<string, FailureDomainSpec>>();
  for (const v of vms) {
    if (v.group === undefined || !v.antiAffinity?.hard) continue;
    const domains = out.get(v.group) ?? new Map<string, FailureDomainSpec>();
    out.set(v.group, domains.set(failureDomainKey(v.antiAffinity.domain), v.antiAffinity.domain));
  }
  return new Map([...out].map(([g, domains]) => [g, [...domains.values()]]));
}

export function shuffle<T>(list: readonly T[], seed: number): T[] {
  const out = [...list];
  let s = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}
