import { ClusterIndex, GroupRule, describeDomain, domainNoun, groupRules, inAnotherDomain, softRuleRelaxed } from './cluster-index';
import {
  ClusterSpec,
  FailureDomainSpec,
  HostState,
  Move,
  PlacementPolicy,
  PRIORITY_ORDER,
  PlacementLock,
  PlacementResult,
  Problem,
  RestartPriority,
  VmSpec,
  compareNames,
  failureDomainKey,
  labelDomain,
  lookup,
  sortedRecord,
} from './model';

export interface PlaceOptions {
  /** The lock of the previous run: VMs stay where it says while they still may. */
  readonly lock?: PlacementLock;
  /** Ignore the lock and place everything from scratch (moves are still reported against it). */
  readonly rebalance?: boolean;
}

/**
 * Places VMs on the active hosts of a cluster.
 *
 * Every VM counts against capacity whether or not it runs in the current schedule window, so the
 * peak shape always fits and switching windows never moves a VM. With a lock, VMs whose host is
 * still usable stay put and only the rest is placed, which keeps Terraform plans small: adding a
 * host or a VM moves nothing, and losing a host moves only what was on it.
 *
 * @example
 * const result = place(cluster, vms, { lock: previous });
 * if (result.problems.length > 0) throw new Error(result.problems.map((p) => p.message).join('\n'));
 */
export function place(cluster: ClusterSpec, vms: readonly VmSpec[], options: PlaceOptions = {}): PlacementResult {
  const problems: Problem[] = [];
  const warnings: Problem[] = [];
  validateCluster(cluster, problems);
  const idx = new ClusterIndex(cluster);
  for (const name of idx.duplicates) {
    problems.push({
      subject: name,
      rule: 'duplicate-name',
      message: `host ${name} is declared more than once; only the first declaration is used`,
      hint: 'give every host a unique name',
    });
  }
  const valid = validVms(vms, problems);
  const rules = groupRules(valid);
  warnAboutRules(idx, valid, rules, warnings);

  const lock = readLock(options.lock, warnings);
  const state = new PlacementState(idx, rules);
  const targets = new Map<string, VmTarget>();
  for (const vm of valid) {
    const t = resolveTargets(idx, vm, problems, warnings);
    if (t) targets.set(vm.name, t);
  }
  checkGroupDomains(idx, rules, targets, problems);
  checkClusterCapacity(idx, valid, problems);

  const order = [...valid].filter((vm) => targets.has(vm.name)).sort(placementOrder);
  const placements = new Map<string, number>();
  const moveReasons = new Map<string, string>();

  // Locked VMs first, so nothing new can take the room they already hold.
  if (lock && !options.rebalance) {
    for (const vm of order) {
      const lockedHost = lookup(lock.placements, vm.name);
      if (lockedHost === undefined) continue;
      const reason = state.whyNotStay(vm, targets.get(vm.name)!, lockedHost);
      if (reason === undefined) {
        const h = idx.indexOf.get(lockedHost)!;
        state.assign(vm, h);
        placements.set(vm.name, h);
      } else {
        moveReasons.set(vm.name, reason);
      }
    }
  }

  for (const vm of order) {
    if (placements.has(vm.name)) continue;
    const target = targets.get(vm.name)!;
    const h = state.choose(vm, target);
    if (h >= 0) {
      state.assign(vm, h);
      placements.set(vm.name, h);
    } else {
      problems.push(state.explainUnplaced(vm, target, lock && lookup(lock.placements, vm.name)));
    }
  }

  warnings.push(...state.softRuleWarnings());

  const moves: Move[] = [];
  if (lock) {
    for (const vm of order) {
      const from = lookup(lock.placements, vm.name);
      const h = placements.get(vm.name);
      if (from === undefined || h === undefined) continue;
      const to = idx.hosts[h].name;
      if (to !== from) moves.push({ vm: vm.name, from, to, reason: options.rebalance ? 'rebalance' : moveReasons.get(vm.name)! });
    }
    moves.sort((a, b) => compareNames(a.vm, b.vm));
  }

  const byName = sortedRecord([...placements].map(([vm, h]) => [vm, idx.hosts[h].name] as const));
  return { placements: byName, problems, warnings, moves, lock: { version: 1, placements: byName } };
}

