/**
 * Plain data shared by the placement core and the constructs. Nothing here knows about Terraform:
 * constructs translate their props into these shapes and read the results back.
 */

/**
 * What a host may be used for. The values are what locks and reports show, so they never change.
 * The constructs re-export this enum rather than spelling the states again.
 */
export enum HostState {
  /** Receives VMs. */
  ACTIVE = 'active',
  /** Drained: nothing new goes there and its VMs move away. */
  MAINTENANCE = 'maintenance',
  /** Powered down to save power: nothing is placed there. */
  STANDBY = 'standby',
  /** Unreachable: its VMs must be placed on the survivors. */
  FAILED = 'failed',
}

/** How placement chooses among hosts that fit. */
export enum PlacementPolicy {
  /** Evens the load across hosts. */
  SPREAD = 'spread',
  /** Keeps as few hosts busy as possible, so the rest can go to standby. */
  PACK = 'pack',
}

/** The SLA tier of a VM: the order in which VMs are placed and restarted. */
export enum RestartPriority {
  HIGH = 'high',
  MEDIUM = 'medium',
  LOW = 'low',
  /** Never restarted on another host; admission control reserves no room for it. */
  NONE = 'none',
}

/** Context key prefix for emergency state overrides: `libvirt-cluster:host-state:<host name>`. */
export const HOST_STATE_CONTEXT = 'libvirt-cluster:host-state:';
/** Context key: `true` fails a synth that would change a lock, `false` writes locks even when CI=true. */
export const FROZEN_LOCK_CONTEXT = 'libvirt-cluster:frozen-lock';
/** Context key of the ISO instant the schedule windows are evaluated for. */
export const INSTANT_CONTEXT = 'libvirt-cluster:instant';

/**
 * What the controller may do on its own, each off until named (in `ClusterProps.unattended` or the
 * context value `libvirt-cluster:unattended`). Each runs the path a person runs: a host-state
 * override in context, synth, reconcile, apply. The values are what the context and controller.json
 * hold, so they never change.
 */
export enum UnattendedAction {
  /** Declare a fenced host failed, so its VMs restart on the survivors. */
  FAILOVER = 'failover',
  /** Switch schedule windows at their boundaries, with the instant pinned to the boundary. */
  SCHEDULE = 'schedule',
  /** Power standby candidates off, and wake standby hosts when they are needed. */
  STANDBY_POWER = 'standby-power',
}

export interface HostSpec {
  readonly name: string;
  /** Physical cores. */
  readonly cores: number;
  readonly memoryMiB: number;
  /** Cores kept for the host itself (hypervisor, storage daemons); never given to VMs. */
  readonly reservedCores: number;
  readonly reservedMemoryMiB: number;
  /** Labels such as `rack` or `room`; any key can serve as a failure domain for anti-affinity (see {@link labelDomain}). */
  readonly labels: Readonly<Record<string, string>>;
  readonly state: HostState;
  /**
   * Seconds from powering the host on until libvirt answers; undefined when unknown. A host in
   * standby counts as capacity for failures only when it wakes within the cluster's recovery time.
   */
  readonly wakeSeconds?: number;
}

/**
 * What anti-affinity keeps replicas apart across: individual hosts, or the values of a host label
 * such as `rack`. Tagged rather than a bare string, so a host label that happens to be called `host`
 * is a label like any other.
 */
export type FailureDomainSpec = { readonly kind: 'host' } | { readonly kind: 'label'; readonly label: string };

/** Every host is a failure domain of its own. */
export const HOST_DOMAIN: FailureDomainSpec = Object.freeze({ kind: 'host' });

/** Hosts with the same value of `label` share a failure domain, e.g. `labelDomain('rack')`. */
export function labelDomain(label: string): FailureDomainSpec {
  return { kind: 'label', label };
}

/** A string that identifies a failure domain spec, for maps and sorting: `host` or `label:rack`. */
export function failureDomainKey(domain: FailureDomainSpec): string {
  return domain.kind === 'host' ? 'host' : `label:${domain.label}`;
}

export interface AntiAffinitySpec {
  /** A hard rule is never broken; a soft rule is kept when possible and relaxed with a warning. */
  readonly hard: boolean;
  /** What the replicas are kept apart across. */
  readonly domain: FailureDomainSpec;
}

