import { ClusterSpec, FailureDomainSpec, HostSpec, HostState, Problem, VmSpec, compareNames, failureDomainKey, hostCapacity, lookup } from './model';

/**
 * Hosts partitioned into the failure domains of one spec: by host, or by the value of a host label.
 * A host without the label cannot be proven to share a rack with anyone, so it is its own domain.
 */
export interface FailureDomains {
  readonly domain: FailureDomainSpec;
  /** Domain id per host index. */
  readonly ids: Int32Array;
  /** Display name per domain id, e.g. `r1`, or `h7 (no rack label)`. */
  readonly names: readonly string[];
  /** Host indices that lack the label (always empty for domains by host). */
  readonly unlabelled: readonly number[];
}

/**
 * The hosts of a cluster in a fixed order (by name) with their capacities as flat arrays, so the
 * placement and admission loops do arithmetic on numbers instead of walking objects.
 */
export class ClusterIndex {
  public readonly hosts: readonly HostSpec[];
  public readonly indexOf: ReadonlyMap<string, number>;
  public readonly cpuCapacity: Float64Array;
  public readonly memCapacity: Float64Array;
  public readonly active: Uint8Array;
  /** Host names given more than once; only the first is used. */
  public readonly duplicates: readonly string[];
  private readonly domainCache = new Map<string, FailureDomains>();

  constructor(public readonly cluster: ClusterSpec) {
    const seen = new Map<string, HostSpec>();
    const duplicates = new Set<string>();
    for (const h of cluster.hosts) {
      if (seen.has(h.name)) duplicates.add(h.name);
      else seen.set(h.name, h);
    }
    this.hosts = [...seen.values()].sort((a, b) => compareNames(a.name, b.name));
    this.duplicates = [...duplicates].sort(compareNames);
    this.indexOf = new Map(this.hosts.map((h, i) => [h.name, i]));
    const n = this.hosts.length;
    this.cpuCapacity = new Float64Array(n);
    this.memCapacity = new Float64Array(n);
    this.active = new Uint8Array(n);
    this.hosts.forEach((h, i) => {
      const cap = hostCapacity(h, cluster);
      this.cpuCapacity[i] = cap.vcpus;
      this.memCapacity[i] = cap.memoryMiB;
      this.active[i] = h.state === HostState.ACTIVE ? 1 : 0;
    });
  }

  public get size(): number {
    return this.hosts.length;
  }

  public domains(domain: FailureDomainSpec): FailureDomains {
    const key = failureDomainKey(domain);
    let d = this.domainCache.get(key);
    if (!d) {
      d = this.buildDomains(domain);
      this.domainCache.set(key, d);
    }
    return d;
  }

  private buildDomains(domain: FailureDomainSpec): FailureDomains {
    const ids = new Int32Array(this.hosts.length);
    if (domain.kind === 'host') {
      ids.forEach((_, i) => (ids[i] = i));
      return { domain, ids, names: this.hosts.map((h) => h.name), unlabelled: [] };
    }
    const label = domain.label;
    const values = [...new Set(this.hosts.flatMap((h) => lookup(h.labels, label) ?? []))].sort(compareNames);
    const idOf = new Map(values.map((v, i) => [v, i]));
    const names = [...values];
    const unlabelled: number[] = [];
    this.hosts.forEach((h, i) => {
      const v = lookup(h.labels, label);
      if (v === undefined) {
        unlabelled.push(i);
        ids[i] = names.length;
        names.push(`${h.name} (no ${label} label)`);
      } else {
        ids[i] = idOf.get(v)!;
      }
    });
    return { domain, ids, names, unlabelled };
  }
}

/** The anti-affinity rules of one failover group, gathered from its members. */
export interface GroupRule {
  readonly group: string;
  /** Member VM names, sorted. */
  readonly members: readonly string[];
  /** Failure domains no two members may share, sorted by key. */
  readonly hardDomains: readonly FailureDomainSpec[];
  /** Failure domains kept apart when possible; one that is also hard is listed only as hard. */
  readonly softDomains: readonly FailureDomainSpec[];
  /** True when members disagree about their anti-affinity; all their rules then apply to the group. */
  readonly inconsistent: boolean;
}

/**
 * Rules per group. Anti-affinity is a property of the group (no two replicas in one rack), so
 * every rule any member declares applies between all members.
 */