/** Priority high→none, then larger first (they are the hardest to fit), then name for determinism. */
export function placementOrder(a: VmSpec, b: VmSpec): number {
  return (
    PRIORITY_ORDER[a.priority] - PRIORITY_ORDER[b.priority] ||
    b.memoryMiB - a.memoryMiB ||
    b.vcpus - a.vcpus ||
    compareNames(a.name, b.name)
  );
}

/** Hosts a VM may use, resolved once: pinned and allowed hosts narrow it, preferred hosts rank it. */
interface VmTarget {
  /** Active host indices the VM may use, or undefined for all active hosts. */
  readonly candidates?: readonly number[];
  /** Rank per preferred host index; lower is tried first. */
  readonly preferred?: ReadonlyMap<number, number>;
}

interface DomainState {
  readonly domain: FailureDomainSpec;
  readonly ids: Int32Array;
  /** Domain ids of the members placed so far (groups are small, so a list beats a set). */
  readonly used: number[];
}

interface GroupState {
  readonly hard: DomainState[];
  readonly soft: DomainState[];
  readonly members: { vm: string; host: number }[];
}

class PlacementState {
  private readonly usedCpu: Float64Array;
  private readonly usedMem: Float64Array;
  private readonly vmCount: Int32Array;
  private readonly groups = new Map<string, GroupState>();
  private readonly policyPack: boolean;

  constructor(private readonly idx: ClusterIndex, rules: ReadonlyMap<string, GroupRule>) {
    this.usedCpu = new Float64Array(idx.size);
    this.usedMem = new Float64Array(idx.size);
    this.vmCount = new Int32Array(idx.size);
    this.policyPack = idx.cluster.policy === PlacementPolicy.PACK;
    for (const rule of rules.values()) {
      const domainState = (domain: FailureDomainSpec): DomainState => ({ domain, ids: idx.domains(domain).ids, used: [] });
      this.groups.set(rule.group, {
        hard: rule.hardDomains.map(domainState),
        soft: rule.softDomains.map(domainState),
        members: [],
      });
    }
  }

  public assign(vm: VmSpec, h: number): void {
    this.usedCpu[h] += vm.vcpus;
    this.usedMem[h] += vm.memoryMiB;
    this.vmCount[h]++;
    const g = vm.group === undefined ? undefined : this.groups.get(vm.group);
    if (g) {
      for (const s of g.hard) s.used.push(s.ids[h]);
      for (const s of g.soft) s.used.push(s.ids[h]);
      g.members.push({ vm: vm.name, host: h });
    }
  }

  /** Why a locked VM cannot stay on its host, or undefined when it can. */
  public whyNotStay(vm: VmSpec, target: VmTarget, hostName: string): string | undefined {
    const h = this.idx.indexOf.get(hostName);
    if (h === undefined) return `host ${hostName} no longer exists`;
    const hostState = this.idx.hosts[h].state;
    if (hostState !== HostState.ACTIVE) return `host ${hostName} is ${describeState(hostState)}`;
    if (vm.pinnedHost !== undefined && vm.pinnedHost !== hostName) return `VM is pinned to ${vm.pinnedHost}`;
    if (target.candidates && !target.candidates.includes(h)) return `host ${hostName} is not among the allowed hosts`;
    if (!this.fits(vm, h)) return `VM no longer fits on ${hostName}`;
    const conflict = this.hardConflict(vm, h);
    if (conflict) return `hard anti-affinity with ${conflict}`;
    return undefined;
  }

