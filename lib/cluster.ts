import * as fs from 'fs';
import * as path from 'path';
import { Annotations, App, Aspects, TerraformOutput, TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import { admissionControl, AdmissionResult } from './core/admission';
import { ClusterSpec, HostSpec, PlacementLock, PlacementResult, Problem, VmSpec } from './core/model';
import { place } from './core/placement';
import { standbyCandidates } from './core/power';
import { renderReport } from './core/report';
import { FailoverGroup } from './failover-group';
import { Volume } from './generated/libvirt/volume';
import { Image } from './image';
import { SecureDefaults } from './secure-defaults';
import { Host, HostState } from './host';
import { PlacementPolicy } from './placement-policy';
import { VirtualMachine } from './virtual-machine';
import { VmLimits } from './vm-limits';

/** Context keys a scheduled CI job or an operator can set without touching code. */
export const CLUSTER_CONTEXT = {
  /** ISO instant the schedule windows are evaluated for, e.g. `2026-11-26T03:00:00Z`. */
  instant: 'libvirt-cluster:instant',
  /** `true`: place every VM from scratch, ignoring the lock. */
  rebalance: 'libvirt-cluster:rebalance',
  /** `true`: fail the synth when the placement lock would change (also on when CI=true). */
  frozenLock: 'libvirt-cluster:frozen-lock',
} as const;

/**
 * Storage every host sees at the same path (NFS, a cluster file system, or in a lab a shared
 * directory), as a libvirt pool of the same name defined on every host beforehand, like the
 * mount behind it. Data disks of clustered VMs live there, so they survive a host failure.
 */
export interface SharedStorage {
  /** Name of the libvirt pool on every host. */
  readonly poolName: string;
  /** Path of the pool on every host, for the report. */
  readonly path: string;
}

export interface ClusterProps {
  /** The hosts that back each other up. */
  readonly hosts: readonly Host[];
  /**
   * Shared storage for data disks.
   * @default - none: data disks stay on their host's local pool and are lost when a VM moves
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
   * The placement lock file, committed next to the stack's code.
   * @default - <working directory>/<stack name>.placement-lock.json
   */
  readonly lockFile?: string;
  /**
   * Fail the synth when the lock would change instead of writing it.
   * @default - true when CI=true or the context value libvirt-cluster:frozen-lock is true
   */
  readonly frozenLock?: boolean;
  /**
   * Ignore the lock and place everything afresh (moves are reported).
   * @default - the context value libvirt-cluster:rebalance, else false
   */
  readonly rebalance?: boolean;
}

/** What a cluster decided at synth; plain data for the report and for tests. */
export interface ClusterPlan {
  readonly spec: ClusterSpec;
  readonly vms: readonly VmSpec[];
  readonly placement: PlacementResult;
  readonly admission: AdmissionResult;
  readonly standbyCandidates: readonly string[];
  readonly lockChanged: boolean;
}

/**
 * A set of hosts that back each other up (the host-level failover group). It places its VMs at
 * synth with the pure placement core, checks that every restartable VM survives the loss of any
 * `failuresToTolerate` hosts, keeps placements stable through a committed lock file, and turns a
 * host marked `failed` or `standby` into Terraform that never contacts it.
 *
 * @example
 * const cluster = new Cluster(stack, 'cluster', {
 *   hosts: [kvm1, kvm2],
 *   sharedStorage: { poolName: 'shared', path: '/srv/vmstore' },
 *   lockFile: path.join(__dirname, 'office.placement-lock.json'),
 * });
 */
export class Cluster extends Construct {
  public readonly hosts: readonly Host[];
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
  private readonly vms: VirtualMachine[] = [];
  private readonly sharedImages = new Map<string, Volume>();
  private degraded?: string;
  private readonly problems: string[] = [];
  private resolved?: ClusterPlan;

  constructor(scope: Construct, id: string, props: ClusterProps) {
    super(scope, id);
    this.hosts = props.hosts;
    for (const h of this.hosts) h.clustered = true;
    this.sharedStorage = props.sharedStorage;
    this.failuresToTolerate = props.failuresToTolerate ?? 1;
    this.cpuOvercommit = props.cpuOvercommit ?? 4;
    this.memoryOvercommit = props.memoryOvercommit ?? 1;
    this.placementPolicy = props.placementPolicy ?? PlacementPolicy.SPREAD;
    this.vmLimits = props.vmLimits ?? VmLimits.hostCapacity();
    this.timeZone = props.timeZone ?? 'UTC';
    this.instant = props.instant ?? this.contextInstant();
    const stackName = TerraformStack.of(this).node.id;
    this.lockFile = props.lockFile ?? path.join(process.cwd(), `${stackName}.placement-lock.json`);
    this.frozenLock = props.frozenLock ?? (process.env.CI === 'true' || this.node.tryGetContext(CLUSTER_CONTEXT.frozenLock) === true);
    this.rebalance = props.rebalance ?? this.node.tryGetContext(CLUSTER_CONTEXT.rebalance) === true;
    this.node.addValidation({ validate: () => this.validate() });
    // Placement needs the whole tree, and must bind every VM before any resource is rendered:
    // aspects run first in every synthesis, and the stack itself is visited before its children.
    const stack = TerraformStack.of(this);
    Aspects.of(stack).add({ visit: (node) => (node === stack ? void this.resolve() : undefined) });
  }

  /**
   * The base volume boot disks of `image` on `host` are overlays of: one per cluster on shared
   * storage (so boot disks can live there too and follow their VM), else one per host.
   */
  public baseVolumeFor(image: Image, host: Host): Volume {
    if (!this.sharedStorage) return host.imageVolume(image);
    let volume = this.sharedImages.get(image.name);
    if (!volume) {
      const storageHost = this.hosts.find((h) => h.reachable) ?? host;
      volume = new Volume(this, `Image-${image.name}`, { provider: storageHost.provider, pool: this.sharedStorage.poolName, ...image.volumeConfig() });
      this.sharedImages.set(image.name, volume);
    }
    return volume;
  }

  /** Name of the shared pool data disks go to, if the cluster has shared storage. */
  public get sharedPoolName(): string | undefined {
    return this.sharedStorage?.poolName;
  }

  /** Adds a VM to the cluster's placement. Called by VirtualMachine. @internal */
  public register(vm: VirtualMachine): void {
    if (this.resolved) throw new Error(`${vm.node.path}: cannot join cluster ${this.node.path} after placement`);
    this.vms.push(vm);
  }

  /** The VMs the cluster places, in declaration order. */
  public get virtualMachines(): readonly VirtualMachine[] {
    return this.vms;
  }

  /** Places the VMs (once) and binds each to its host. Safe to call again. */
  public resolve(): ClusterPlan {
    if (this.resolved) return this.resolved;
    const spec = this.toSpec();
    const vms = this.vms.map((vm) => this.toVmSpec(vm));
    const lock = this.readLock();
    const placement = place(spec, vms, { lock, rebalance: this.rebalance });
    // Hosts already down (failed) or drained (maintenance) use up failure tolerance: a degraded
    // cluster is checked only for the failures it can still absorb, and says so.
    const down = this.hosts.filter((h) => h.state === HostState.FAILED || h.state === HostState.MAINTENANCE);
    const remaining = Math.max(0, this.failuresToTolerate - down.length);
    if (down.length > 0 && this.failuresToTolerate > 0) {
      this.degraded = `cluster is degraded: ${down.map((h) => `${h.hostName} (${h.state})`).join(', ')} down; it now tolerates ${remaining} further host failure(s) instead of ${this.failuresToTolerate}`;
      Annotations.of(this).addWarning(this.degraded);
    }
    const admission = admissionControl({ ...spec, failuresToTolerate: remaining }, vms, placement.placements);
    const lockChanged = JSON.stringify(lock ?? null) !== JSON.stringify(placement.lock);
    this.resolved = {
      spec,
      vms,
      placement,
      admission,
      standbyCandidates: standbyCandidates(spec, vms, placement.placements),
      lockChanged,
    };

    for (const p of placement.problems) this.problems.push(formatProblem(p));
    for (const w of placement.warnings) Annotations.of(this).addWarning(formatProblem(w));
    for (const m of placement.moves) Annotations.of(this).addWarning(`VM ${m.vm} moves from host ${m.from} to ${m.to}: ${m.reason}`);
    for (const s of admission.scenarios) {
      this.problems.push(
        `admission control: if host${s.failedHosts.length > 1 ? 's' : ''} ${s.failedHosts.join(' and ')} fail${s.failedHosts.length > 1 ? '' : 's'}, ` +
          `VMs ${s.unplaced.join(', ')} cannot restart (short of ${s.shortfall.vcpus} vCPUs and ${s.shortfall.memoryMiB} MiB): ${s.reason}. ` +
          'Add capacity or a host, lower failuresToTolerate, or give some VMs RestartPriority.NONE',
      );
    }
    if (lockChanged) this.handleLockChange(lock, placement);

    const byName = new Map(this.hosts.map((h) => [h.hostName, h]));
    for (const vm of this.vms) {
      const hostName = placement.placements[vm.vmName];
      if (hostName !== undefined) vm.bind(byName.get(hostName)!);
    }
    this.fenceUnreachableHosts();
    new TerraformOutput(this, 'StandbyCandidates', {
      value: this.resolved.standbyCandidates,
      description: 'Active hosts that run no VM in the current schedule window: they could go to standby',
    });
    this.writeReport(this.resolved);
    return this.resolved;
  }

  /** Where the placement report is written: next to the stack's synthesized JSON. */
  public get reportDir(): string {
    return path.join(App.of(this).outdir, 'stacks', TerraformStack.of(this).node.id);
  }

  private writeReport(plan: ClusterPlan): void {
    const stack = TerraformStack.of(this);
    const windows = [...new Set(this.groups().map((g) => `${g.groupName}: ${g.schedule} (now ${g.runningReplicas.length})`))];
    const report = renderReport({
      title: `Placement of ${stack.node.id}/${this.node.id}`,
      cluster: plan.spec,
      vms: plan.vms,
      placement: plan.placement,
      admission: plan.admission,
      instant: this.instant,
      timeZone: this.timeZone,
      window: windows.length > 0 ? windows.join('; ') : 'no schedules',
      standbyCandidates: plan.standbyCandidates,
      notes: [
        ...(this.degraded ? [this.degraded] : []),
        ...SecureDefaults.optOutsIn(stack).map((o) => `policy opt-out at ${o.path}: [${o.policy}] ${o.detail}`),
        ...this.hosts.filter((h) => !h.reachable).map(
          (h) => `host ${h.hostName} is ${h.state}: not contacted; its provider alias points at another host and its own resources are forgotten (removed blocks)`,
        ),
      ],
    });
    fs.mkdirSync(this.reportDir, { recursive: true });
    fs.writeFileSync(path.join(this.reportDir, 'placement-report.md'), report.markdown);
    fs.writeFileSync(path.join(this.reportDir, 'placement-report.svg'), report.svg);
  }

  private groups(): FailoverGroup[] {
    return TerraformStack.of(this).node.findAll().filter((c): c is FailoverGroup => c instanceof FailoverGroup && c.cluster === this);
  }

  private handleLockChange(previous: PlacementLock | undefined, placement: PlacementResult): void {
    const text = `${JSON.stringify(placement.lock, null, 2)}\n`;
    if (this.frozenLock) {
      this.problems.push(
        `placement lock ${this.lockFile} would change (${describeLockChange(previous, placement.lock)}), and the lock is frozen ` +
          '(CI=true or libvirt-cluster:frozen-lock): synthesize locally, review and commit the lock file',
      );
    } else if (placement.problems.length === 0) {
      fs.mkdirSync(path.dirname(this.lockFile), { recursive: true });
      fs.writeFileSync(this.lockFile, text);
    }
  }

  /**
   * A failed or standby host must not be contacted: its provider alias is pointed at an active
   * host (so OpenTofu can configure it) and everything Terraform created on it is forgotten with
   * `removed` blocks (destroy = false), leaving the host's disks as they are for its return.
   */
  private fenceUnreachableHosts(): void {
    const reachable = this.hosts.find((h) => h.reachable);
    const stack = TerraformStack.of(this);
    const images = new Map(this.vms.map((vm) => [vm.image.name, vm.image]));
    const removed: { from: string; lifecycle: { destroy: false } }[] = [];
    for (const host of this.hosts) {
      if (host.reachable) continue;
      if (!reachable) {
        this.problems.push(`every host of the cluster is failed or standby: there is nowhere to run anything; mark a host active`);
        return;
      }
      host.provider.uri = reachable.uri;
      if (!this.sharedStorage) for (const image of images.values()) host.imageVolume(image);
      for (const resource of host.ownResources()) {
        removed.push({ from: `${resource.terraformResourceType}.${stack.getLogicalId(resource)}`, lifecycle: { destroy: false } });
        resource.node.scope!.node.tryRemoveChild(resource.node.id);
      }
    }
    if (removed.length > 0) {
      removed.sort((a, b) => a.from.localeCompare(b.from));
      stack.addOverride('removed', removed);
    }
  }

  private toSpec(): ClusterSpec {
    const hosts: HostSpec[] = [];
    for (const h of this.hosts) {
      if (!h.capacity) {
        this.problems.push(`host ${h.hostName} (${h.node.path}) has no capacity; a cluster host needs capacity: { cores, memory }`);
        continue;
      }
      hosts.push({
        name: h.hostName,
        cores: h.capacity.cores,
        memoryMiB: h.capacity.memory.toMebibytes(),
        reservedCores: h.capacity.reservedCores ?? 0,
        reservedMemoryMiB: h.capacity.reservedMemory?.toMebibytes() ?? 0,
        labels: h.labels,
        state: h.state,
      });
    }
    return {
      hosts,
      failuresToTolerate: this.failuresToTolerate,
      cpuOvercommit: this.cpuOvercommit,
      memoryOvercommit: this.memoryOvercommit,
      policy: this.placementPolicy,
    };
  }

  private toVmSpec(vm: VirtualMachine): VmSpec {
    const names = (hosts?: readonly Host[]) => hosts?.map((h) => h.hostName);
    return {
      name: vm.vmName,
      vcpus: vm.maxVcpus,
      memoryMiB: vm.maxMemory.toMebibytes(),
      group: vm.membership?.group,
      antiAffinity: vm.membership?.antiAffinity,
      pinnedHost: vm.pinnedHost?.hostName,
      allowedHosts: names(vm.allowedHosts),
      preferredHosts: names(vm.preferredHosts),
      priority: vm.priority,
      active: vm.deployed,
    };
  }

  private readLock(): PlacementLock | undefined {
    try {
      return JSON.parse(fs.readFileSync(this.lockFile, 'utf8')) as PlacementLock;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      this.problems.push(`placement lock ${this.lockFile} is not valid JSON (${(err as Error).message}); restore it from version control`);
      return undefined;
    }
  }

  private contextInstant(): Date {
    const value = this.node.tryGetContext(CLUSTER_CONTEXT.instant);
    if (value === undefined) return new Date();
    const instant = new Date(String(value));
    if (Number.isNaN(instant.getTime())) {
      this.problems.push(`context ${CLUSTER_CONTEXT.instant}='${value}' is not an ISO date-time such as 2026-11-26T08:00:00+01:00`);
      return new Date();
    }
    return instant;
  }

  private validate(): string[] {
    this.resolve();
    const problems = [...this.problems];
    if (this.hosts.length === 0) problems.push('a cluster needs at least one host');
    if (!Number.isInteger(this.failuresToTolerate) || this.failuresToTolerate < 0) {
      problems.push(`failuresToTolerate is ${this.failuresToTolerate}; give a whole number, 0 or more`);
    } else if (this.failuresToTolerate >= this.hosts.length && this.hosts.length > 0) {
      problems.push(`failuresToTolerate is ${this.failuresToTolerate} but the cluster has ${this.hosts.length} host(s): nothing would survive; lower it or add hosts`);
    }
    for (const [name, ratio] of [['cpuOvercommit', this.cpuOvercommit], ['memoryOvercommit', this.memoryOvercommit]] as const) {
      if (!(ratio > 0)) problems.push(`${name} is ${ratio}; give a ratio above 0, e.g. 4 for 4 vCPUs per core`);
    }
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: this.timeZone });
    } catch {
      problems.push(`timeZone '${this.timeZone}' is not an IANA time zone such as 'Europe/Zurich'`);
    }
    for (const vm of this.vms) {
      for (const p of this.vmLimits.check(vm.maxVcpus, vm.maxMemory)) problems.push(`VM ${vm.vmName} (${vm.node.path}): ${p}`);
      for (const h of [vm.pinnedHost, ...(vm.allowedHosts ?? []), ...(vm.preferredHosts ?? [])]) {
        if (h && !this.hosts.includes(h)) problems.push(`VM ${vm.vmName} names host ${h.hostName}, which is not in cluster ${this.node.path}; add it to hosts`);
      }
    }
    return problems;
  }
}

function formatProblem(p: Problem): string {
  return `[${p.rule}] ${p.subject}: ${p.message}${p.hint ? ` (${p.hint})` : ''}`;
}

function describeLockChange(before: PlacementLock | undefined, after: PlacementLock): string {
  const old = before?.placements ?? {};
  const changes: string[] = [];
  for (const [vm, host] of Object.entries(after.placements)) {
    if (old[vm] === undefined) changes.push(`${vm} → ${host} (new)`);
    else if (old[vm] !== host) changes.push(`${vm}: ${old[vm]} → ${host}`);
  }
  for (const vm of Object.keys(old)) if (after.placements[vm] === undefined) changes.push(`${vm} removed`);
  return changes.slice(0, 10).join('; ') + (changes.length > 10 ? `; and ${changes.length - 10} more` : '');
}
