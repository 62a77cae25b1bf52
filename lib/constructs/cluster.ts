import * as path from 'path';
import { Annotations, Lazy, TerraformOutput, TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import { ControllerCluster, controllerCluster, parseUnattendedActions } from '../core/controller-file';
import { Duration } from '../core/duration';
import { ClusterSpec, FROZEN_LOCK_CONTEXT, HostSpec, INSTANT_CONTEXT, PlacementPolicy, UnattendedAction, VmSpec, compareNames } from '../core/model';
import { ClusterPlan, formatProblem, planCluster } from '../core/planner';
import { renderReport } from '../core/report';
import { isTimeZone } from '../core/schedule';
import { LeanVolume } from '../generated-lean';
import { IBaseImage, IPlaceable, IPlacementCluster, IPlacementHost, IReplicaPlacer, IScheduledGroup } from './contract';
import { readLock, writeLock } from './lock-store';
import { Segment } from './segment';
import { SecureDefaults } from './secure-defaults';
import { locksFrozen, StackPlacement } from './stack-placement';
import { VmLimits } from './vm-limits';

export { PlacementPolicy, UnattendedAction } from '../core/model';
export { CONTROLLER_FILE } from '../core/controller-file';
export type { ControllerCluster, ControllerFile, ControllerHost } from '../core/controller-file';

/** Context keys a scheduled CI job or an operator can set without touching code. */
export const CLUSTER_CONTEXT = {
  /** ISO instant the schedule windows are evaluated for, e.g. `2026-11-26T03:00:00Z`. */
  instant: INSTANT_CONTEXT,
  /** `true`: place every VM from scratch, ignoring the lock. */
  rebalance: 'libvirt-cluster:rebalance',
  /** `true`: fail the synth when a lock would change (the default when CI=true); `false`: write locks even when CI=true. */
  frozenLock: FROZEN_LOCK_CONTEXT,
  /**
   * Unattended actions to turn on in every cluster, on top of `unattended`: a comma-separated
   * string (`failover,schedule`) or a list of names.
   */
  unattended: 'libvirt-cluster:unattended',
} as const;

/**
 * Storage every host sees at the same path (NFS, a cluster file system, or in a lab a shared
 * directory), as a libvirt pool of the same name defined on every host beforehand, like the
 * mount behind it. Disks of clustered VMs live there, so they survive a host failure.
 */
export interface SharedStorage {
  /** Name of the libvirt pool on every host. */
  readonly poolName: string;
  /** Path of the pool on every host, for the report. */
  readonly path: string;
}

export interface ClusterProps {
  /** The hosts that back each other up. */
  readonly hosts: readonly IPlacementHost[];
  /**
   * Shared storage for base images, boot and data disks.
   * @default - none: disks stay on their host's local pool and are lost when a VM moves
   */
  readonly sharedStorage?: SharedStorage;
  /**
   * Simultaneous host failures every restartable VM must survive (admission control).
   * @default 1
   */
  readonly failuresToTolerate?: number;
  /**
   * vCPUs per usable core.
   * @default 4
   */
  readonly cpuOvercommit?: number;
  /**
   * Guest memory per usable unit of host memory.
   * @default 1 (no overcommit)
   */
  readonly memoryOvercommit?: number;
  /**
   * How hosts are chosen.
   * @default PlacementPolicy.SPREAD
   */
  readonly placementPolicy?: PlacementPolicy;
  /**
   * Per-VM ceilings.
   * @default VmLimits.hostCapacity()
   */
  readonly vmLimits?: VmLimits;
  /**
   * IANA time zone of schedule windows.
   * @default UTC
   */
  readonly timeZone?: string;
  /**
   * The instant schedule windows are evaluated for.
   * @default - the context value libvirt-cluster:instant, else now
   */
  readonly instant?: Date;
  /**
   * The placement lock file, committed next to the stack's code. Two clusters never share one.
   * @default - <working directory>/<stack name>.placement-lock.json for a cluster with id
   *   `cluster`, else <working directory>/<stack name>.<cluster id>.placement-lock.json
   */
  readonly lockFile?: string;
  /**
   * Fail the synth when the lock would change instead of writing it.
   * @default - the context value libvirt-cluster:frozen-lock when it is true or false, else true when CI=true
   */
  readonly frozenLock?: boolean;
  /**
   * Ignore the lock and place everything afresh (moves are reported).
   * @default - the context value libvirt-cluster:rebalance, else false
   */
  readonly rebalance?: boolean;
  /**
   * The network segments every host has under the same name (host bridges, macvtap, Open vSwitch,
   * isolated networks): a VM's NICs are on these, so it finds them wherever it is placed.
   * Isolated segments' networks are created on every host.
   * @default - none besides `defaultSegment`
   */
  readonly segments?: readonly Segment[];
  /**
   * Where a VM without `nics` gets its one NIC.
   * @default - an isolated segment `<cluster id>-isolated`, created on every host when a VM uses it
   */
  readonly defaultSegment?: Segment;
  /**
   * What the controller may do for this cluster on its own, running the path a person runs
   * (host-state override in context, synth, reconcile, apply). The context value
   * libvirt-cluster:unattended adds to these. Listed in the report and in controller.json.
   * @default - none: the controller only watches
   */
  readonly unattended?: readonly UnattendedAction[];
  /**
   * How long a failover may take. A host in standby whose `wakeTime` is within it counts as
   * capacity for failures (admission control), as a failover can wake it in time.
   * @default Duration.minutes(2)
   */
  readonly recoveryTime?: Duration;
}

/**
 * A set of hosts that back each other up (the host-level failover group). It places its VMs at
 * synth with the pure placement core, checks that every restartable VM survives the loss of any
 * `failuresToTolerate` hosts, keeps placements stable through a committed lock file, and stands
 * in for a host marked `failed` or `standby` so that Terraform never contacts it.
 *
 * @example
 * const cluster = new Cluster(stack, 'cluster', {
 *   hosts: [kvm1, kvm2],
 *   sharedStorage: { poolName: 'shared', path: '/srv/vmstore' },
 *   lockFile: path.join(__dirname, 'office.placement-lock.json'),
 * });
 */
export class Cluster extends Construct implements IReplicaPlacer, IPlacementCluster {
  public readonly hosts: readonly IPlacementHost[];
  public readonly sharedStorage?: SharedStorage;
  public readonly failuresToTolerate: number;
  public readonly cpuOvercommit: number;
  public readonly memoryOvercommit: number;
  public readonly placementPolicy: PlacementPolicy;
  public readonly vmLimits: VmLimits;
  public readonly timeZone: string;
  public readonly instant: Date;
  public readonly lockFile: string;
  public readonly frozenLock: boolean;
  public readonly rebalance: boolean;
  public readonly segments: readonly Segment[];
  public readonly defaultSegment: Segment;
  /** The unattended actions on: the props' and the context's, sorted. */
  public readonly unattended: readonly UnattendedAction[];
  public readonly recoveryTime: Duration;
  private readonly unattendedProblems: readonly string[];
  private readonly vms: (IPlaceable & { readonly vmName: string })[] = [];
  private readonly groups: IScheduledGroup[] = [];
  private readonly sharedImages = new Map<string, LeanVolume>();
  private readonly usedSegments = new Set<Segment>();
  private readonly instantProblem?: string;
  /** Whether the instant came from a prop or context, not the clock: only a pinned one is written out. */
  private readonly instantPinned: boolean;
  private memo?: {
    readonly spec: ClusterSpec;
    readonly vms: readonly VmSpec[];
    readonly plan: ClusterPlan;
    readonly inputProblems: readonly string[];
    /** The plan's placement problems by the VM they are about: each VM reports its own. */
    readonly byVm: ReadonlyMap<string, readonly string[]>;
  };
  private placed = false;

  constructor(scope: Construct, id: string, props: ClusterProps) {
    super(scope, id);
    this.hosts = props.hosts;
    this.sharedStorage = props.sharedStorage;
    this.failuresToTolerate = props.failuresToTolerate ?? 1;
    this.cpuOvercommit = props.cpuOvercommit ?? 4;
    this.memoryOvercommit = props.memoryOvercommit ?? 1;
    this.placementPolicy = props.placementPolicy ?? PlacementPolicy.SPREAD;
    this.vmLimits = props.vmLimits ?? VmLimits.hostCapacity();
    this.timeZone = props.timeZone ?? 'UTC';
    const instant = props.instant ? validInstant(props.instant) : contextInstant(this.node.tryGetContext(CLUSTER_CONTEXT.instant));
    this.instant = typeof instant === 'string' ? new Date() : instant;
    this.instantProblem = typeof instant === 'string' ? instant : undefined;
    this.instantPinned = props.instant !== undefined || this.node.tryGetContext(CLUSTER_CONTEXT.instant) !== undefined;
    const stackName = TerraformStack.of(this).node.id;
    this.lockFile = props.lockFile ?? path.join(process.cwd(), id === 'cluster' ? `${stackName}.placement-lock.json` : `${stackName}.${id}.placement-lock.json`);
    this.frozenLock = props.frozenLock ?? locksFrozen(this);
    this.rebalance = props.rebalance ?? this.node.tryGetContext(CLUSTER_CONTEXT.rebalance) === true;
    this.segments = props.segments ?? [];
    this.defaultSegment = props.defaultSegment ?? Segment.isolated(`${id.toLowerCase().replace(/[^a-z0-9-]/g, '-')}-isolated`);
    for (const segment of this.segments) this.useSegment(segment);
    this.recoveryTime = props.recoveryTime ?? Duration.minutes(2);
    const fromProps = parseUnattendedActions(props.unattended ?? [], 'unattended');
    const fromContext = contextUnattended(this.node.tryGetContext(CLUSTER_CONTEXT.unattended));
    this.unattended = [...new Set([...fromProps.actions, ...fromContext.actions])].sort(compareNames);
    this.unattendedProblems = [...fromProps.problems, ...fromContext.problems];
    this.node.addValidation({ validate: () => this.validate() });
    StackPlacement.of(this).addCluster(this);
    new TerraformOutput(this, 'StandbyCandidates', {
      value: Lazy.listValue({ produce: () => [...this.plan().standbyCandidates] }),
      description: 'Active hosts that run no VM in the current schedule window: they could go to standby',
    });
  }

  /** Name of the shared pool disks go to, if the cluster has shared storage. */
  public get sharedPoolName(): string | undefined {
    return this.sharedStorage?.poolName;
  }

  /** Makes sure `segment` is on every host: its network is created on each (isolated segments). */
  public useSegment(segment: Segment): void {
    // Once per segment: every VM on the default segment asks, and a cluster may have 1,000 hosts.
    if (this.usedSegments.has(segment)) return;
    this.usedSegments.add(segment);
    for (const host of this.hosts) host.ensureNetwork(segment);
  }

  /** A reachable host, on which a VM without a place is rendered while synth reports why. */
  public get fallbackHost(): IPlacementHost | undefined {
    return this.hosts.find((h) => h.reachable) ?? this.hosts[0];
  }

  /** Adds a VM to the cluster's placement. Called by the VM's constructor. */
  public addVirtualMachine(vm: IPlaceable & { readonly vmName: string }): void {
    if (this.memo) throw new Error(`${vm.node.path}: cannot join cluster ${this.node.path} after placement`);
    this.vms.push(vm);
  }

  /** Adds a failover group to the report. Called by the group's constructor. */
  public addGroup(group: IScheduledGroup): void {
    this.groups.push(group);
  }

  /** The VMs the cluster places, in declaration order. */
  public get virtualMachines(): readonly IPlaceable[] {
    return this.vms;
  }

  /**
   * The cluster's decisions: placements, admission control, warnings and problems. Pure apart
   * from reading the lock file; computed once.
   */
  public plan(): ClusterPlan {
    return this.planned().plan;
  }

  /** Binds every VM the plan placed to its host and shows the plan's warnings. Idempotent. */
  public ensurePlaced(): void {
    if (this.placed) return;
    this.placed = true;
    const plan = this.plan();
    for (const w of plan.warnings) Annotations.of(this).addWarning(w);
    const byName = new Map(this.hosts.map((h) => [h.hostName, h]));
    for (const vm of this.vms) {
      const host = Object.prototype.hasOwnProperty.call(plan.placement.placements, vm.vmName)
        ? byName.get(plan.placement.placements[vm.vmName])
        : undefined;
      if (host) vm.bindHost(host);
    }
  }

  /** The plan's problems about `vm`: the VM reports them, so they name its construct path. */
  public placementProblems(vm: IPlaceable): string[] {
    if (this.unknownStates()) return [];
    return [...(this.planned().byVm.get(vm.toVmSpec().name) ?? [])];
  }

  /** Writes the lock when it changed, unless it is frozen or the plan has problems. */
  public saveLock(): void {
    const plan = this.plan();
    if (plan.lockChange !== undefined && !this.frozenLock && this.problems().length === 0) writeLock(this.lockFile, plan.placement.lock);
  }

  /**
   * What Terraform created on the unreachable hosts (pool, network, and base images when there is
   * no shared storage), to forget with `removed` blocks: the host is never contacted, and its
   * disks stay as they are for its return.
   */
  public forgottenAddresses(): string[] {
    if (!this.hosts.some((h) => h.reachable)) return [];
    const images = this.sharedStorage ? [] : uniqueImages(this.vms.map((vm) => vm.image));
    return this.hosts.flatMap((h) => (h.reachable ? [] : h.forgottenAddresses(images)));
  }

  /**
   * The base volume boot disks of `image` on `host` are overlays of: one per cluster on shared
   * storage (so boot disks can live there too and follow their VM), else one per host.
   */
  public baseVolumeFor(image: IBaseImage, host: IPlacementHost): LeanVolume {
    if (!this.sharedStorage) return host.imageVolume(image);
    let volume = this.sharedImages.get(image.name);
    if (!volume) {
      const storageHost = this.fallbackHost ?? host;
      volume = image.createVolume(this, `Image-${image.name}`, storageHost.provider, this.sharedStorage.poolName);
      this.sharedImages.set(image.name, volume);
    }
    return volume;
  }

  /** The placement report: where everything runs, what survives which failure, every warning. */
  public renderReport(failed?: readonly string[]): { readonly markdown: string; readonly svg: string } {
    const { spec, vms, plan } = this.planned();
    const stack = TerraformStack.of(this);
    const windows = this.groups.map((g) => g.describeSchedule());
    return renderReport({
      title: `Placement of ${stack.node.id}/${this.node.id}`,
      cluster: spec,
      vms,
      placement: plan.placement,
      admission: plan.admission,
      instant: this.instant,
      instantPinned: this.instantPinned,
      timeZone: isTimeZone(this.timeZone) ? this.timeZone : 'UTC',
      sharedStorage: this.sharedStorage !== undefined,
      unattended: this.unattended,
      window: windows.length > 0 ? windows.join('; ') : 'no schedules',
      standbyCandidates: plan.standbyCandidates,
      ...(failed ? { failed } : {}),
      notes: [
        ...(isTimeZone(this.timeZone) ? [] : [`timeZone '${this.timeZone}' is unknown: times are shown in UTC`]),
        ...(plan.degraded ? [plan.degraded] : []),
        ...SecureDefaults.optOutsIn(stack).map((o) => `policy opt-out at ${o.path}: [${o.policy}] ${o.detail}`),
        ...this.hosts.filter((h) => h.stateNote !== undefined).map((h) => h.stateNote!),
        ...this.hosts
          .filter((h) => !h.reachable)
          .map((h) => `host ${h.hostName} is ${h.state}: not contacted; its provider alias points at another host and its own resources are forgotten (removed blocks)`),
        ...StackPlacement.of(this)
          .forgottenDisks()
          .filter((f) => f.where === `cluster ${this.node.id}`)
          .map((f) => `data disk ${f.volume} of VM ${f.vm.replace(/@.*$/, '')}, no longer in the code, is kept in pool ${f.pool}${this.sharedStorage ? '' : ' on the host it ran on'}: Terraform forgets ${f.address} (removed block)`),
      ],
    });
  }

  /** The cluster's entry in controller.json: hosts, schedule boundaries, what the controller may do. */
  public controllerView(): ControllerCluster {
    const { spec, plan } = this.planned();
    return controllerCluster({
      id: this.node.id,
      spec,
      timeZone: this.timeZone,
      instant: this.instant,
      instantPinned: this.instantPinned,
      unattended: this.unattended,
      schedules: this.groups.map((g) => g.schedule.windows()),
      standbyCandidates: plan.standbyCandidates,
      recoverySeconds: this.recoveryTime.toSeconds(),
      failuresToTolerate: this.failuresToTolerate,
    });
  }

  private planned(): NonNullable<Cluster['memo']> {
    if (this.memo) return this.memo;
    const inputProblems: string[] = [];
    const hosts: HostSpec[] = [];
    for (const h of this.hosts) {
      const spec = h.toHostSpec();
      if (typeof spec === 'string') inputProblems.push(spec);
      else hosts.push(spec);
    }
    const spec: ClusterSpec = {
      hosts,
      failuresToTolerate: this.failuresToTolerate,
      cpuOvercommit: this.cpuOvercommit,
      memoryOvercommit: this.memoryOvercommit,
      policy: this.placementPolicy,
      recoverySeconds: this.recoveryTime.toSeconds(),
    };
    const vms = this.vms.map((vm) => vm.toVmSpec());
    const read = readLock(this.lockFile);
    if (read.problem) inputProblems.push(read.problem);
    const plan = planCluster({ spec, vms, lock: read.lock, rebalance: this.rebalance });
    const names = new Set(vms.map((vm) => vm.name));
    const byVm = new Map<string, string[]>();
    for (const p of plan.placement.problems) {
      if (names.has(p.subject)) byVm.set(p.subject, [...(byVm.get(p.subject) ?? []), formatProblem(p)]);
    }
    this.memo = { spec, vms, plan, inputProblems, byVm };
    return this.memo;
  }

  /**
   * Whether a host's state override is not a state: the plan then rests on a state nobody meant,
   * so its findings would mislead; the host reports the override, alone.
   */
  private unknownStates(): boolean {
    return this.hosts.some((h) => !h.stateKnown);
  }

  private problems(): string[] {
    const { plan, inputProblems } = this.planned();
    const problems = [...inputProblems, ...(this.unknownStates() ? [] : plan.problems)];
    if (plan.lockChange !== undefined && this.frozenLock) {
      problems.push(
        `placement lock ${this.lockFile} would change (${plan.lockChange}), and the lock is frozen ` +
          '(CI=true or libvirt-cluster:frozen-lock): synthesize locally, review and commit the lock file',
      );
    }
    return problems;
  }

  private validate(): string[] {
    const reportedByVms = new Set([...this.planned().byVm.values()].flat());
    const problems = this.problems().filter((p) => !reportedByVms.has(p));
    if (this.instantProblem) problems.push(this.instantProblem);
    problems.push(...this.unattendedProblems);
    for (const segment of [this.defaultSegment, ...this.segments]) problems.push(...segment.validate());
    const names = this.segments.map((s) => s.name);
    for (const name of new Set(names.filter((n, i) => names.indexOf(n) !== i))) problems.push(`two segments are named ${name}; each segment needs its own name`);
    if (this.hosts.length === 0) problems.push('a cluster needs at least one host');
    else if (!this.hosts.some((h) => h.reachable)) problems.push('every host of the cluster is failed or standby: there is nowhere to run anything; mark a host active');
    if (!Number.isInteger(this.failuresToTolerate) || this.failuresToTolerate < 0) {
      problems.push(`failuresToTolerate is ${this.failuresToTolerate}; give a whole number, 0 or more`);
    } else if (this.failuresToTolerate >= this.hosts.length && this.hosts.length > 0) {
      problems.push(`failuresToTolerate is ${this.failuresToTolerate} but the cluster has ${this.hosts.length} host(s): nothing would survive; lower it or add hosts`);
    }
    for (const [name, ratio] of [['cpuOvercommit', this.cpuOvercommit], ['memoryOvercommit', this.memoryOvercommit]] as const) {
      if (!(ratio > 0)) problems.push(`${name} is ${ratio}; give a ratio above 0, e.g. 4 for 4 vCPUs per core`);
    }
    if (!isTimeZone(this.timeZone)) problems.push(`timeZone '${this.timeZone}' is not an IANA time zone such as 'Europe/Zurich'`);
    for (const vm of this.vms) {
      for (const p of this.vmLimits.check(vm.maxVcpus, vm.maxMemory)) problems.push(`VM ${vm.vmName} (${vm.node.path}): ${p}`);
      for (const h of vm.referencedHosts) {
        if (!this.hosts.includes(h)) problems.push(`VM ${vm.vmName} (${vm.node.path}) names host ${h.hostName}, which is not in cluster ${this.node.path}; add it to hosts`);
      }
    }
    return problems;
  }
}

/** The instant in a context value, or why it is not one. */
function contextInstant(value: unknown): Date | string {
  if (value === undefined) return new Date();
  const instant = new Date(String(value));
  if (Number.isNaN(instant.getTime())) return `context ${CLUSTER_CONTEXT.instant}='${value}' is not an ISO date-time such as 2026-11-26T08:00:00+01:00`;
  return instant;
}

/** The unattended actions a context value names (none when unset), and a problem per unknown name. */
function contextUnattended(value: unknown): ReturnType<typeof parseUnattendedActions> {
  if (value === undefined) return { actions: [], problems: [] };
  return parseUnattendedActions(value, `context ${CLUSTER_CONTEXT.unattended}`);
}

/** The instant given as a prop, or why it is not one. */
function validInstant(instant: Date): Date | string {
  return Number.isNaN(instant.getTime()) ? "instant is an invalid Date; give a valid one such as new Date('2026-11-26T08:00:00+01:00')" : instant;
}

function uniqueImages(images: readonly IBaseImage[]): IBaseImage[] {
  return [...new Map(images.map((i) => [i.name, i])).values()];
}