export function groupRules(vms: readonly VmSpec[]): Map<string, GroupRule> {
  const byGroup = new Map<string, VmSpec[]>();
  for (const vm of vms) {
    if (vm.group === undefined) continue;
    let list = byGroup.get(vm.group);
    if (!list) byGroup.set(vm.group, (list = []));
    list.push(vm);
  }
  const rules = new Map<string, GroupRule>();
  for (const group of [...byGroup.keys()].sort(compareNames)) {
    const members = byGroup.get(group)!;
    const hard = new Map<string, FailureDomainSpec>();
    const soft = new Map<string, FailureDomainSpec>();
    const shapes = new Set<string>();
    for (const vm of members) {
      const aa = vm.antiAffinity;
      if (!aa) {
        shapes.add('');
        continue;
      }
      const key = failureDomainKey(aa.domain);
      shapes.add(`${aa.hard}:${key}`);
      (aa.hard ? hard : soft).set(key, aa.domain);
    }
    for (const key of hard.keys()) soft.delete(key);
    const sorted = (domains: Map<string, FailureDomainSpec>): FailureDomainSpec[] =>
      [...domains].sort((a, b) => compareNames(a[0], b[0])).map(([, d]) => d);
    rules.set(group, {
      group,
      members: members.map((m) => m.name).sort(compareNames),
      hardDomains: sorted(hard),
      softDomains: sorted(soft),
      inconsistent: shapes.size > 1,
    });
  }
  return rules;
}

/**
 * The warning for a soft anti-affinity rule that members of a group break, or undefined when they
 * keep it: each domain two or more members share is named with them, e.g. `a, b share rack r1`.
 * Placement and admission control both report relaxed soft rules through this, so they read alike.
 *
 * The fix depends on why it was relaxed: with fewer usable domains than members, only more hosts
 * (in other domains) or fewer replicas help; otherwise the other domains lack room.
 *
 * @param members where each member runs (host index)
 * @param counts which sharing members are worth reporting; by default all
 * @param usable whether a host can take VMs (in this scenario); by default the active hosts
 */
export function softRuleRelaxed(
  idx: ClusterIndex,
  group: string,
  domain: FailureDomainSpec,
  members: Iterable<{ readonly vm: string; readonly host: number }>,
  counts: (sharing: readonly string[]) => boolean = () => true,
  usable: (host: number) => boolean = (h) => idx.active[h] === 1,
): Problem | undefined {
  const { ids, names } = idx.domains(domain);
  const byDomain = new Map<number, string[]>();
  let size = 0;
  for (const m of members) {
    const d = ids[m.host];
    byDomain.set(d, [...(byDomain.get(d) ?? []), m.vm]);
    size++;
  }
  const usableDomains = new Set<number>();
  for (let h = 0; h < idx.size; h++) if (usable(h)) usableDomains.add(ids[h]);
  const shared = [...byDomain]
    .filter(([, vms]) => vms.length > 1 && counts(vms))
    .map(([d, vms]) => `${vms.sort(compareNames).join(', ')} share ${describeDomain(domain, names[d])}`)
    .sort(compareNames);
  if (shared.length === 0) return undefined;
  return {
    subject: group,
    rule: 'anti-affinity-soft',
    message: `soft anti-affinity by ${domainNoun(domain)} of group ${group} relaxed: ${shared.join('; ')}`,
    hint:
      usableDomains.size < size
        ? `add ${domain.kind === 'host' ? 'hosts' : `hosts${inAnotherDomain(domain)}`}: ${size} replicas and ${usableDomains.size} ${usableDomains.size === 1 ? domainNoun(domain) : domainPlural(domain)} to run them; or lower the replica count`
        : `add capacity in other ${domainPlural(domain)} (they lack room), or lower the replica count`,
  };
}

/**
 * What one failure domain of a spec is called in messages: `host`, `rack`, or `label 'host'` for a
 * label that would otherwise read like the hosts themselves.
 */
export function domainNoun(domain: FailureDomainSpec): string {
  if (domain.kind === 'host') return 'host';
  return domain.label === 'host' ? "label 'host'" : domain.label;
}

/** `hosts`, `racks`, or `values of label 'host'`, for hints such as "add capacity in other racks". */
export function domainPlural(domain: FailureDomainSpec): string {
  if (domain.kind === 'host') return 'hosts';
  return domain.label === 'host' ? "values of label 'host'" : `${domain.label}s`;
}

/** ` in another rack`, ` with another value of label 'host'`, or nothing for hosts: for hints such as "add a host in another rack". */
export function inAnotherDomain(domain: FailureDomainSpec): string {
  if (domain.kind === 'host') return '';
  return domain.label === 'host' ? " with another value of label 'host'" : ` in another ${domain.label}`;
}

/** `host h1`, `rack r1` or `label 'host' a`, for messages. */
export function describeDomain(domain: FailureDomainSpec, name: string): string {
  return `${domainNoun(domain)} ${name}`;
}