  /** The best host for a VM, or -1. Lexicographic: soft conflicts, preferred rank, policy, name. */
  public choose(vm: VmSpec, target: VmTarget): number {
    const { idx, usedCpu, usedMem, vmCount } = this;
    const g = vm.group === undefined ? undefined : this.groups.get(vm.group);
    const hard = g && g.hard.some((s) => s.used.length > 0) ? g.hard : undefined;
    const soft = g && g.soft.some((s) => s.used.length > 0) ? g.soft : undefined;
    const preferred = target.preferred;
    const cpu = vm.vcpus;
    const mem = vm.memoryMiB;
    let best = -1;
    let bestSoft = Infinity;
    let bestRank = Infinity;
    let bestScore = Infinity;
    const list = target.candidates;
    const n = list ? list.length : idx.size;
    const pack = this.policyPack;
    for (let i = 0; i < n; i++) {
      const h = list ? list[i] : i;
      if (!idx.active[h]) continue;
      const capCpu = idx.cpuCapacity[h];
      const capMem = idx.memCapacity[h];
      const cpuAfter = usedCpu[h] + cpu;
      const memAfter = usedMem[h] + mem;
      if (cpuAfter > capCpu || memAfter > capMem) continue;
      if (hard && hard.some((s) => s.used.includes(s.ids[h]))) continue;
      let softCount = 0;
      if (soft) {
        for (const s of soft) {
          const d = s.ids[h];
          for (const u of s.used) if (u === d) softCount++;
        }
      }
      if (softCount > bestSoft) continue;
      const rank = preferred === undefined ? Infinity : preferred.get(h) ?? Infinity;
      if (softCount === bestSoft && rank > bestRank) continue;
      const load = Math.max(cpuAfter / capCpu, memAfter / capMem);
      // Pack prefers hosts that are already busy (so idle ones can go to standby), then the fullest.
      const score = pack ? (vmCount[h] > 0 ? 0 : 2) + (1 - load) : load;
      if (softCount === bestSoft && rank === bestRank && score >= bestScore) continue;
      best = h;
      bestSoft = softCount;
      bestRank = rank;
      bestScore = score;
    }
    return best;
  }

  public explainUnplaced(vm: VmSpec, target: VmTarget, lockedHost: string | undefined): Problem {
    const { idx } = this;
    const hosts = target.candidates ?? [...Array(idx.size).keys()].filter((h) => idx.active[h]);
    let noRoom = 0;
    let blocked = 0;
    let closest = -1;
    let closestGap = Infinity;
    const blockingDomains = new Set<string>();
    for (const h of hosts) {
      const freeCpu = idx.cpuCapacity[h] - this.usedCpu[h];
      const freeMem = idx.memCapacity[h] - this.usedMem[h];
      const conflict = this.hardConflict(vm, h);
      if (conflict) {
        blocked++;
        blockingDomains.add(conflict);
        continue;
      }
      noRoom++;
      // Relative shortfall, so a host short of 1 vCPU beats one short of 64 GiB.
      const gap =
        Math.max(0, vm.vcpus - freeCpu) / Math.max(1, vm.vcpus) + Math.max(0, vm.memoryMiB - freeMem) / Math.max(1, vm.memoryMiB);
      if (gap < closestGap) {
        closestGap = gap;
        closest = h;
      }
    }
    const was = lockedHost === undefined ? '' : ` (was on ${lockedHost})`;
    const scope = target.candidates ? 'eligible' : 'active';
    const parts: string[] = [];
    if (hosts.length === 0) parts.push(`there are no ${scope} hosts`);
    if (noRoom > 0) {
      const freeCpu = idx.cpuCapacity[closest] - this.usedCpu[closest];
      const freeMem = idx.memCapacity[closest] - this.usedMem[closest];
      const shortCpu = Math.max(0, vm.vcpus - freeCpu);
      const shortMem = Math.max(0, vm.memoryMiB - freeMem);
      parts.push(
        `${noRoom} ${scope} host(s) lack room; the closest, ${idx.hosts[closest].name}, has ${freeCpu} vCPU and ${freeMem} MiB free ` +
          `(short ${shortCpu} vCPU, ${shortMem} MiB)`,
      );
    }
    if (blocked > 0) {
      parts.push(`${blocked} ${scope} host(s) are excluded by hard anti-affinity of group ${vm.group} (${[...blockingDomains].sort(compareNames).join('; ')})`);
    }
    const rule = noRoom === 0 && blocked > 0 ? 'anti-affinity-hard' : 'capacity';
    return {
      subject: vm.name,
      rule,
      message: `VM ${vm.name} (${vm.vcpus} vCPU, ${vm.memoryMiB} MiB)${was} cannot be placed: ${parts.join('; ')}`,
      hint:
        rule === 'capacity'
          ? 'add or reactivate hosts, raise the overcommit ratio, or make the VM smaller'
          : `add hosts in other failure domains, lower the replica count of group ${vm.group}, or make its anti-affinity soft`,
    };
  }

