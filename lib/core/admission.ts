import { ClusterIndex, GroupRule, domainNoun, groupRules, inAnotherDomain, softRuleRelaxed } from './cluster-index';
import { ClusterSpec, FailureDomainSpec, PRIORITY_ORDER, Problem, RestartPriority, VmSpec, compareNames, lookup, sortedRecord } from './model';
import { standbyHosts } from './power';

export interface AdmissionOptions {
  /**
   * Search steps (candidate hosts examined) the exact search may spend on one failure scenario.
   * @default 200000
   */
  readonly stepBudget?: number;
  /**
   * Search steps for the whole run; once spent, scenarios that greedy cannot solve are reported as
   * failing without a search, so a badly overloaded cluster still gets an answer quickly.
   * @default 5000000
   */
  readonly totalStepBudget?: number;
  /**
   * Try greedy first-fit before the exact search. Turning it off sends every scenario with VMs to
   * restart through the exact search, which is slower but useful to cross-check it.
   * @default true
   */
  readonly greedy?: boolean;
}

/** vCPUs and MiB of memory; a resource that is zero is left out, so messages name only what matters. */
export interface ResourceAmount {
  readonly vcpus?: number;
  readonly memoryMiB?: number;
}

/** A hard anti-affinity rule that keeps replicas down after a failure, whatever the free capacity. */
export interface AntiAffinityBlock {
  readonly group: string;
  /** The failure domains the rule spreads the replicas over. */
  readonly domain: FailureDomainSpec;
  /** Distinct domains (hosts, or values of the label) among the surviving active hosts. */
  readonly domainsLeft: number;
  /** Replicas that need a domain of their own: those still running and those to restart. */
  readonly replicas: number;
  /** The VMs of the group that find no host the rule allows. */
  readonly vms: readonly string[];
}

/** One combination of failed hosts after which not every restartable VM finds a place. */
export interface FailureScenario {
  failedHosts: string[];
  /** VMs that would not restart (from a priority-ordered attempt: high-priority VMs go first). */
  unplaced: string[];
  /**
   * The real deficit per resource: how many more vCPUs and MiB the surviving hosts need for the
   * unplaced VMs that lack room to restart too. Counted host by host: on top of the restarts that
   * fit, each such VM (in restart order) takes the surviving host it may use (allowed, and free of
   * its hard anti-affinity) where the least is missing, and that host is given exactly what is
   * missing. So room split over several hosts counts as missing, the figure is never below the
   * plain total (demand minus free room), and adding it where {@link shortOn} says lets every such
   * VM restart. A resource that is not short is 0. VMs kept down by a rule rather than by room
   * ({@link antiAffinity}, {@link pinnedOrAllowed}) add nothing.
   */
  shortfall: { vcpus: number; memoryMiB: number };
  /** The same deficit with only the resources that are short; empty when capacity is not the cause. */
  short: ResourceAmount;
  /** Where the deficit lies: surviving host -> what it lacks. */
  shortOn: Record<string, ResourceAmount>;
  /** Hard anti-affinity rules that keep VMs down (too few failure domains left, or every one taken). */
  antiAffinity: AntiAffinityBlock[];
  /** VMs whose pinned or allowed hosts are all down, with why, e.g. `pinned to h1, which is down`. */
  pinnedOrAllowed: Record<string, string>;
  /** Why the scenario fails, including whether that was proven or assumed. */
  reason: string;
  /** True when the search gave up: the scenario may be survivable but is treated as failing. */
  searchBudgetExceeded: boolean;
}

export interface AdmissionResult {
  ok: boolean;
  /** Only the failing scenarios. */
  scenarios: FailureScenario[];
  /**
   * Soft anti-affinity that a surviving scenario can only restart its VMs by relaxing (rule
   * `anti-affinity-soft-relaxed-on-failure`), one per scenario, group and failure domain spec.
   */
  warnings: Problem[];
  /** How many scenarios were checked. */
  checked: number;
  /** How each scenario was decided: nothing to restart, greedy found room, or the exact search ran. */
  stats: { trivial: number; greedy: number; exact: number; budgetExceeded: number };
}

/** Where the VMs of failed hosts restart. */
export interface RestartPlan {
  failedHosts: string[];
  /** vm -> host for every VM that restarts; when infeasible, the partial plan of the greedy attempt. */
  restarts: Record<string, string>;
  /** Restartable VMs without a place. */
  unplaced: string[];
  /** Why each unplaced VM found no host, e.g. `pinned to failed host h1`. */
  causes: Record<string, string>;
  /** VMs with priority `none` on the failed hosts: they stay down by design. */
  notRestarted: string[];
  /** Soft anti-affinity this plan relaxes because no plan keeps it (see {@link AdmissionResult.warnings}). */
  warnings: Problem[];
  feasible: boolean;
  searchBudgetExceeded: boolean;
  reason: string;
}

const DEFAULT_STEP_BUDGET = 200_000;
const DEFAULT_TOTAL_STEP_BUDGET = 5_000_000;