export interface VmSpec {
  readonly name: string;
  readonly vcpus: number;
  readonly memoryMiB: number;
  /** The failover group the VM is a replica of; anti-affinity applies among members of one group. */
  readonly group?: string;
  readonly antiAffinity?: AntiAffinitySpec;
  /** The only host the VM may run on. */
  readonly pinnedHost?: string;
  /** Hosts the VM may run on; all active hosts when left out. */
  readonly allowedHosts?: readonly string[];
  /** Hosts tried first, in order, like preferred owners. */
  readonly preferredHosts?: readonly string[];
  readonly priority: RestartPriority;
  /** running in the current schedule window (off-window replicas keep a reserved place but are not deployed) */
  readonly active: boolean;
  /** Static addresses, as `<segment> <address>/<prefix>`, for the report. */
  readonly addresses?: readonly string[];
  /** The VM's disks, for the report's storage section: pool, volume and size as the code gives it. */
  readonly disks?: readonly { readonly pool: string; readonly volume: string; readonly size: string }[];
}

export interface ClusterSpec {
  readonly hosts: readonly HostSpec[];
  /** How many simultaneous host failures the cluster must survive (admission control). */
  readonly failuresToTolerate: number;
  /** vCPUs per usable core, e.g. 4. */
  readonly cpuOvercommit: number;
  /** MiB of VM memory per usable MiB of host memory, e.g. 1 for none. */
  readonly memoryOvercommit: number;
  readonly policy: PlacementPolicy;
  /**
   * Seconds a failover may take. Hosts in standby that wake within it count as capacity for
   * failures (admission control); undefined: no standby host counts.
   */
  readonly recoverySeconds?: number;
}

/** Where each VM was placed last time; committed next to the stack so placements stay put. */
export interface PlacementLock {
  readonly version: 1;
  /** vm name -> host name, keys sorted when serialized */
  readonly placements: Readonly<Record<string, string>>;
}

/** A rule that could not be satisfied (problem) or had to be relaxed (warning). */
export interface Problem {
  /** The VM, group, host or `cluster` the finding is about. */
  readonly subject: string;
  /** A stable identifier such as `capacity` or `anti-affinity-hard`, for filtering and tests. */
  readonly rule: string;
  readonly message: string;
  /** How to fix it. */
  readonly hint: string;
}

/** A VM that leaves the host it was locked to. */
export interface Move {
  readonly vm: string;
  readonly from: string;
  readonly to: string;
  readonly reason: string;
}

export interface PlacementResult {
  /** vm name -> host name, for every VM that could be placed; keys sorted. */
  readonly placements: Readonly<Record<string, string>>;
  readonly problems: readonly Problem[];
  readonly warnings: readonly Problem[];
  readonly moves: readonly Move[];
  /** The lock to commit for the next run. */
  readonly lock: PlacementLock;
}

/** Placement and restart order: higher tiers first. */
export const PRIORITY_ORDER: Readonly<Record<RestartPriority, number>> = {
  [RestartPriority.HIGH]: 0,
  [RestartPriority.MEDIUM]: 1,
  [RestartPriority.LOW]: 2,
  [RestartPriority.NONE]: 3,
};

/**
 * What a host can give to VMs: (cores − reserved) × overcommit, and the same for memory. Whole
 * units, because VMs ask for whole vCPUs and MiB; the small epsilon keeps 10 × 0.7 from flooring to 6.
 */
export function hostCapacity(host: HostSpec, cluster: Pick<ClusterSpec, 'cpuOvercommit' | 'memoryOvercommit'>): {
  vcpus: number;
  memoryMiB: number;
} {
  return {
    vcpus: Math.max(0, Math.floor((host.cores - host.reservedCores) * cluster.cpuOvercommit + 1e-9)),
    memoryMiB: Math.max(0, Math.floor((host.memoryMiB - host.reservedMemoryMiB) * cluster.memoryOvercommit + 1e-9)),
  };
}

/** A record whose keys are inserted in sorted order, so JSON.stringify is stable. */
export function sortedRecord<T>(entries: Iterable<readonly [string, T]>): Record<string, T> {
  const list = [...entries].sort((a, b) => compareNames(a[0], b[0]));
  const out: Record<string, T> = {};
  // defineProperty, so a VM named `__proto__` is a key like any other
  for (const [k, v] of list) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  return out;
}

/** `record[key]` for own keys only, so a VM named `constructor` is not found on Object.prototype. */
export function lookup<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.prototype.hasOwnProperty.call(record, key) ? record[key] : undefined;
}

/** Locale-independent name order, so results do not depend on the machine running the synth. */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