  /** Warnings for every soft rule that the final placement had to relax. */
  public softRuleWarnings(): Problem[] {
    const out: Problem[] = [];
    for (const [group, g] of [...this.groups].sort((a, b) => compareNames(a[0], b[0]))) {
      for (const s of g.soft) {
        const relaxed = softRuleRelaxed(this.idx, group, s.domain, g.members);
        if (relaxed) out.push(relaxed);
      }
    }
    return out;
  }

  private fits(vm: VmSpec, h: number): boolean {
    return this.usedCpu[h] + vm.vcpus <= this.idx.cpuCapacity[h] && this.usedMem[h] + vm.memoryMiB <= this.idx.memCapacity[h];
  }

  /** The member and domain a VM would clash with on host h, e.g. `web-0 (rack r1)`. */
  private hardConflict(vm: VmSpec, h: number): string | undefined {
    const g = vm.group === undefined ? undefined : this.groups.get(vm.group);
    if (!g) return undefined;
    for (const s of g.hard) {
      const d = s.ids[h];
      const member = g.members.find((m) => s.ids[m.host] === d);
      if (member) return `${member.vm} (${describeDomain(s.domain, this.idx.domains(s.domain).names[d])})`;
    }
    return undefined;
  }
}

/** Whether a value from outside the type system (props, JSON) is a member of a string enum. */
function isOneOf<E extends Record<string, string>>(closedSet: E, value: unknown): value is E[keyof E] {
  return (Object.values(closedSet) as unknown[]).includes(value);
}

function describeState(state: HostState): string {
  switch (state) {
    case HostState.MAINTENANCE:
      return 'in maintenance';
    case HostState.STANDBY:
      return 'in standby';
    default:
      return state;
  }
}