/**
 * Checks that the cluster survives every combination of up to `failuresToTolerate` failed active
 * hosts: each VM of priority high, medium or low on a failed host must fit on the survivors, on
 * top of what already runs there, with hard anti-affinity, pinned and allowed hosts kept.
 *
 * A host in standby that wakes within the cluster's recovery time (see {@link standbyHosts})
 * counts like an active host that runs nothing: VMs may restart there, and it may itself be one
 * of the failed hosts (a spare that does not wake). Other standby hosts are left out.
 *
 * Off-window replicas count like running ones: they keep their reservation, so the answer holds
 * in every schedule window.
 *
 * The answer is exact: a greedy first-fit settles the easy scenarios, and only when it fails does a
 * backtracking search (with symmetric hosts pruned) decide. A search that runs out of budget
 * counts as a failure and says so.
 *
 * @example
 * const admission = admissionControl(cluster, vms, place(cluster, vms).placements);
 * for (const s of admission.scenarios) console.log(`${s.failedHosts.join('+')}: ${s.unplaced.join(', ')} would stay down`);
 */
export function admissionControl(
  cluster: ClusterSpec,
  vms: readonly VmSpec[],
  placements: Readonly<Record<string, string>>,
  options: AdmissionOptions = {},
): AdmissionResult {
  const planner = new RestartPlanner(cluster, vms, placements);
  const model = planner.model;
  const stepBudget = options.stepBudget ?? DEFAULT_STEP_BUDGET;
  let totalLeft = options.totalStepBudget ?? DEFAULT_TOTAL_STEP_BUDGET;
  const hosts = model.failoverHosts;
  const maxFailures = Math.min(Math.max(0, Math.floor(cluster.failuresToTolerate)), hosts.length);

  const scenarios: FailureScenario[] = [];
  const warnings: Problem[] = [];
  const stats = { trivial: 0, greedy: 0, exact: 0, budgetExceeded: 0 };
  let checked = 0;
  for (let k = 1; k <= maxFailures; k++) {
    forEachCombination(hosts, k, (failed) => {
      checked++;
      const s = planner.decide(failed, Math.min(stepBudget, totalLeft), options.greedy ?? true);
      totalLeft = Math.max(0, totalLeft - s.steps);
      stats[s.method]++;
      if (s.budgetExceeded) stats.budgetExceeded++;
      warnings.push(...s.relaxed);
      if (s.feasible) return;
      scenarios.push({
        failedHosts: failed.map((h) => model.idx.hosts[h].name),
        unplaced: s.unplaced.map((v) => model.vms[v].name),
        ...model.diagnose(failed, s.restarts, s.unplaced),
        reason: s.reason,
        searchBudgetExceeded: s.budgetExceeded,
      });
    });
  }
  return { ok: scenarios.length === 0, scenarios, warnings, checked, stats };
}

/**
 * The sentence to show for a failing scenario: which VMs stay down, only the resources that are
 * short, each hard rule with the label it spreads over, and the fix for each cause.
 *
 * @example
 * for (const s of admissionControl(cluster, vms, placements).scenarios) problems.push(describeScenario(s));
 * // admission control: if host h1 fails, VM a cannot restart: the surviving hosts are short of 2 vCPUs (on h2). Fix: …
 */
export function describeScenario(s: FailureScenario): string {
  const vms = `${s.unplaced.length === 1 ? 'VM' : 'VMs'} ${s.unplaced.join(', ')}`;
  const causes: string[] = [];
  const fixes: string[] = [];
  const byRule = new Set([...Object.keys(s.pinnedOrAllowed), ...s.antiAffinity.flatMap((b) => b.vms)]);
  const lackRoom = s.unplaced.filter((vm) => !byRule.has(vm));
  if (s.short.vcpus !== undefined || s.short.memoryMiB !== undefined) {
    const whose = byRule.size > 0 ? ` for ${lackRoom.join(', ')}` : '';
    causes.push(`the surviving hosts are short of ${describeAmount(s.short)} (on ${Object.keys(s.shortOn).join(', ')})${whose}`);
    fixes.push('add hosts or capacity, lower failuresToTolerate, or give some VMs RestartPriority.NONE');
  }
  for (const b of s.antiAffinity) {
    causes.push(describeAntiAffinityBlock(b));
    fixes.push(`add a host${inAnotherDomain(b.domain)}, lower the replica count of group ${b.group}, or make its anti-affinity soft`);
  }
  const restricted = Object.keys(s.pinnedOrAllowed);
  for (const vm of restricted) causes.push(`${vm}: ${s.pinnedOrAllowed[vm]}`);
  if (restricted.length > 0) {
    fixes.push(`let ${restricted.join(', ')} run on more hosts (pinnedHost, allowedHosts) or give ${restricted.length === 1 ? 'it' : 'them'} RestartPriority.NONE`);
  }
  const assumed = s.searchBudgetExceeded ? ' (assumed: the search for a restart plan ran out of budget, so the cluster may in fact survive this)' : '';
  return `admission control: if ${hostsFail(s.failedHosts)}, ${vms} cannot restart${assumed}: ${causes.join('; ')}. Fix: ${fixes.join('; ')}`;
}

/** `hard anti-affinity of group mail across 'rack' has 2 values left for 3 replicas`, or why no domain is free. */
function describeAntiAffinityBlock(b: AntiAffinityBlock): string {
  const rule = `hard anti-affinity of group ${b.group} across ${b.domain.kind === 'host' ? 'hosts' : `'${b.domain.label}'`}`;
  const left = `${b.domainsLeft} ${b.domain.kind === 'host' ? 'host' : 'value'}${b.domainsLeft === 1 ? '' : 's'}`;
  if (b.domainsLeft < b.replicas) return `${rule} has ${left} left for ${b.replicas} replicas`;
  return `${rule}: every surviving host ${b.vms.length === 1 ? 'it' : 'they'} may use already holds a replica in the same ${domainNoun(b.domain)}`;
}

