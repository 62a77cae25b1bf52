import { createHash } from 'crypto';
import { TerraformResource, TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import { DEFAULT_SHUTDOWN_TIMEOUT, Duration } from '../core/duration';
import { RestartPriority, VmSpec } from '../core/model';
import { RecordedVm, vmKey } from '../core/resource-record';
import { Size } from '../core/size';
import { DomainConfig, DomainDevicesDisks } from '../generated/libvirt/domain';
import { LeanDomain, LeanVolume } from '../generated-lean';
import { CloudInit, CloudInitProps, SeedDisk } from './cloud-init';
import { GroupMembership, IPlaceable, IPlacementHost, IVmPlacer, LOCAL_POOL_NAME } from './contract';
import { Image } from './image';
import { lazyNumber, lazyString } from './lazy-value';
import { networkConfig, NicProps, ResolvedNic, resolveNics } from './nic';
import { SegmentKind } from './segment';
import { consoleOptOut, IPolicyTarget, markPolicyTarget, PolicyOptOut, SecureDefaults } from './secure-defaults';
import { addressAt, addressOf, StackPlacement } from './stack-placement';

export { RestartPriority } from '../core/model';

/** The CPU architecture a guest sees. Hosts are always 64-bit; guests may be 32- or 64-bit. */
export enum GuestArchitecture {
  /** 64-bit x86. */
  X86_64 = 'x86_64',
  /** 32-bit x86. */
  I686 = 'i686',
}

/** What happens to a data disk when its VM, or the disk, is removed from the code. */
export enum RemovalPolicy {
  /**
   * The disk outlives its VM: while declared it is protected (`prevent_destroy`); once its VM or
   * the disk leaves the code, Terraform forgets it (a `removed` block from the resource lock) and
   * the file stays on the host.
   */
  RETAIN = 'retain',
  /** The disk is destroyed with its VM. Shown as an opt-out in the report. */
  DESTROY = 'destroy',
}

/** An extra disk for a VM's data. */
export interface DataDiskProps {
  /** Capacity of the disk. */
  readonly size: Size;
  /**
   * What happens to the disk when the VM is removed.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
}

/** How the VM's graphical console is reached. */
export interface ConsoleProps {
  /**
   * Address the VNC console listens on.
   * @default 127.0.0.1 (reach it through an SSH tunnel)
   */
  readonly listenAddress?: string;
  /**
   * Copy the serial console to `/var/log/libvirt/qemu/<name>-console.log` on the host the VM runs
   * on (`<log file append='on'>`), beside libvirt's own logs, readable by root only. What a guest
   * prints may be sensitive (cloud-init prints key fingerprints), so it is off unless asked for.
   * @default false - the serial console is a pty only
   */
  readonly logToFile?: boolean;
}

export interface VirtualMachineProps {
  /**
   * The host the VM runs on. With a `cluster`, pins the VM to that host.
   * @default - chosen by the cluster's placement (a `cluster` is then required)
   */
  readonly host?: IPlacementHost;
  /**
   * The cluster that places the VM, restarts it elsewhere when its host fails and keeps its disks
   * on the cluster's shared storage.
   * @default - none: the VM stands alone on `host`
   */
  readonly cluster?: IVmPlacer;
  /**
   * libvirt domain name, unique on its host.
   * @default - the construct id
   */
  readonly name?: string;
  /**
   * Virtual CPUs at start (`<vcpu current>`).
   * @default 1
   */
  readonly vcpus?: number;
  /**
   * Ceiling the vCPUs can be raised to on the running VM (`virsh setvcpus --live`) without
   * redefining it (`<vcpu>`). Placement reserves the ceiling.
   * @default - the same as vcpus
   */
  readonly maxVcpus?: number;
  /**
   * Memory at start (`<currentMemory>`).
   * @default 512 MiB
   */
  readonly memory?: Size;
  /**
   * Ceiling the memory can be raised to on the running VM (`virsh setmem --live`, through the
   * balloon) without redefining it (`<memory>`). Placement reserves the ceiling.
   * @default - the same as memory
   */
  readonly maxMemory?: Size;
  /**
   * Guest CPU architecture: 64-bit or 32-bit.
   * @default GuestArchitecture.X86_64
   */
  readonly architecture?: GuestArchitecture;
  /** The base image the boot disk is a copy-on-write overlay of. */
  readonly image: Image;
  /**
   * Size of the boot disk overlay; at least the image's size.
   * @default - the image's size
   */
  readonly bootDiskSize?: Size;
  /**
   * An extra disk for data; on the cluster's shared storage when the cluster has one.
   * @default - none
   */
  readonly dataDisk?: DataDiskProps;
  /**
   * User data applied on first boot through a NoCloud seed disk.
   * @default - a seed disk that only sets the hostname
   */
  readonly cloudInit?: CloudInitProps;
  /**
   * The VM's network interfaces, each on a segment, with a stable MAC and static addresses or DHCP
   * (written for the guest as cloud-init network configuration).
   * @default - one NIC on the cluster's default segment, or on a standalone host's isolated network
   */
  readonly nics?: readonly NicProps[];
  /**
   * `false`: no network interface at all.
   * @default true
   */
  readonly network?: boolean;
  /**
   * VNC console.
   * @default - listens on 127.0.0.1 only
   */
  readonly console?: ConsoleProps;
  /**
   * Start the VM when its host boots. A clustered VM should not: after a host failure its copy
   * restarts elsewhere, and disk leases refuse the stale copy anyway.
   * @default - true for a standalone VM, false for a clustered one
   */
  readonly autostart?: boolean;
  /**
   * How long a change that needs a restart (vCPUs, memory, devices) waits for the guest to shut
   * down through ACPI before the provider powers it off; and how long a destroy with
   * `gracefulDestroy` waits for it before it fails, leaving the VM running.
   * @default Duration.seconds(30) (the provider's default)
   */
  readonly shutdownTimeout?: Duration;
  /**
   * When Terraform destroys the VM (it left the code, its replica's window closed, its group was
   * lowered), ask the guest to shut down through ACPI and wait up to `shutdownTimeout` for it,
   * instead of powering it off (the provider's `destroy.shutdown`). A guest that does not shut down
   * in time is not powered off: the apply fails and says so, and the VM keeps running.
   *
   * The provider restarts a domain on every update, this one included, so a domain keeps what it
   * was created with: the default is read from the stack's resource lock. Setting it on a VM that
   * has it the other way restarts that VM once (through ACPI) at the next apply.
   * @default - true for a VM the resource lock does not know yet or that was created with it, when
   * its image boots an operating system (not `Image.blank`); false for VMs created before this
   * option existed, and for blank images (nothing in them hears ACPI)
   */
  readonly gracefulDestroy?: boolean;
  /**
   * Service level: placement order and restart after a host failure (clustered VMs only).
   * @default RestartPriority.MEDIUM
   */
  readonly priority?: RestartPriority;
  /**
   * Hosts the cluster may place the VM on.
   * @default - every host of the cluster
   */
  readonly allowedHosts?: readonly IPlacementHost[];
  /**
   * Hosts tried first, in order, like preferred owners.
   * @default - none: the placement policy decides
   */
  readonly preferredHosts?: readonly IPlacementHost[];
  /**
   * Whether the VM is deployed. `false` keeps only its data disk (and its reserved place in the
   * cluster): the domain, boot overlay and seed disk are removed until it is deployed again.
   * Failover groups use this for replicas outside their schedule window.
   * @default true
   */
  readonly deployed?: boolean;
  /**
   * The construct path the VM had in this stack before it was renamed or moved to another parent,
   * relative to the stack (e.g. `web` or `frontend/web`): its resources get `moved` blocks from
   * there. Only needed where the resource lock cannot see the rename (a lock that was not
   * committed, or a libvirt name changed at the same time is still refused).
   * @default - the resource lock finds renames that keep the libvirt name
   */
  readonly renamedFrom?: string;
  /**
   * Changes the libvirt domain before it is created, for what these props do not cover (CPU
   * model, clock, extra devices): receives the config the library renders, typed as the provider
   * bindings' `DomainConfig`, and returns the config to render. The provider is always the VM's
   * host's. `vm.resource` also takes `addOverride`, `dependsOn` and `lifecycle`.
   * @default - the domain as the library renders it
   *
   * @example
   * customizeDomain: (domain) => ({ ...domain, cpu: { mode: 'host-passthrough' } })
   */
  readonly customizeDomain?: (domain: DomainConfig) => DomainConfig;
  /**
   * The failover group the VM is a replica of; `FailoverGroup` sets it for its replicas.
   * @default - none: the VM belongs to no group
   */
  readonly group?: GroupMembership;
}

const DOMAIN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/**
 * A libvirt guest: a domain with a copy-on-write boot disk over a base image, an optional data
 * disk, a cloud-init seed disk and one NIC on its host's isolated network. It stands alone on a
 * host, or is placed by a `Cluster`, which chooses the host at synth and moves it when the host
 * fails; its Terraform addresses never depend on the host.
 *
 * @example
 * new VirtualMachine(stack, 'web', {
 *   host: kvm1,
 *   vcpus: 2,
 *   memory: Size.gibibytes(2),
 *   image: Image.fromFile('debian-12', '/srv/images/debian-12.qcow2'),
 *   dataDisk: { size: Size.gibibytes(20) },
 *   cloudInit: { users: [{ name: 'ops', sshAuthorizedKeys: ['ssh-ed25519 AAAA... ops'] }] },
 * });
 */
export class VirtualMachine extends Construct implements IPlaceable, IPolicyTarget {
  public readonly vmName: string;
  public readonly vcpus: number;
  public readonly maxVcpus: number;
  public readonly memory: Size;
  public readonly maxMemory: Size;
  public readonly architecture: GuestArchitecture;
  public readonly image: Image;
  public readonly priority: RestartPriority;
  public readonly deployed: boolean;
  /** Address the VNC console listens on. */
  public readonly consoleListenAddress: string;
  /**
   * The libvirt domain; absent while the VM is not deployed. Change its config with the
   * `customizeDomain` prop; the generated `Domain` class is in `cdktf-libvirt-cluster/providers/libvirt`.
   */
  public readonly resource?: LeanDomain;
  public readonly bootDisk?: LeanVolume;
  public readonly dataDisk?: LeanVolume;
  /** The volume holding the cloud-init seed disk. */
  public readonly cloudInitDisk?: LeanVolume;
  /** The VM's NICs: segment, MAC and addresses. */
  public readonly nics: readonly ResolvedNic[];
  /** The VM's key in the stack's resource lock: its libvirt name and its host or cluster. */
  public readonly recordKey: string;
  /** Where the VM's name is unique: its host, or `cluster <id>`. */
  /** Whether Terraform's destroy shuts the guest down through ACPI first (`gracefulDestroy`). */
  public readonly gracefulDestroy: boolean;

  private readonly where: string;
  private readonly bootDiskName: string;
  private readonly cloudInitName?: string;
  private readonly props: VirtualMachineProps;
  private readonly cluster?: IVmPlacer;
  private boundHost?: IPlacementHost;

  constructor(scope: Construct, id: string, props: VirtualMachineProps) {
    super(scope, id);
    this.props = props;
    this.vmName = props.name ?? id;
    this.vcpus = props.vcpus ?? 1;
    this.maxVcpus = props.maxVcpus ?? this.vcpus;
    this.memory = props.memory ?? Size.mebibytes(512);
    this.maxMemory = props.maxMemory ?? this.memory;
    this.architecture = props.architecture ?? GuestArchitecture.X86_64;
    this.image = props.image;
    this.priority = props.priority ?? RestartPriority.MEDIUM;
    this.cluster = props.cluster;
    this.deployed = props.deployed ?? true;
    this.consoleListenAddress = props.console?.listenAddress ?? '127.0.0.1';
    const cloudInit = new CloudInit(props.cloudInit);
    const nicProps = this.nicProps(props);
    // A clustered VM keeps its MAC wherever it runs; a standalone one is its host's (two hosts may each run a `web`).
    const macSeed = [TerraformStack.of(this).node.id, ...(props.cluster ? [] : [props.host?.hostName ?? '']), this.vmName].join('/');
    const { nics, problems: nicProblems } = resolveNics(nicProps, macSeed);
    this.nics = nics;
    this.where = props.cluster ? `cluster ${props.cluster.node.id}` : `host ${props.host?.hostName ?? ''}`;
    this.recordKey = vmKey(this.vmName, this.where);
    const placement = StackPlacement.of(this);
    const recorded = placement.recorded(this.recordKey);
    this.bootDiskName = bootDiskName(this.vmName, props.image.identity, recorded);
    this.gracefulDestroy =
      props.gracefulDestroy ?? ((recorded?.domain === undefined || recorded.gracefulDestroy === true) && props.image.bootsOperatingSystem !== false);
    this.node.addValidation({
      validate: () => [
        ...this.validateProps(),
        ...nicProblems,
        ...this.segmentProblems(),
        ...cloudInit.validate(),
        ...props.image.validate(),
        ...(this.cluster?.placementProblems(this) ?? []),
        ...placement.recordProblems(this.recordKey),
      ],
    });
    SecureDefaults.applyTo(this);
    markPolicyTarget(this);

    // Everything host-specific is resolved late, so a clustered VM's host can be chosen once the
    // whole tree is known; the addresses below never mention the host. Disks go to the cluster's
    // shared storage when it has one: they follow the VM, and their disk leases fence a stale copy.
    const localPool = lazyString(() => this.host.localPoolName);
    const diskPool = this.cluster?.sharedPoolName ?? localPool;
    const onSharedStorage = this.cluster?.sharedPoolName !== undefined;
    // Without a host, or in a cluster without one, there is nowhere to render anything: synth reports that alone.
    const somewhere = props.host !== undefined || props.cluster?.fallbackHost !== undefined;
    if (props.dataDisk && somewhere) {
      this.dataDisk = new LeanVolume(this, 'DataDisk', {
        name: `${this.vmName}-data.qcow2`,
        pool: diskPool,
        target: { format: { type: 'qcow2' } },
        capacity: props.dataDisk.size.toBytes(),
      });
    }
    // The seed's name is recorded for a replica outside its window too, so the resource lock does
    // not change with the window.
    const network = networkConfig(this.nics);
    const seed = somewhere
      ? new SeedDisk([
          { name: 'meta-data', content: cloudInit.metaData(this.vmName, this.vmName) },
          { name: 'user-data', content: cloudInit.userData(this.vmName) },
          ...(network !== undefined ? [{ name: 'network-config', content: network }] : []),
        ])
      : undefined;
    this.cloudInitName = seed && `${this.vmName}-cloudinit-${seed.hash}.iso`;
    if (this.deployed && seed && this.cloudInitName) {
      const base = () => this.baseVolume();
      // Read once: each read of a resource attribute makes a new token, kept until synth ends.
      let basePath: string | undefined;
      let baseCapacity: number | undefined;
      // A new image is a new boot disk: the new name makes the provider replace the volume (it
      // updates none in place), and the domain, whose disk source names it, is updated in place.
      this.bootDisk = new LeanVolume(this, 'BootDisk', {
        name: this.bootDiskName,
        pool: diskPool,
        target: { format: { type: 'qcow2' } },
        capacity: (props.bootDiskSize ?? props.image.size)?.toBytes() ?? lazyNumber(() => (baseCapacity ??= base()?.capacity) ?? 0),
        backingStore: { path: lazyString(() => (basePath ??= base()?.path) ?? ''), format: { type: 'qcow2' } },
      });
      placement.addStackFile(seed.relativePath, () => seed.bytes());
      // The seed disk is rebuilt wherever the VM runs, so it stays in the host's local pool.
      this.cloudInitDisk = new LeanVolume(this, 'CloudInit', {
        name: this.cloudInitName,
        pool: localPool,
        create: { content: { url: seed.relativePath } },
      });
      const disks: DomainDevicesDisks[] = [
        diskOf(this.bootDisk, 'vda', onSharedStorage),
        ...(this.dataDisk ? [diskOf(this.dataDisk, 'vdb', onSharedStorage)] : []),
        {
          device: 'cdrom',
          source: { volume: { pool: this.cloudInitDisk.pool, volume: this.cloudInitDisk.name } },
          target: { dev: 'sda', bus: 'sata' },
          readOnly: true,
        },
      ];
      const hotplug = this.maxVcpus !== this.vcpus || this.maxMemory.toBytes() !== this.memory.toBytes();
      const domain: DomainConfig = {
        name: this.vmName,
        type: lazyString(() => this.host.domainType),
        // <vcpu> and <memory> are the ceilings; the current values start below them.
        vcpu: this.maxVcpus,
        memory: this.maxMemory.toMebibytes(),
        memoryUnit: 'MiB',
        ...(hotplug ? { vcpuCurrent: this.vcpus, currentMemory: this.memory.toMebibytes(), currentMemoryUnit: 'MiB' } : {}),
        os: { type: 'hvm', typeArch: this.architecture, bootDevices: [{ dev: 'hd' }] },
        // ACPI: the guest hears the power button (a graceful shutdown) and sees hot-added vCPUs.
        features: { acpi: true },
        autostart: props.autostart ?? this.cluster === undefined,
        running: true,
        ...(props.shutdownTimeout ? { update: { shutdown: { timeout: props.shutdownTimeout.toSeconds() } } } : {}),
        ...(this.gracefulDestroy ? { destroy: { shutdown: { timeout: (props.shutdownTimeout ?? DEFAULT_SHUTDOWN_TIMEOUT).toSeconds() } } } : {}),
        devices: {
          disks,
          interfaces: this.nics.map((nic) =>
            nic.segment.renderInterface(
              nic.mac,
              nic.segment.kind === SegmentKind.ISOLATED ? lazyString(() => this.host.networkNameFor(nic.segment)) : undefined,
            ),
          ),
          consoles: [
            { target: { type: 'serial', port: 0 }, ...(props.console?.logToFile ? { log: { file: consoleLogFile(this.vmName), append: 'on' } } : {}) },
          ],
          graphics: [{ vnc: { autoPort: true, listen: this.consoleListenAddress } }],
        },
      };
      this.resource = new LeanDomain(this, 'Resource', props.customizeDomain?.(domain) ?? domain);
    }
    if (this.cluster) {
      this.cluster.addVirtualMachine(this);
    } else if (props.host) {
      this.bindHost(props.host);
    } else {
      this.node.addValidation({ validate: () => ['a VirtualMachine needs a host or a cluster; set host, or cluster to have it placed'] });
    }
    placement.addVirtualMachine(this, this.cluster === undefined);
  }

  /**
   * What the VM owns in Terraform, for the stack's resource lock: the addresses its resources have,
   * or would have while it is deployed (a replica outside its window), so the lock does not change
   * with the window. Nothing while the VM has nowhere to render (synth reports that).
   */
  public recordEntry(): RecordedVm {
    if (this.cloudInitName === undefined) return { where: this.where, path: this.node.path };
    const pool = this.diskPoolName;
    const dataDisk = this.props.dataDisk;
    const at = (resource: TerraformResource | undefined, id: string, type: string) => (resource ? addressOf(resource) : addressAt(this, id, type));
    return {
      where: this.where,
      path: this.node.path,
      domain: at(this.resource, 'Resource', 'libvirt_domain'),
      ...(this.gracefulDestroy ? { gracefulDestroy: true as const } : {}),
      bootDisk: {
        address: at(this.bootDisk, 'BootDisk', 'libvirt_volume'),
        identity: this.image.identity,
        pool,
        volume: this.bootDiskName,
        ...(this.props.bootDiskSize ? { capacityBytes: this.props.bootDiskSize.toBytes() } : {}),
      },
      cloudInit: { address: at(this.cloudInitDisk, 'CloudInit', 'libvirt_volume'), pool: LOCAL_POOL_NAME, volume: this.cloudInitName },
      ...(this.dataDisk && dataDisk
        ? {
            dataDisk: {
              address: addressOf(this.dataDisk),
              pool,
              volume: `${this.vmName}-data.qcow2`,
              capacityBytes: dataDisk.size.toBytes(),
              retain: dataDisk.removalPolicy !== RemovalPolicy.DESTROY,
            },
          }
        : {}),
    };
  }

  /** The host the VM runs on: its pinned host, or where its cluster placed it. */
  public get host(): IPlacementHost {
    if (!this.boundHost) this.cluster?.ensurePlaced();
    // A VM its cluster could not place is rendered on a stand-in host; synth then fails with the
    // cluster's reasons, never with an error from deep inside token resolution.
    return this.boundHost ?? this.cluster?.fallbackHost ?? this.props.host!;
  }

  /** Whether the VM has a host: standalone, or placed by its cluster. */
  public get placed(): boolean {
    return this.boundHost !== undefined;
  }

  /** The hosts the VM names: pinned, allowed and preferred. */
  public get referencedHosts(): readonly IPlacementHost[] {
    return [this.props.host, ...(this.props.allowedHosts ?? []), ...(this.props.preferredHosts ?? [])].filter(
      (h): h is IPlacementHost => h !== undefined,
    );
  }

  /** The VM as the placement core sees it: the ceilings, which a hot-add may reach. */
  public toVmSpec(): VmSpec {
    const names = (hosts?: readonly IPlacementHost[]) => hosts?.map((h) => h.hostName);
    return {
      name: this.vmName,
      vcpus: this.maxVcpus,
      memoryMiB: this.maxMemory.toMebibytes(),
      group: this.props.group?.group,
      antiAffinity: this.props.group?.antiAffinity,
      pinnedHost: this.props.host?.hostName,
      allowedHosts: names(this.props.allowedHosts),
      preferredHosts: names(this.props.preferredHosts),
      priority: this.priority,
      active: this.deployed,
      addresses: this.nics.flatMap((nic) => nic.addresses.map((a) => `${nic.segment.name} ${a}`)),
      disks: this.diskSummary(),
    };
  }

  /**
   * `moved` blocks from the addresses the VM's resources had at `renamedFrom`, for those it has
   * now: the logical ids plain constructs at the old path get, as cdktf gives them.
   */
  public explicitMoves(): { readonly from: string; readonly to: string }[] {
    const old = this.props.renamedFrom;
    if (old === undefined || old === '') return [];
    const stack = TerraformStack.of(this);
    const parts = old.split('/').filter((p) => p !== '');
    const made: [Construct, string][] = [];
    let scope: Construct = stack;
    for (const id of parts) {
      const existing = scope.node.tryFindChild(id) as Construct | undefined;
      if (!existing) made.push([scope, id]);
      scope = existing ?? new Construct(scope, id);
    }
    const moves = this.resources().map((r) => {
      const id = r.node.id;
      const child = scope.node.tryFindChild(id);
      if (!child) made.push([scope, id]);
      return { from: `${r.terraformResourceType}.${stack.getLogicalId((child ?? new Construct(scope, id)).node)}`, to: addressOf(r) };
    });
    // The stand-ins leave the tree again, so nothing else ever sees them.
    for (const [parent, id] of made.reverse()) parent.node.tryRemoveChild(id);
    return moves.filter((m) => m.from !== m.to);
  }

  /** The pool the VM's boot and data disks are in, by name: the cluster's shared one, else the host's. */
  private get diskPoolName(): string {
    return this.cluster?.sharedPoolName ?? LOCAL_POOL_NAME;
  }

  /** The VM's boot and data disks with their sizes as written, for the report. */
  private diskSummary(): { pool: string; volume: string; size: string }[] {
    const pool = this.diskPoolName;
    const boot = this.props.bootDiskSize ?? this.image.size;
    return [
      ...(this.deployed ? [{ pool, volume: this.bootDiskName, size: boot ? `${boot}` : `image ${this.image.name}'s size` }] : []),
      ...(this.props.dataDisk ? [{ pool, volume: `${this.vmName}-data.qcow2`, size: `${this.props.dataDisk.size}` }] : []),
    ];
  }

  /** Places the VM's resources on `host`. Called once, by the VM or by its cluster. */
  public bindHost(host: IPlacementHost): void {
    if (this.boundHost) throw new Error(`${this.node.path} is already bound to host ${this.boundHost.hostName}`);
    this.boundHost = host;
    if (this.deployed && host.reachable) this.baseVolume(); // created now, so it is rendered with the rest
    for (const r of this.resources()) r.provider = host.provider;
  }

  /** The Terraform resources of this VM. */
  public resources(): TerraformResource[] {
    return [this.resource, this.bootDisk, this.dataDisk, this.cloudInitDisk].filter((r): r is NonNullable<typeof r> => r !== undefined);
  }

  /** Protects the data disk unless its removal policy says otherwise. */
  public applySecureDefaults(): void {
    if (this.dataDisk && this.props.dataDisk?.removalPolicy !== RemovalPolicy.DESTROY) {
      // The lifecycle meta-argument, not addOverride: cdktf notes each override in the stack's metadata,
      // at a cost that grows with the number of overrides (quadratic over a stack).
      this.dataDisk.lifecycle = { ...this.dataDisk.lifecycle, preventDestroy: true };
    }
  }

  /** The secure defaults this VM opts out of. */
  public policyOptOuts(): PolicyOptOut[] {
    const path = this.node.path;
    const found: PolicyOptOut[] = [];
    if (this.dataDisk && this.props.dataDisk?.removalPolicy === RemovalPolicy.DESTROY) {
      found.push({ path, policy: 'data-disk-protection', detail: 'data disk is destroyed with the VM (RemovalPolicy.DESTROY)' });
    }
    const console = consoleOptOut(path, this.consoleListenAddress);
    return console ? [...found, console] : found;
  }

  /**
   * The NICs asked for: `nics`, else one on the default segment (the cluster's, which is then
   * created on every host, or the standalone host's own network). A standalone VM's segments are
   * handed to its host here, which creates isolated segments' networks and checks their settings.
   */
  private nicProps(props: VirtualMachineProps): NicProps[] {
    if (props.network === false) return [];
    const segment = props.cluster?.defaultSegment ?? props.host?.defaultSegment;
    const asked = props.nics ?? (segment ? [{ segment }] : []);
    if (props.nics === undefined && props.cluster && segment) props.cluster.useSegment(segment);
    if (!props.cluster && props.host) for (const nic of asked) props.host.useStandaloneSegment(nic.segment);
    return [...asked];
  }

  /** NICs on segments a clustered VM's hosts do not all have. */
  private segmentProblems(): string[] {
    const problems: string[] = [];
    if (this.props.network === false && this.props.nics !== undefined && this.props.nics.length > 0) {
      problems.push('network is false but nics are given; leave network out, or remove the nics');
    }
    const cluster = this.cluster;
    if (!cluster) return problems;
    const known = new Set([cluster.defaultSegment, ...cluster.segments]);
    for (const nic of this.nics) {
      if (!known.has(nic.segment)) {
        problems.push(`NIC ${nic.name} is on segment '${nic.segment.name}', which cluster ${cluster.node.path} does not have: add it to the cluster's segments, so every host has it`);
      }
    }
    return problems;
  }

  /** The base volume the boot disk overlays, or nothing on a host that cannot be contacted. */
  private baseVolume(): LeanVolume | undefined {
    const host = this.host;
    if (!host.reachable) return undefined;
    return this.cluster ? this.cluster.baseVolumeFor(this.image, host) : host.imageVolume(this.image);
  }

  private validateProps(): string[] {
    const props = this.props;
    const problems: string[] = [];
    if (!DOMAIN_NAME.test(this.vmName)) {
      problems.push(`VM name '${this.vmName}' must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit; set name`);
    }
    if (!Number.isInteger(this.vcpus) || this.vcpus < 1) {
      problems.push(`vcpus is ${this.vcpus}; give a whole number, at least 1`);
    }
    if (!Number.isInteger(this.maxVcpus) || this.maxVcpus < this.vcpus) {
      problems.push(`maxVcpus is ${this.maxVcpus}; give a whole number no lower than vcpus (${this.vcpus})`);
    }
    if (this.memory.toMebibytes() < 16) {
      problems.push(`memory is ${this.memory}; give at least Size.mebibytes(16)`);
    }
    if (this.memory.isGreaterThan(this.maxMemory)) {
      problems.push(`maxMemory ${this.maxMemory} is below memory ${this.memory}; raise maxMemory or leave it out`);
    }
    if (this.architecture === GuestArchitecture.I686 && this.maxMemory.isGreaterThan(Size.gibibytes(64))) {
      problems.push(`a 32-bit (i686) guest addresses at most 64 GiB with PAE; ${this.maxMemory} was asked for: lower it or use X86_64`);
    }
    if (props.dataDisk && props.dataDisk.size.toBytes() === 0) {
      problems.push('dataDisk.size is 0; give a size such as Size.gibibytes(10)');
    }
    if (!props.cluster && (props.priority !== undefined || props.allowedHosts || props.preferredHosts || props.group)) {
      problems.push('priority, allowedHosts, preferredHosts and group only apply to a VM placed by a cluster; set cluster or remove them');
    }
    if (!props.cluster && props.host && !props.host.reachable) {
      problems.push(`host ${props.host.hostName} is ${props.host.state} and the VM has no cluster to restart it elsewhere; mark the host active, or place the VM with a cluster`);
    }
    const image = props.image;
    if (props.bootDiskSize && image.size && image.size.isGreaterThan(props.bootDiskSize)) {
      problems.push(`bootDiskSize ${props.bootDiskSize} is smaller than image '${image.name}' (${image.size}); an overlay cannot shrink its base`);
    }
    return problems;
  }
}

/**
 * The boot disk's volume name: the one it has while the VM boots the image it was created from,
 * `<vm>-boot-<hash of the image>.qcow2` once the image changes (so the volume is replaced).
 */
function bootDiskName(vmName: string, identity: string, recorded: RecordedVm | undefined): string {
  const before = recorded?.bootDisk;
  if (!before) return `${vmName}-boot.qcow2`;
  if (before.identity === identity) return before.volume;
  return `${vmName}-boot-${createHash('sha256').update(identity).digest('hex').slice(0, 8)}.qcow2`;
}

/** Where libvirt copies a VM's serial console when `console.logToFile` is set. */
export function consoleLogFile(vmName: string): string {
  return `/var/log/libvirt/qemu/${vmName}-console.log`;
}

/**
 * A virtio disk on `volume`. On shared storage the host's page cache is bypassed (`cache='none'`):
 * then no host holds data the other has not seen, and libvirt accepts a live migration as safe.
 */
function diskOf(volume: LeanVolume, dev: string, shared: boolean): DomainDevicesDisks {
  return {
    source: { volume: { pool: volume.pool, volume: volume.name } },
    target: { dev, bus: 'virtio' },
    driver: { type: 'qcow2', ...(shared ? { cache: 'none' } : {}) },
  };
}