function validateCluster(cluster: ClusterSpec, problems: Problem[]): void {
  const bad = (subject: string, message: string, hint: string): void => {
    problems.push({ subject, rule: 'invalid-value', message, hint });
  };
  if (!Number.isSafeInteger(cluster.failuresToTolerate) || cluster.failuresToTolerate < 0) {
    bad('cluster', `failuresToTolerate is ${cluster.failuresToTolerate}`, 'use a whole number of host failures, 0 or more');
  }
  if (!(Number.isFinite(cluster.cpuOvercommit) && cluster.cpuOvercommit > 0)) {
    bad('cluster', `cpuOvercommit is ${cluster.cpuOvercommit}`, 'use a positive ratio of vCPUs per core, e.g. 4');
  }
  if (!(Number.isFinite(cluster.memoryOvercommit) && cluster.memoryOvercommit > 0)) {
    bad('cluster', `memoryOvercommit is ${cluster.memoryOvercommit}`, 'use a positive ratio, e.g. 1 for no memory overcommit');
  }
  if (!isOneOf(PlacementPolicy, cluster.policy)) {
    bad('cluster', `policy is ${String(cluster.policy)}`, `use one of ${Object.values(PlacementPolicy).join(', ')}`);
  }
  for (const h of cluster.hosts) {
    for (const [field, value] of [
      ['cores', h.cores],
      ['memoryMiB', h.memoryMiB],
      ['reservedCores', h.reservedCores],
      ['reservedMemoryMiB', h.reservedMemoryMiB],
    ] as const) {
      if (!Number.isFinite(value) || value < 0) bad(h.name, `host ${h.name} has ${field} ${value}`, `use a number of 0 or more for ${field}`);
    }
    if (h.reservedCores > h.cores) bad(h.name, `host ${h.name} reserves ${h.reservedCores} of its ${h.cores} cores`, 'reserve fewer cores than the host has');
    if (h.reservedMemoryMiB > h.memoryMiB) {
      bad(h.name, `host ${h.name} reserves ${h.reservedMemoryMiB} of its ${h.memoryMiB} MiB`, 'reserve less memory than the host has');
    }
    if (!isOneOf(HostState, h.state)) bad(h.name, `host ${h.name} has state ${String(h.state)}`, `use one of ${Object.values(HostState).join(', ')}`);
  }
}

function validVms(vms: readonly VmSpec[], problems: Problem[]): VmSpec[] {
  const seen = new Set<string>();
  const out: VmSpec[] = [];
  // By name, so findings come out in the same order however the VMs were listed (the sort is stable: the first declaration wins).
  for (const vm of [...vms].sort((a, b) => compareNames(a.name, b.name))) {
    if (seen.has(vm.name)) {
      problems.push({
        subject: vm.name,
        rule: 'duplicate-name',
        message: `VM ${vm.name} is declared more than once; only the first declaration is placed`,
        hint: 'give every VM a unique name',
      });
      continue;
    }
    seen.add(vm.name);
    const errors: string[] = [];
    if (!Number.isSafeInteger(vm.vcpus) || vm.vcpus < 1) errors.push(`vcpus is ${vm.vcpus}`);
    if (!Number.isSafeInteger(vm.memoryMiB) || vm.memoryMiB < 1) errors.push(`memoryMiB is ${vm.memoryMiB}`);
    if (!isOneOf(RestartPriority, vm.priority)) errors.push(`priority is ${String(vm.priority)}`);
    if (errors.length > 0) {
      problems.push({
        subject: vm.name,
        rule: 'invalid-value',
        message: `VM ${vm.name} is not placed: ${errors.join(', ')}`,
        hint: 'use whole numbers of at least 1 for vcpus and memoryMiB, and a priority of high, medium, low or none',
      });
      continue;
    }
    out.push(vm);
  }
  return out;
}

function readLock(lock: PlacementLock | undefined, warnings: Problem[]): PlacementLock | undefined {
  if (lock === undefined) return undefined;
  if (lock.version !== 1 || typeof lock.placements !== 'object' || lock.placements === null) {
    warnings.push({
      subject: 'lock',
      rule: 'lock',
      message: `placement lock has unsupported version ${String(lock.version)}; it is ignored and VMs are placed from scratch`,
      hint: 'regenerate the lock with this version of the library',
    });
    return undefined;
  }
  return lock;
}

/** Resolves pinned, allowed and preferred host names; reports what cannot be satisfied. */
/** Host names a VM lists that the cluster does not have are ignored, with a warning. */
function warnUnknownHosts(idx: ClusterIndex, vm: VmSpec, rule: string, verb: string, names: readonly string[], warnings: Problem[]): void {
  const unknown = names.filter((n) => !idx.indexOf.has(n));
  if (unknown.length === 0) return;
  warnings.push({
    subject: vm.name,
    rule,
    message: `VM ${vm.name} ${verb} unknown host(s) ${unknown.join(', ')}; they are ignored`,
    hint: 'remove the names or declare the hosts',
  });
}