/** `2 vCPUs and 512 MiB`, `1 vCPU`, or `nothing`. */
export function describeAmount(a: ResourceAmount): string {
  const parts: string[] = [];
  if (a.vcpus !== undefined) parts.push(`${a.vcpus} vCPU${a.vcpus === 1 ? '' : 's'}`);
  if (a.memoryMiB !== undefined) parts.push(`${a.memoryMiB} MiB`);
  return parts.join(' and ') || 'nothing';
}

/** `host h1 fails`, `hosts h1 and h2 fail`, `hosts h1, h2 and h3 fail`. */
function hostsFail(names: readonly string[]): string {
  if (names.length === 1) return `host ${names[0]} fails`;
  return `hosts ${names.slice(0, -1).join(', ')} and ${names[names.length - 1]} fail`;
}

/**
 * Where the restartable VMs of the given failed hosts would go (the same decision admission control
 * makes for that scenario). Unknown host names are ignored.
 */
export function planRestart(
  cluster: ClusterSpec,
  vms: readonly VmSpec[],
  placements: Readonly<Record<string, string>>,
  failedHosts: readonly string[],
  options: AdmissionOptions = {},
): RestartPlan {
  return planRestarts(cluster, vms, placements, [failedHosts], options)[0];
}

/** {@link planRestart} for several scenarios at once, indexing the cluster only once (for what-if tables). */
export function planRestarts(
  cluster: ClusterSpec,
  vms: readonly VmSpec[],
  placements: Readonly<Record<string, string>>,
  scenarios: readonly (readonly string[])[],
  options: AdmissionOptions = {},
): RestartPlan[] {
  const planner = new RestartPlanner(cluster, vms, placements);
  const model = planner.model;
  const name = (v: number): string => model.vms[v].name;
  return scenarios.map((failedHosts) => {
    const failed = [...new Set(failedHosts.flatMap((n) => model.idx.indexOf.get(n) ?? []))].sort((a, b) => a - b);
    const s = planner.decide(failed, options.stepBudget ?? DEFAULT_STEP_BUDGET, options.greedy ?? true);
    return {
      failedHosts: failed.map((h) => model.idx.hosts[h].name),
      restarts: sortedRecord([...s.restarts].map(([v, h]) => [name(v), model.idx.hosts[h].name] as const)),
      unplaced: s.unplaced.map(name).sort(compareNames),
      causes: sortedRecord(s.unplaced.map((v) => [name(v), model.cause(v, failed)] as const)),
      notRestarted: s.notRestarted.map(name).sort(compareNames),
      warnings: s.relaxed,
      feasible: s.feasible,
      searchBudgetExceeded: s.budgetExceeded,
      reason: s.reason,
    };
  });
}

/** Which searches may decide a scenario: greedy first-fit, the exact search, or greedy then exact. */
interface SearchMode {
  readonly greedy: boolean;
  readonly exact: boolean;
}

interface Solution {
  feasible: boolean;
  restarts: Map<number, number>;
  unplaced: number[];
  notRestarted: number[];
  method: 'trivial' | 'greedy' | 'exact';
  budgetExceeded: boolean;
  steps: number;
  reason: string;
}

/** A restart decision and the soft anti-affinity it relaxes (as warnings). */
interface Decision extends Solution {
  relaxed: Problem[];
}

/**
 * Decides where the VMs of failed hosts restart, keeping soft anti-affinity whenever some plan
 * keeps it: a second model treats the soft rules as hard, and its plan wins when there is one.
 * Only when none exists is a plan that relaxes them used, with a warning. Feasibility never
 * depends on soft rules.
 */
class RestartPlanner {
  public readonly model: FailoverModel;
  /** The same cluster with soft anti-affinity treated as hard; absent without soft rules. */
  private readonly strict?: FailoverModel;

  constructor(cluster: ClusterSpec, vms: readonly VmSpec[], placements: Readonly<Record<string, string>>) {
    const placed = new PlacedVms(cluster, vms, placements);
    this.model = new FailoverModel(placed);
    if (this.model.hasSoftRules) this.strict = new FailoverModel(placed, true);
  }

  public decide(failed: readonly number[], stepBudget: number, useGreedy: boolean): Decision {
    const { model, strict } = this;
    // Cheap first: greedy first-fit that keeps the soft rules settles most scenarios.
    if (strict && useGreedy) {
      const kept = strict.solve(failed, 0, { greedy: true, exact: false });
      if (kept.feasible) return { ...kept, relaxed: [] };
    }
    const s = model.solve(failed, stepBudget, { greedy: useGreedy, exact: true });
    if (!s.feasible || !strict) return { ...s, relaxed: [] };
    const relaxed = model.softRelaxations(failed, s.restarts);
    if (relaxed.problems.length === 0) return { ...s, relaxed: [] };
    const kept = strict.solve(failed, stepBudget - s.steps, { greedy: false, exact: true });
    const steps = s.steps + kept.steps;
    if (kept.feasible) return { ...s, restarts: kept.restarts, method: 'exact', steps, relaxed: [] };
    const why = kept.budgetExceeded
      ? 'no restart plan that keeps it was found within the search budget'
      : relaxed.groups > 1
        ? 'no restart plan keeps every soft rule of the VMs to restart'
        : 'no restart plan keeps it';
    const hosts = failed.map((h) => model.idx.hosts[h].name);
    return {
      ...s,
      method: 'exact',
      steps,
      relaxed: relaxed.problems.map((p) => ({ ...p, rule: 'anti-affinity-soft-relaxed-on-failure', message: `if ${hostsFail(hosts)}, ${p.message} (${why})` })),
    };
  }
}

