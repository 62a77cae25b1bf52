/**
 * The placement contract: the small interfaces through which a cluster, its hosts, its VMs and its
 * failover groups talk. It imports no construct of this library, so each side depends on it and
 * never on the other (cdk8s-plus's `IScalable` is the model).
 */
import { TerraformProvider } from 'cdktf';
import { Construct, IConstruct } from 'constructs';
import { ControllerCluster } from '../core/controller-file';
import { HostSpec, HostState, VmSpec } from '../core/model';
import { Schedule } from '../core/schedule';
import { Size } from '../core/size';
import { LeanVolume } from '../generated-lean';
import type { Segment } from './segment';

/** Name of every host's local storage pool: the same on every host, so a moved VM's volumes are found by name. */
export const LOCAL_POOL_NAME = 'cdktf-local';

/** A libvirt host as placement and the resources on it see it. */
export interface IPlacementHost extends IConstruct {
  /** The host's name in the cluster; names its provider alias. */
  readonly hostName: string;
  /** Effective state, after any context override. */
  readonly state: HostState;
  /** False while a context override names no host state (the host reports it). */
  readonly stateKnown: boolean;
  /** Why the state is not the code's (the controllers' decision record), for the report; absent when it is the code's. */
  readonly stateNote?: string;
  /** Whether Terraform may contact the host: not failed, not in standby. */
  readonly reachable: boolean;
  /** The connection URI. */
  readonly uri: string;
  /** The provider every resource on this host uses. */
  readonly provider: TerraformProvider;
  /** The libvirt domain type of the host (`kvm` or `qemu`). */
  readonly domainType: string;
  /** Name of the host's local storage pool. */
  readonly localPoolName: string;
  /** Name of the libvirt network a VM's default NIC attaches to. */
  readonly networkName: string;
  /** The isolated segment of a standalone VM's default NIC: the host's own network. */
  readonly defaultSegment: Segment;
  /**
   * Creates the libvirt network of an isolated segment on the host (once; nothing while the host
   * is unreachable, but it is remembered for the `removed` blocks). Call while building the tree.
   */
  ensureNetwork(segment: Segment): void;
  /**
   * A standalone VM has a NIC on `segment`: creates its network like `ensureNetwork`, and checks
   * the segment's settings at synth (a cluster checks its own segments), once per host.
   */
  useStandaloneSegment(segment: Segment): void;
  /** The name of the segment's libvirt network as a reference to it, so domains are created after it. */
  networkNameFor(segment: Segment): string;
  /** The host as the planner sees it, or a reason it cannot be planned with (no capacity). */
  toHostSpec(): HostSpec | string;
  /**
   * The Terraform addresses of what the host had while reachable, for `removed` blocks while it
   * is not: its pool, its network and the base volumes of `images`.
   */
  forgottenAddresses(images: readonly IBaseImage[]): string[];
  /** The base volume of an image in the host's local pool, created on first use. */
  imageVolume(image: IBaseImage): LeanVolume;
}

/** What a boot disk is an overlay of. */
export interface IBaseImage {
  /** Volume name stem, unique per pool. */
  readonly name: string;
  /** What the image is made from (name and source): a boot disk over another identity is a new disk. */
  readonly identity: string;
  /**
   * Whether a VM booting this image has an operating system to hear an ACPI shutdown request: a
   * VM's destroy then waits for it (see `VirtualMachineProps.gracefulDestroy`).
   * @default true
   */
  readonly bootsOperatingSystem?: boolean;
  /** Creates the image's base volume in `pool` through `provider`. */
  createVolume(scope: Construct, id: string, provider: TerraformProvider, pool: string): LeanVolume;
}