function resolveTargets(idx: ClusterIndex, vm: VmSpec, problems: Problem[], warnings: Problem[]): VmTarget | undefined {
  const stateOf = (name: string): string => {
    const h = idx.indexOf.get(name);
    return h === undefined ? 'unknown' : idx.hosts[h].state;
  };
  let candidates: number[] | undefined;
  if (vm.allowedHosts !== undefined) {
    warnUnknownHosts(idx, vm, 'allowed-hosts', 'allows', vm.allowedHosts, warnings);
    candidates = [...new Set(vm.allowedHosts.flatMap((n) => idx.indexOf.get(n) ?? []))].filter((h) => idx.active[h]).sort((a, b) => a - b);
    if (vm.pinnedHost === undefined && candidates.length === 0) {
      problems.push({
        subject: vm.name,
        rule: 'allowed-hosts',
        message:
          `VM ${vm.name} may only run on ${vm.allowedHosts.join(', ') || 'no host (empty list)'}, and none of them is active ` +
          `(${vm.allowedHosts.map((n) => `${n}: ${stateOf(n)}`).join(', ')})`,
        hint: 'add an active host to allowedHosts, or bring one of the allowed hosts back to active',
      });
      return undefined;
    }
  }
  if (vm.pinnedHost !== undefined) {
    const h = idx.indexOf.get(vm.pinnedHost);
    const pinnedProblem = (why: string, hint: string): undefined => {
      problems.push({ subject: vm.name, rule: 'pinned-host', message: `VM ${vm.name} is pinned to ${vm.pinnedHost}, ${why}`, hint });
      return undefined;
    };
    if (h === undefined) return pinnedProblem('which is not a host of the cluster', 'pin it to a declared host, or remove the pin');
    if (!idx.active[h]) {
      return pinnedProblem(`which is ${describeState(idx.hosts[h].state)}`, 'pin it to an active host, remove the pin, or bring the host back to active');
    }
    if (vm.allowedHosts !== undefined && !vm.allowedHosts.includes(vm.pinnedHost)) {
      return pinnedProblem('which is not among its allowed hosts', 'add the pinned host to allowedHosts, or remove the pin');
    }
    candidates = [h];
  }
  let preferred: Map<number, number> | undefined;
  if (vm.preferredHosts !== undefined && vm.preferredHosts.length > 0) {
    warnUnknownHosts(idx, vm, 'preferred-hosts', 'prefers', vm.preferredHosts, warnings);
    preferred = new Map();
    vm.preferredHosts.forEach((n, rank) => {
      const h = idx.indexOf.get(n);
      if (h !== undefined && !preferred!.has(h)) preferred!.set(h, rank);
    });
  }
  return { candidates, preferred };
}

/** A group with hard anti-affinity needs as many distinct domains as it has replicas. */
function checkGroupDomains(idx: ClusterIndex, rules: ReadonlyMap<string, GroupRule>, targets: ReadonlyMap<string, VmTarget>, problems: Problem[]): void {
  // Domains spanned by all active hosts, per spec: computed once, as most groups may use any host.
  const activeDomains = new Map<string, number[]>();
  const domainsOf = (domain: FailureDomainSpec, hosts: Iterable<number>): number[] => {
    const ids = idx.domains(domain).ids;
    const out = new Set<number>();
    for (const h of hosts) out.add(ids[h]);
    return [...out];
  };
  const activeHosts = [...Array(idx.size).keys()].filter((h) => idx.active[h]);
  for (const rule of rules.values()) {
    if (rule.hardDomains.length === 0) continue;
    const members = rule.members.filter((m) => targets.has(m));
    const restricted = members.length > 0 && members.every((m) => targets.get(m)!.candidates);
    const eligible = restricted ? new Set(members.flatMap((m) => targets.get(m)!.candidates!)) : undefined;
    const which = restricted ? 'active allowed' : 'active';
    for (const domain of rule.hardDomains) {
      let domains: number[];
      if (eligible) domains = domainsOf(domain, eligible);
      else {
        const key = failureDomainKey(domain);
        if (!activeDomains.has(key)) activeDomains.set(key, domainsOf(domain, activeHosts));
        domains = activeDomains.get(key)!;
      }
      if (domains.length >= members.length) continue;
      const d = idx.domains(domain);
      const message =
        domain.kind === 'host'
          ? `${members.length} replicas of group ${rule.group} need ${members.length} distinct hosts with hard anti-affinity; only ${domains.length} ${which} host${domains.length === 1 ? '' : 's'}`
          : `${members.length} replicas of group ${rule.group} need ${members.length} distinct values of label ${domain.label} with hard anti-affinity; ` +
            `${which} hosts span only ${domains.length} (${domains.map((i) => d.names[i]).sort(compareNames).join(', ') || 'none'})`;
      problems.push({
        subject: rule.group,
        rule: 'anti-affinity-hard',
        message,
        hint: `add hosts${inAnotherDomain(domain)}, lower the replica count, or make the anti-affinity soft`,
      });
    }
  }
}