interface HardGroup {
  readonly name: string;
  /** The failure domain specs a plan must keep the members apart in (hard ones, plus soft ones in the soft-keeping model), in the order of `scopes`. */
  readonly domains: readonly FailureDomainSpec[];
  /** Domain id per host, for each of `domains`. */
  readonly scopes: Int32Array[];
  /** The same for the specs by label only: the ones that group hosts together. */
  readonly labelScopes: Int32Array[];
  /** True when one of the specs is by host, i.e. the rule distinguishes individual hosts. */
  readonly byHost: boolean;
  readonly members: number[];
}

/** Per-scenario anti-affinity bookkeeping of one group: blocked domains per scope. */
interface GroupBlocks {
  /** Domains held by members on surviving hosts. */
  readonly fixed: number[][];
  /** Domains taken by restarted members in the plan being built. */
  readonly planned: number[][];
}

/** The placed VMs of a cluster with their hosts, rules and residual capacity, indexed once per run. */
class PlacedVms {
  public readonly idx: ClusterIndex;
  /** Placed VMs, in restart order: priority, then larger first, then name. */
  public readonly vms: VmSpec[];
  public readonly hostOf: Int32Array;
  /** Free capacity per host with every placed VM running. */
  public readonly freeCpu: Float64Array;
  public readonly freeMem: Float64Array;
  public readonly byHost: number[][];
  /** Host mask per VM from pinned and allowed hosts; undefined when any host will do. */
  public readonly allowed: (Uint8Array | undefined)[];
  /** Active hosts and the standby hosts that count, by index: what may fail and what VMs restart on. */
  public readonly failoverHosts: number[];
  /** {@link failoverHosts}, emptiest first: greedy first-fit then behaves like worst-fit yet stops early. */
  public readonly greedyOrder: number[];
  /** The anti-affinity rules of each group, with its members as VM indices. */
  public readonly rules: { readonly rule: GroupRule; readonly members: number[] }[];

  constructor(cluster: ClusterSpec, vms: readonly VmSpec[], placements: Readonly<Record<string, string>>) {
    const idx = (this.idx = new ClusterIndex(cluster));
    const seen = new Set<string>();
    const placed: VmSpec[] = [];
    for (const vm of vms) {
      if (seen.has(vm.name)) continue;
      seen.add(vm.name);
      const host = lookup(placements, vm.name);
      if (host !== undefined && idx.indexOf.has(host)) placed.push(vm);
    }
    this.vms = placed.sort(restartOrder);
    const n = this.vms.length;
    this.hostOf = new Int32Array(n);
    this.freeCpu = Float64Array.from(idx.cpuCapacity);
    this.freeMem = Float64Array.from(idx.memCapacity);
    this.byHost = Array.from({ length: idx.size }, () => []);
    this.vms.forEach((vm, v) => {
      const h = idx.indexOf.get(lookup(placements, vm.name)!)!;
      this.hostOf[v] = h;
      this.freeCpu[h] -= vm.vcpus;
      this.freeMem[h] -= vm.memoryMiB;
      this.byHost[h].push(v);
    });

    const vIndex = new Map(this.vms.map((vm, v) => [vm.name, v]));
    this.rules = [...groupRules(this.vms).values()].map((rule) => ({ rule, members: rule.members.map((m) => vIndex.get(m)!) }));

    this.allowed = this.vms.map((vm) => {
      if (vm.pinnedHost === undefined && vm.allowedHosts === undefined) return undefined;
      const mask = new Uint8Array(idx.size);
      if (vm.allowedHosts === undefined) mask.fill(1);
      else for (const name of vm.allowedHosts) if (idx.indexOf.has(name)) mask[idx.indexOf.get(name)!] = 1;
      if (vm.pinnedHost !== undefined) {
        const pinned = idx.indexOf.get(vm.pinnedHost);
        const keep = pinned !== undefined && mask[pinned] === 1;
        mask.fill(0);
        if (keep) mask[pinned!] = 1;
      }
      return mask;
    });

    const emptiness = (h: number): number =>
      Math.min(this.freeCpu[h] / Math.max(1, idx.cpuCapacity[h]), this.freeMem[h] / Math.max(1, idx.memCapacity[h]));
    const woken = new Set(standbyHosts(cluster).filter((s) => s.counts).map((s) => idx.indexOf.get(s.name)));
    this.failoverHosts = [...Array(idx.size).keys()].filter((h) => idx.active[h] || woken.has(h));
    this.greedyOrder = [...this.failoverHosts].sort((a, b) => emptiness(b) - emptiness(a) || a - b);
  }
}

/**
 * The rules a restart plan must keep and the residual capacity it plans against, over the VMs of a
 * run; a search plans restarts by changing the capacity and puts it back, so each scenario is cheap.
 */