/** A VM a cluster places: it describes itself and takes the host it is given. */
export interface IPlaceable extends IConstruct {
  /** The VM as the planner sees it. */
  toVmSpec(): VmSpec;
  /** Names of the hosts the VM refers to (pinned, allowed, preferred), for cross-checks. */
  readonly referencedHosts: readonly IPlacementHost[];
  /** Places the VM's resources on `host`. Called once, by the cluster that placed it. */
  bindHost(host: IPlacementHost): void;
  /** The base image the VM boots from, for fencing a host's image volumes. */
  readonly image: IBaseImage;
  /** vCPUs the VM may be raised to: what placement reserves and per-VM limits check. */
  readonly maxVcpus: number;
  /** Memory the VM may be raised to, as the user wrote it (messages quote it). */
  readonly maxMemory: Size;
}

/** How a VM is placed by a cluster: what the VM asks of the cluster it joins. */
export interface IVmPlacer extends IConstruct {
  /** Adds a VM to the placement; called once by the VM's constructor. */
  addVirtualMachine(vm: IPlaceable): void;
  /** Makes sure placement ran and every placeable VM is bound (idempotent). */
  ensurePlaced(): void;
  /** What placement found wrong with `vm` (why it has no host, a duplicate name), each with a fix; the VM reports them at its path. */
  placementProblems(vm: IPlaceable): string[];
  /**
   * A reachable host to render an unplaceable VM on while synth reports why it has no place; none
   * when the cluster has no host at all (synth reports that, and its VMs render nothing).
   */
  readonly fallbackHost: IPlacementHost | undefined;
  /**
   * Name of the pool every host sees (disks there follow their VM); undefined when the cluster has
   * none. Not an optional property: under `exactOptionalPropertyTypes` a getter returning
   * `string | undefined` would not implement one.
   */
  readonly sharedPoolName: string | undefined;
  /** The segments every host of the cluster has; a clustered VM's NICs must be on them. */
  readonly segments: readonly Segment[];
  /** The segment of a clustered VM's default NIC. */
  readonly defaultSegment: Segment;
  /** Makes sure `segment` is on every host (its networks created); for the default segment, on first use. */
  useSegment(segment: Segment): void;
  /** The base volume boot disks of `image` on `host` are overlays of. */
  baseVolumeFor(image: IBaseImage, host: IPlacementHost): LeanVolume;
}

/** A VM's membership in a failover group, given when the VM is built. */
export interface GroupMembership {
  /** The group's name; anti-affinity applies among its members. */
  readonly group: string;
  /** The group's anti-affinity rule. */
  readonly antiAffinity: VmSpec['antiAffinity'];
}

/** A failover group as the cluster's report sees it. */
export interface IScheduledGroup {
  /** How many replicas run in each window; its window starts are where the controller switches. */
  readonly schedule: Schedule;
  /** E.g. `mail: 08:00 → 3, 20:00 → 2 (now 2)`. */
  describeSchedule(): string;
}

/** A cluster as its stack sees it: the stack runs each cluster's synth steps and merges their output. */
export interface IPlacementCluster extends IConstruct {
  /** The hosts that back each other up. */
  readonly hosts: readonly IPlacementHost[];
  /** The placement lock file. */
  readonly lockFile: string;
  /** Places the VMs and binds each to its host (idempotent). */
  ensurePlaced(): void;
  /** Writes the lock when it changed and may be written (not frozen, no problems). */
  saveLock(): void;
  /** The Terraform addresses its unreachable hosts had, for `removed` blocks. */
  forgottenAddresses(): string[];
  /** The placement report of the cluster: Markdown and SVG; `failed`: the problems of a failed synth. */
  renderReport(failed?: readonly string[]): { readonly markdown: string; readonly svg: string };
  /** The cluster's entry in the stack's controller.json. */
  controllerView(): ControllerCluster;
}

/** A cluster as a failover group sees it: it places the replicas and knows the schedule's clock. */
export interface IReplicaPlacer extends IVmPlacer {
  /** The instant schedule windows are evaluated for. */
  readonly instant: Date;
  /** IANA time zone of schedule windows. */
  readonly timeZone: string;
  /** Adds a group to the cluster's report. */
  addGroup(group: IScheduledGroup): void;
}