function checkClusterCapacity(idx: ClusterIndex, vms: readonly VmSpec[], problems: Problem[]): void {
  let needCpu = 0;
  let needMem = 0;
  for (const vm of vms) {
    needCpu += vm.vcpus;
    needMem += vm.memoryMiB;
  }
  let haveCpu = 0;
  let haveMem = 0;
  for (let h = 0; h < idx.size; h++) {
    if (!idx.active[h]) continue;
    haveCpu += idx.cpuCapacity[h];
    haveMem += idx.memCapacity[h];
  }
  if (needCpu <= haveCpu && needMem <= haveMem) return;
  problems.push({
    subject: 'cluster',
    rule: 'capacity',
    message:
      `VMs need ${needCpu} vCPU and ${needMem} MiB in total; active hosts provide ${haveCpu} vCPU and ${haveMem} MiB ` +
      `(short ${Math.max(0, needCpu - haveCpu)} vCPU, ${Math.max(0, needMem - haveMem)} MiB)`,
    hint: 'add hosts, bring hosts out of standby or maintenance, raise the overcommit ratio, or remove VMs',
  });
}

function warnAboutRules(idx: ClusterIndex, vms: readonly VmSpec[], rules: ReadonlyMap<string, GroupRule>, warnings: Problem[]): void {
  for (const vm of vms) {
    if (vm.antiAffinity && vm.group === undefined) {
      warnings.push({
        subject: vm.name,
        rule: 'anti-affinity',
        message: `VM ${vm.name} declares anti-affinity but belongs to no group, so the rule has no effect`,
        hint: 'set the group of its replicas, or drop the rule',
      });
    }
  }
  const labels = new Set<string>();
  for (const rule of rules.values()) {
    if (rule.inconsistent) {
      warnings.push({
        subject: rule.group,
        rule: 'anti-affinity',
        message: `members of group ${rule.group} declare different anti-affinity; all of them apply to the whole group (hard: ${
          rule.hardDomains.map(domainNoun).join(', ') || 'none'
        }; soft: ${rule.softDomains.map(domainNoun).join(', ') || 'none'})`,
        hint: 'give every replica of a group the same anti-affinity',
      });
    }
    for (const d of [...rule.hardDomains, ...rule.softDomains]) if (d.kind === 'label') labels.add(d.label);
  }
  for (const label of [...labels].sort(compareNames)) {
    const domain = labelDomain(label);
    const missing = idx.domains(domain).unlabelled.filter((h) => idx.active[h]).map((h) => idx.hosts[h].name);
    if (missing.length === 0) continue;
    warnings.push({
      subject: `label ${label}`,
      rule: 'failure-domain',
      message: `active host(s) ${missing.join(', ')} have no label ${label}; each counts as its own ${domainNoun(domain)} for anti-affinity`,
      hint: `label every host with its ${label}`,
    });
  }
}