class FailoverModel {
  public readonly idx: ClusterIndex;
  /** Placed VMs, in restart order: priority, then larger first, then name. */
  public readonly vms: VmSpec[];
  private readonly hostOf: Int32Array;
  private readonly freeCpu: Float64Array;
  private readonly freeMem: Float64Array;
  private readonly groupOf: Int32Array;
  private readonly groups: HardGroup[] = [];
  /** Groups with soft anti-affinity (which this model may or may not treat as hard), for warnings. */
  private readonly softGroups: { readonly name: string; readonly domains: readonly FailureDomainSpec[]; readonly members: number[] }[] = [];
  private readonly softGroupOf: Int32Array;
  private readonly allowed: (Uint8Array | undefined)[];
  private readonly byHost: number[][];
  private readonly greedyOrder: number[];
  /** Active hosts and the standby hosts that count, by index. */
  public readonly failoverHosts: readonly number[];

  /** @param keepSoft treat soft anti-affinity as hard, to find plans that keep it */
  constructor(placed: PlacedVms, keepSoft = false) {
    const idx = (this.idx = placed.idx);
    this.vms = placed.vms;
    this.hostOf = placed.hostOf;
    this.byHost = placed.byHost;
    this.allowed = placed.allowed;
    this.greedyOrder = placed.greedyOrder;
    this.failoverHosts = placed.failoverHosts;
    // copies: a search plans restarts by changing them, and puts them back
    this.freeCpu = Float64Array.from(placed.freeCpu);
    this.freeMem = Float64Array.from(placed.freeMem);

    this.groupOf = new Int32Array(this.vms.length).fill(-1);
    this.softGroupOf = new Int32Array(this.vms.length).fill(-1);
    for (const { rule, members } of placed.rules) {
      if (rule.softDomains.length > 0) {
        members.forEach((v) => (this.softGroupOf[v] = this.softGroups.length));
        this.softGroups.push({ name: rule.group, domains: rule.softDomains, members });
      }
      const domains = keepSoft ? [...rule.hardDomains, ...rule.softDomains] : rule.hardDomains;
      if (domains.length === 0) continue;
      members.forEach((v) => (this.groupOf[v] = this.groups.length));
      this.groups.push({
        name: rule.group,
        domains,
        scopes: domains.map((d) => idx.domains(d).ids),
        labelScopes: domains.filter((d) => d.kind === 'label').map((d) => idx.domains(d).ids),
        byHost: domains.some((d) => d.kind === 'host'),
        members,
      });
    }
  }

  public get hasSoftRules(): boolean {
    return this.softGroups.length > 0;
  }

  public solve(failed: readonly number[], stepBudget: number, mode: SearchMode): Solution {
    const failedMask = new Uint8Array(this.idx.size);
    for (const h of failed) failedMask[h] = 1;
    const displaced: number[] = [];
    const notRestarted: number[] = [];
    for (const h of failed) for (const v of this.byHost[h]) (this.vms[v].priority === RestartPriority.NONE ? notRestarted : displaced).push(v);
    displaced.sort((a, b) => a - b); // VM indices are in restart order already
    const base = { notRestarted, steps: 0, budgetExceeded: false };
    if (displaced.length === 0) {
      return { ...base, feasible: true, restarts: new Map(), unplaced: [], method: 'trivial', reason: 'nothing to restart' };
    }

    const blocks = this.blocksFor(displaced, failedMask);
    const greedy = this.greedy(displaced, failedMask, blocks);
    if (mode.greedy && greedy.unplaced.length === 0) {
      return { ...base, feasible: true, restarts: greedy.restarts, unplaced: [], method: 'greedy', reason: 'greedy first-fit' };
    }
    if (!mode.exact) {
      return { ...base, feasible: false, restarts: greedy.restarts, unplaced: greedy.unplaced, method: 'greedy', reason: 'greedy first-fit left VMs without a host' };
    }
    const exact = new ExactSearch(this, displaced, failedMask, blocks, stepBudget).run();
    const failing = { ...base, restarts: greedy.restarts, unplaced: greedy.unplaced, method: 'exact' as const, steps: exact.steps };
    if (exact.assignment) return { ...failing, feasible: true, restarts: exact.assignment, unplaced: [], reason: 'exact search' };
    if (exact.budgetExceeded) {
      return {
        ...failing,
        feasible: false,
        budgetExceeded: true,
        reason: `greedy placement left ${greedy.unplaced.length} VM(s) without a host and the exact search gave up after ${exact.steps} steps; treated as failing`,
      };
    }
    return {
      ...failing,
      feasible: false,
      reason: exact.stuck
        ? exact.stuck.map((v) => `${this.vms[v].name} cannot restart: ${this.cause(v, failed)}`).join('; ')
        : 'no assignment of the VMs to the surviving hosts keeps capacity and hard rules (exhaustive search)',
    };
  }

  /**
   * The soft anti-affinity a restart plan breaks: domains that a restarted VM shares with other
   * members of its group (members that shared one before the failure are placement's warning).
   * `groups` counts the soft-ruled groups with a VM to restart.
   */
  public softRelaxations(failed: readonly number[], restarts: ReadonlyMap<number, number>): { problems: Problem[]; groups: number } {
    const failedMask = new Uint8Array(this.idx.size);
    for (const h of failed) failedMask[h] = 1;
    const touched = [...new Set([...restarts.keys()].map((v) => this.softGroupOf[v]).filter((g) => g >= 0))].sort((a, b) => a - b);
    const problems: Problem[] = [];
    for (const g of touched) {
      const group = this.softGroups[g];
      const restarted = new Set(group.members.filter((m) => restarts.has(m)).map((m) => this.vms[m].name));
      const where = group.members.flatMap((m) => {
        const h = restarts.get(m) ?? (failedMask[this.hostOf[m]] ? undefined : this.hostOf[m]);
        return h === undefined ? [] : [{ vm: this.vms[m].name, host: h }];
      });
      for (const domain of group.domains) {
        const p = softRuleRelaxed(this.idx, group.name, domain, where, (sharing) => sharing.some((vm) => restarted.has(vm)), (h) => !failedMask[h] && (this.idx.active[h] === 1 || where.some((m) => m.host === h)));
        if (p) problems.push(p);
      }
    }
    return { problems, groups: touched.length };
  }

  /** Why a VM of a failed host finds no host on its own, judged against the survivors as they are. */
  public cause(v: number, failed: readonly number[]): string {
    const vm = this.vms[v];
    const failedMask = new Uint8Array(this.idx.size);
    for (const h of failed) failedMask[h] = 1;
    const survivors = this.greedyOrder.filter((h) => !failedMask[h]);
    const allowed = survivors.filter((h) => this.isAllowed(v, h));
    if (allowed.length === 0) {
      if (vm.pinnedHost !== undefined) {
        const pinned = this.idx.indexOf.get(vm.pinnedHost);
        return `pinned to ${vm.pinnedHost}, which is ${pinned !== undefined && failedMask[pinned] ? 'down' : 'not an active host'}`;
      }
      return survivors.length === 0 ? 'no host survives' : 'none of its allowed hosts survives';
    }
    const blocks = this.blocksFor([v], failedMask);
    if (allowed.every((h) => this.hardBlocked(v, h, blocks))) return describeAntiAffinityBlock(this.antiAffinityBlock(this.groupOf[v], [v], failedMask, survivors));
    return `not enough free capacity for ${vm.vcpus} vCPU and ${vm.memoryMiB} MiB on the surviving hosts it may use`;
  }

  /**
   * What a failing scenario lacks (see {@link FailureScenario.shortfall}): the room missing per
   * surviving host, the hard rules and the host restrictions that keep VMs down. Leaves capacity as
   * it found it.
   */
  public diagnose(
    failed: readonly number[],
    restarts: ReadonlyMap<number, number>,
    unplaced: readonly number[],
  ): Pick<FailureScenario, 'shortfall' | 'short' | 'shortOn' | 'antiAffinity' | 'pinnedOrAllowed'> {
    const failedMask = new Uint8Array(this.idx.size);
    for (const h of failed) failedMask[h] = 1;
    const survivors = this.greedyOrder.filter((h) => !failedMask[h]);
    const blocks = this.blocksFor([...restarts.keys(), ...unplaced], failedMask);
    for (const [v, h] of restarts) this.plan(v, h, blocks, 1);
    const added: [v: number, h: number, cpu: number, mem: number][] = [];
    const blocked = new Map<number, number[]>(); // group -> VMs no host its hard rule allows
    const pinnedOrAllowed: [string, string][] = [];
    for (const v of unplaced) {
      const vm = this.vms[v];
      const allowed = survivors.filter((h) => this.isAllowed(v, h));
      if (allowed.length === 0) {
        pinnedOrAllowed.push([vm.name, this.cause(v, failed)]);
        continue;
      }
      let best = -1;
      let bestGap = Infinity;
      for (const h of allowed) {
        if (this.hardBlocked(v, h, blocks)) continue;
        // Relative, so a host short of 1 vCPU beats one short of 64 GiB.
        const gap = Math.max(0, vm.vcpus - this.freeCpu[h]) / Math.max(1, vm.vcpus) + Math.max(0, vm.memoryMiB - this.freeMem[h]) / Math.max(1, vm.memoryMiB);
        if (gap < bestGap) [best, bestGap] = [h, gap];
      }
      if (best < 0) {
        const g = this.groupOf[v];
        blocked.set(g, [...(blocked.get(g) ?? []), v]);
        continue;
      }
      const cpu = Math.max(0, vm.vcpus - this.freeCpu[best]);
      const mem = Math.max(0, vm.memoryMiB - this.freeMem[best]);
      this.freeCpu[best] += cpu;
      this.freeMem[best] += mem;
      this.plan(v, best, blocks, 1);
      added.push([v, best, cpu, mem]);
    }
    for (const [v, h, cpu, mem] of added) {
      this.plan(v, h, blocks, -1);
      this.freeCpu[h] -= cpu;
      this.freeMem[h] -= mem;
    }
    for (const [v, h] of restarts) this.plan(v, h, blocks, -1);

    const perHost = new Map<number, [number, number]>();
    for (const [, h, cpu, mem] of added) {
      const [c, m] = perHost.get(h) ?? [0, 0];
      perHost.set(h, [c + cpu, m + mem]);
    }
    const shortfall = { vcpus: 0, memoryMiB: 0 };
    for (const [cpu, mem] of perHost.values()) {
      shortfall.vcpus += cpu;
      shortfall.memoryMiB += mem;
    }
    return {
      shortfall,
      short: amount(shortfall.vcpus, shortfall.memoryMiB),
      shortOn: sortedRecord([...perHost].filter(([, [c, m]]) => c + m > 0).map(([h, [c, m]]) => [this.idx.hosts[h].name, amount(c, m)] as const)),
      antiAffinity: [...blocked].map(([g, vms]) => this.antiAffinityBlock(g, vms, failedMask, survivors)).sort((a, b) => compareNames(a.group, b.group)),
      pinnedOrAllowed: sortedRecord(pinnedOrAllowed),
    };
  }

  /** The hard rule of group g that leaves the fewest failure domains per replica after the failure. */
  private antiAffinityBlock(g: number, vms: readonly number[], failedMask: Uint8Array, survivors: readonly number[]): AntiAffinityBlock {
    const group = this.groups[g];
    const replicas = group.members.filter((m) => !failedMask[this.hostOf[m]] || this.vms[m].priority !== RestartPriority.NONE).length;
    let worst: AntiAffinityBlock | undefined;
    group.scopes.forEach((ids, i) => {
      const domainsLeft = new Set(survivors.map((h) => ids[h])).size;
      if (worst && domainsLeft - replicas >= worst.domainsLeft - worst.replicas) return;
      worst = { group: group.name, domain: group.domains[i], domainsLeft, replicas, vms: vms.map((v) => this.vms[v].name) };
    });
    return worst!;
  }

  /** Anti-affinity domains already held by group members that keep running. */
  public blocksFor(displaced: readonly number[], failedMask: Uint8Array): Map<number, GroupBlocks> {
    const blocks = new Map<number, GroupBlocks>();
    for (const v of displaced) {
      const g = this.groupOf[v];
      if (g < 0 || blocks.has(g)) continue;
      const group = this.groups[g];
      const fixed = group.scopes.map((ids) => group.members.filter((m) => !failedMask[this.hostOf[m]]).map((m) => ids[this.hostOf[m]]));
      blocks.set(g, { fixed, planned: group.scopes.map(() => []) });
    }
    return blocks;
  }

  public hardBlocked(v: number, h: number, blocks: Map<number, GroupBlocks>): boolean {
    const g = this.groupOf[v];
    if (g < 0) return false;
    const b = blocks.get(g)!;
    const scopes = this.groups[g].scopes;
    for (let i = 0; i < scopes.length; i++) {
      const d = scopes[i][h];
      if (b.fixed[i].includes(d) || b.planned[i].includes(d)) return true;
    }
    return false;
  }

  public isAllowed(v: number, h: number): boolean {
    const mask = this.allowed[v];
    return mask === undefined || mask[h] === 1;
  }

  public plan(v: number, h: number, blocks: Map<number, GroupBlocks>, sign: 1 | -1): void {
    this.freeCpu[h] -= sign * this.vms[v].vcpus;
    this.freeMem[h] -= sign * this.vms[v].memoryMiB;
    const g = this.groupOf[v];
    if (g < 0) return;
    const b = blocks.get(g)!;
    this.groups[g].scopes.forEach((ids, i) => {
      if (sign === 1) b.planned[i].push(ids[h]);
      else b.planned[i].splice(b.planned[i].lastIndexOf(ids[h]), 1);
    });
  }

  public fits(v: number, h: number): boolean {
    return this.vms[v].vcpus <= this.freeCpu[h] && this.vms[v].memoryMiB <= this.freeMem[h];
  }

  public free(h: number): [number, number] {
    return [this.freeCpu[h], this.freeMem[h]];
  }

  public groupIndex(v: number): number {
    return this.groupOf[v];
  }

  public groupByHost(g: number): boolean {
    return this.groups[g].byHost;
  }

  public groupLabelScopes(g: number): Int32Array[] {
    return this.groups[g].labelScopes;
  }

  public get survivorsByEmptiness(): readonly number[] {
    return this.greedyOrder;
  }

  /** First fit over the emptiest hosts; leaves capacity as it found it. */
  private greedy(displaced: readonly number[], failedMask: Uint8Array, blocks: Map<number, GroupBlocks>): { restarts: Map<number, number>; unplaced: number[] } {
    const restarts = new Map<number, number>();
    const unplaced: number[] = [];
    for (const v of displaced) {
      let chosen = -1;
      for (const h of this.greedyOrder) {
        if (failedMask[h] || !this.fits(v, h) || !this.isAllowed(v, h) || this.hardBlocked(v, h, blocks)) continue;
        chosen = h;
        break;
      }
      if (chosen < 0) unplaced.push(v);
      else {
        this.plan(v, chosen, blocks, 1);
        restarts.set(v, chosen);
      }
    }
    for (const [v, h] of restarts) this.plan(v, h, blocks, -1);
    return { restarts, unplaced };
  }
}

/**
 * Backtracking over hosts for each displaced VM, most constrained VM first, with forward checking.
 * Hosts that are interchangeable for the rest of the search (same free capacity, same eligibility
 * for every displaced VM, same label domains, same host-level anti-affinity) are tried only once,
 * which keeps large uniform clusters tractable without losing exactness.
 */
class ExactSearch {
  public steps = 0;
  private readonly order: number[];
  private readonly candidates = new Map<number, number[]>();
  private readonly hostClass = new Map<number, number>();
  /** Groups with host-level anti-affinity planned on each host in the current branch. */
  private readonly plannedByHost = new Map<number, number[]>();
  private aborted = false;

  constructor(
    private readonly model: FailoverModel,
    displaced: readonly number[],
    failedMask: Uint8Array,
    private readonly blocks: Map<number, GroupBlocks>,
    private readonly budget: number,
  ) {
    for (const v of displaced) {
      this.candidates.set(
        v,
        model.survivorsByEmptiness.filter((h) => !failedMask[h] && model.isAllowed(v, h) && model.fits(v, h) && !model.hardBlocked(v, h, blocks)),
      );
    }
    this.order = [...displaced].sort((a, b) => this.candidates.get(a)!.length - this.candidates.get(b)!.length || a - b);
    this.classifyHosts(displaced);
  }

  public run(): { assignment?: Map<number, number>; budgetExceeded: boolean; steps: number; stuck?: number[] } {
    const stuck = this.order.filter((v) => this.candidates.get(v)!.length === 0);
    if (stuck.length > 0) return { budgetExceeded: false, steps: 0, stuck: stuck.sort((a, b) => a - b) };
    const assignment = new Map<number, number>();
    const found = this.search(0, assignment);
    for (const [v, h] of assignment) this.model.plan(v, h, this.blocks, -1);
    if (found) return { assignment, budgetExceeded: false, steps: this.steps };
    return { budgetExceeded: this.aborted, steps: this.steps };
  }

  private search(pos: number, assignment: Map<number, number>): boolean {
    if (pos === this.order.length) return true;
    const v = this.order[pos];
    const model = this.model;
    const tried = new Set<string>();
    for (const h of this.candidates.get(v)!) {
      if (++this.steps > this.budget) {
        this.aborted = true;
        return false;
      }
      if (!model.fits(v, h) || model.hardBlocked(v, h, this.blocks)) continue;
      const key = this.symmetryKey(h);
      if (tried.has(key)) continue;
      tried.add(key);
      this.assign(v, h, assignment);
      if (this.stillPossible(pos + 1) && this.search(pos + 1, assignment)) return true;
      this.unassign(v, h, assignment);
      if (this.aborted) return false;
    }
    return false;
  }

  /** Forward check: every VM still to place has at least one host left. */
  private stillPossible(from: number): boolean {
    for (let i = from; i < this.order.length; i++) {
      const v = this.order[i];
      let any = false;
      for (const h of this.candidates.get(v)!) {
        this.steps++;
        if (this.model.fits(v, h) && !this.model.hardBlocked(v, h, this.blocks)) {
          any = true;
          break;
        }
      }
      if (!any) return false;
    }
    return true;
  }

  private assign(v: number, h: number, assignment: Map<number, number>): void {
    this.model.plan(v, h, this.blocks, 1);
    assignment.set(v, h);
    const g = this.model.groupIndex(v);
    if (g >= 0 && this.model.groupByHost(g)) {
      const list = this.plannedByHost.get(h) ?? [];
      list.push(g);
      this.plannedByHost.set(h, list);
    }
  }

  private unassign(v: number, h: number, assignment: Map<number, number>): void {
    this.model.plan(v, h, this.blocks, -1);
    assignment.delete(v);
    const g = this.model.groupIndex(v);
    if (g >= 0 && this.model.groupByHost(g)) {
      const list = this.plannedByHost.get(h)!;
      list.splice(list.lastIndexOf(g), 1);
    }
  }

  private symmetryKey(h: number): string {
    const [cpu, mem] = this.model.free(h);
    const planned = this.plannedByHost.get(h);
    return `${this.hostClass.get(h)}:${cpu}:${mem}:${planned && planned.length > 0 ? [...planned].sort((a, b) => a - b).join('.') : ''}`;
  }

  /**
   * Hosts with the same static class behave identically for every displaced VM: which VMs may
   * start there, and which label domains they fall in.
   */
  private classifyHosts(displaced: readonly number[]): void {
    const labelScopes = new Set<Int32Array>();
    for (const v of displaced) {
      const g = this.model.groupIndex(v);
      if (g >= 0) for (const ids of this.model.groupLabelScopes(g)) labelScopes.add(ids);
    }
    const scopes = [...labelScopes];
    const hosts = new Set<number>();
    const member = new Map<number, Set<number>>();
    for (const v of displaced) {
      const set = new Set(this.candidates.get(v)!);
      member.set(v, set);
      set.forEach((h) => hosts.add(h));
    }
    const classes = new Map<string, number>();
    for (const h of hosts) {
      // Host-level rules need no domain here: members already running show in eligibility, and
      // restarted ones in plannedByHost.
      const domains = scopes.map((ids) => ids[h]);
      const eligibility = displaced.map((v) => (member.get(v)!.has(h) ? '1' : '0')).join('');
      const key = `${eligibility}|${domains.join(',')}`;
      let c = classes.get(key);
      if (c === undefined) classes.set(key, (c = classes.size));
      this.hostClass.set(h, c);
    }
  }
}

function amount(vcpus: number, memoryMiB: number): ResourceAmount {
  return { ...(vcpus > 0 ? { vcpus } : {}), ...(memoryMiB > 0 ? { memoryMiB } : {}) };
}

function restartOrder(a: VmSpec, b: VmSpec): number {
  return (
    PRIORITY_ORDER[a.priority] - PRIORITY_ORDER[b.priority] ||
    b.memoryMiB - a.memoryMiB ||
    b.vcpus - a.vcpus ||
    compareNames(a.name, b.name)
  );
}

function forEachCombination(items: readonly number[], k: number, visit: (combo: number[]) => void): void {
  const combo: number[] = [];
  const rec = (start: number): void => {
    if (combo.length === k) {
      visit([...combo]);
      return;
    }
    for (let i = start; i <= items.length - (k - combo.length); i++) {
      combo.push(items[i]);
      rec(i + 1);
      combo.pop();
    }
  };
  rec(0);
}
