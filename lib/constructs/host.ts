import * as fs from 'fs';
import { Annotations, Lazy } from 'cdktf';
import { Construct } from 'constructs';
import { Duration } from '../core/duration';
import { HOST_STATE_CONTEXT, HostSpec, HostState } from '../core/model';
import { Size } from '../core/size';
import { LibvirtProvider } from '../generated/libvirt/provider';
import { LeanNetwork, LeanPool, LeanVolume } from '../generated-lean';
import { IBaseImage, IPlacementHost, LOCAL_POOL_NAME } from './contract';
import { recordedHostState } from './recorded-host-states';
import { Segment, SegmentKind } from './segment';
import { IPolicyTarget, markPolicyTarget, PolicyOptOut, SecureDefaults, unverifiedConnection } from './secure-defaults';
import { addressAt, StackPlacement } from './stack-placement';

export { HostState } from '../core/model';

/** How a host runs its guests: the libvirt domain type. */
export enum DomainType {
  /** Hardware virtualization through /dev/kvm. */
  KVM = 'kvm',
  /** QEMU software emulation (TCG): slow, but needs no /dev/kvm. */
  QEMU = 'qemu',
}

/**
 * The domain type for a libvirt host on this machine: `LIBVIRT_DOMAIN_TYPE` when set (`kvm` or
 * `qemu`), else `kvm` where /dev/kvm exists and `qemu` where it does not. For example stacks that
 * run on a laptop and in CI alike; real estates should state their domain type.
 */
export function detectDomainType(env: NodeJS.ProcessEnv = process.env, kvmDevice = '/dev/kvm'): DomainType {
  const forced = env.LIBVIRT_DOMAIN_TYPE;
  if (forced !== undefined && forced !== '') {
    const known = Object.values(DomainType) as string[];
    if (!known.includes(forced)) throw new Error(`LIBVIRT_DOMAIN_TYPE=${forced} is not one of ${known.join(', ')}`);
    return forced as DomainType;
  }
  return fs.existsSync(kvmDevice) ? DomainType.KVM : DomainType.QEMU;
}

/** What a host can give to its guests. */
export interface HostCapacity {
  /** Physical cores (or hardware threads) of the host. */
  readonly cores: number;
  /** Physical memory of the host. */
  readonly memory: Size;
  /**
   * Cores kept back for the host itself.
   * @default 0
   */
  readonly reservedCores?: number;
  /**
   * Memory kept back for the host itself.
   * @default - none
   */
  readonly reservedMemory?: Size;
}

export { LOCAL_POOL_NAME } from './contract';

export { HOST_STATE_CONTEXT } from '../core/model';

export interface HostProps {
  /**
   * The libvirt connection URI, e.g. `qemu:///system` or `qemu+ssh://admin@kvm1/system`.
   * Remote URIs must verify the host key (see `SecureDefaults`).
   * @default qemu:///system
   */
  readonly uri?: string;
  /**
   * The host's name in the cluster: names its provider alias and network.
   * @default - the construct id
   */
  readonly hostName?: string;
  /**
   * How the host runs guests.
   * @default DomainType.KVM
   */
  readonly domainType?: DomainType;
  /**
   * Directory of the host's local storage pool (base images, boot overlays, cloud-init disks).
   * @default /var/lib/libvirt/images/<host name>
   */
  readonly poolPath?: string;
  /**
   * Capacity offered to guests; needed for a host to be part of a `Cluster`. A host that has it
   * also checks that the VMs pinned to it outside a cluster fit.
   * @default - unknown: the host runs only the VMs pinned to it and is not used for placement
   */
  readonly capacity?: HostCapacity;
  /**
   * Labels usable as failure domains for anti-affinity, e.g. `{ rack: 'r1', room: 'a' }`.
   * @default - none
   */
  readonly labels?: Readonly<Record<string, string>>;
  /**
   * Operational state. A context value `libvirt-cluster:host-state:<host name>` overrides it
   * for emergencies; else the state the controllers decided, when the context
   * `libvirt-cluster:decision-record` names their decision record (with a warning).
   * @default HostState.ACTIVE
   */
  readonly state?: HostState;
  /**
   * How long powering the host on takes until libvirt answers. While the host is in standby, it
   * counts as capacity for failures (admission control) when this is within its cluster's
   * `recoveryTime`, as a failover can wake it; the controller reads it from controller.json.
   * @default - unknown: a standby host is not counted as capacity
   */
  readonly wakeTime?: Duration;
  /**
   * Host architecture. Hosts must be 64-bit; anything else is rejected.
   * @default x86_64
   */
  readonly architecture?: string;
  /**
   * Whether the host gets the library's local storage pool (`cdktf-local`, at `poolPath`), where
   * base images, boot overlays and seed disks of new VMs go. `false` for a host adopted as it is
   * (`cdktf-libvirt-cluster adopt`): its VMs use their existing volumes, so nothing is created
   * on it; a `VirtualMachine` pinned to it then fails the synth, asking for the pool.
   * @default true
   */
  readonly localPool?: boolean;
  /**
   * Accept a remote URI that does not verify the host's SSH key (`no_verify`,
   * `known_hosts_verify=ignore`). Shown as an opt-out in the report.
   * @default false
   */
  readonly insecureSkipHostKeyVerification?: boolean;
}

const HOST_NAME = /^[a-z][a-z0-9-]{0,30}$/;
const ARCHITECTURES_64 = ['x86_64', 'aarch64', 'ppc64le', 's390x'];

/**
 * A libvirt host: one libvirtd reached through its own aliased provider, with a local storage
 * pool and an isolated network (no forwarding) for its guests. A host in state `failed` or
 * `standby` is never contacted: it creates nothing, and the resources it had are forgotten
 * (`removed` blocks), so its cluster can restart its VMs elsewhere.
 *
 * @example
 * const kvm1 = new Host(stack, 'kvm1', {
 *   uri: 'qemu+ssh://admin@kvm1.example.net/system',
 *   capacity: { cores: 16, memory: Size.gibibytes(64) },
 *   labels: { rack: 'r1' },
 * });
 */
export class Host extends Construct implements IPlacementHost, IPolicyTarget {
  /** Name of the host in the cluster and in its provider alias. */
  public readonly hostName: string;
  public readonly uri: string;
  public readonly domainType: DomainType;
  public readonly capacity?: HostCapacity;
  public readonly labels: Readonly<Record<string, string>>;
  /** Effective state, after any context override. */
  public readonly state: HostState;
  /** False while the context override is not a host state: the host reports it, and its cluster checks nothing else. */
  public readonly stateKnown: boolean;
  /** Why the state is not the code's: the controllers' decision record says otherwise. */
  public readonly stateNote?: string;
  public readonly insecureSkipHostKeyVerification: boolean;
  /** How long powering the host on takes until libvirt answers, when known. */
  public readonly wakeTime?: Duration;
  /** The provider every resource on this host uses. */
  public readonly provider: LibvirtProvider;
  /** Local storage pool; absent while the host is failed or in standby. */
  public readonly pool?: LeanPool;
  /**
   * The host's own isolated network, for standalone VMs' default NICs: created when the first one
   * uses it; never while the host is failed or in standby.
   */
  public network?: LeanNetwork;
  /** Name of the host's isolated network. */
  public readonly networkName: string;
  /** The host's own isolated network as a segment: where a standalone VM's default NIC goes. */
  public readonly defaultSegment: Segment;
  /** Isolated segments' networks on this host, by segment name (none while unreachable). */
  private readonly segmentNetworks = new Map<string, { readonly segment: Segment; readonly name?: string }>();
  /** Segments of standalone VMs' NICs, checked by this host (a cluster checks its own). */
  private readonly standaloneSegments = new Set<Segment>();
  /** Names two different isolated segments on this host share. */
  private readonly segmentClashes = new Set<string>();
  private readonly poolPath: string;
  private readonly images = new Map<string, LeanVolume>();
  private readonly placement: StackPlacement;
  private poolNameToken?: string;
  /** `localPool: false`: nothing of the library's is created on the host. */
  private readonly withoutPool: boolean;

  constructor(scope: Construct, id: string, props: HostProps = {}) {
    super(scope, id);
    this.hostName = props.hostName ?? id;
    this.uri = props.uri ?? 'qemu:///system';
    this.domainType = props.domainType ?? DomainType.KVM;
    this.capacity = props.capacity;
    this.labels = props.labels ?? {};
    this.wakeTime = props.wakeTime;
    this.insecureSkipHostKeyVerification = props.insecureSkipHostKeyVerification ?? false;
    this.networkName = `${this.hostName}-isolated`;
    this.defaultSegment = Segment.isolated(this.networkName);
    this.poolPath = props.poolPath ?? `/var/lib/libvirt/images/${this.hostName}`;
    const override = this.node.tryGetContext(`${HOST_STATE_CONTEXT}${this.hostName}`);
    const declared = stateFrom(props.state ?? HostState.ACTIVE, override);
    // An explicit override wins; else the controllers' decisions, when the synth is given their record.
    const recorded = override === undefined ? recordedHostState(this, this.hostName, declared) : {};
    this.state = (recorded.override?.state as HostState | undefined) ?? declared;
    this.stateNote = recorded.override?.warning;
    if (this.stateNote !== undefined) Annotations.of(this).addWarning(this.stateNote);
    this.stateKnown = override === undefined || (Object.values(HostState) as unknown[]).includes(override);
    const architecture = props.architecture ?? 'x86_64';
    this.node.addValidation({ validate: () => [...(recorded.problem ? [recorded.problem] : []), ...this.validateProps(architecture, override)] });

    SecureDefaults.applyTo(this);
    markPolicyTarget(this);
    this.placement = StackPlacement.of(this);
    this.placement.addHost(this);
    // An unreachable host's alias must still be configurable: it points at a reachable peer.
    this.provider = new LibvirtProvider(this, 'Provider', {
      alias: this.hostName,
      uri: this.reachable ? this.uri : Lazy.stringValue({ produce: () => this.placement.standInFor(this)?.uri ?? this.uri }),
    });
    this.withoutPool = props.localPool === false;
    if (this.reachable && !this.withoutPool) {
      this.pool = new LeanPool(this, 'Pool', {
        provider: this.provider,
        // The same name on every host: a VM that moves is read through its new host's provider,
        // which looks the pool up by the name recorded in state.
        name: LOCAL_POOL_NAME,
        type: 'dir',
        target: { path: this.poolPath },
      });
    }
  }

  /** Name of the local pool, as a reference to the pool resource so volumes are created after it. */
  public get localPoolName(): string {
    // Read once: each read of a resource attribute makes a new token, kept until synth ends.
    return (this.poolNameToken ??= this.pool?.name ?? LOCAL_POOL_NAME);
  }

  /** A standalone VM's segment: its network is created here, and its settings checked here. */
  public useStandaloneSegment(segment: Segment): void {
    if (segment !== this.defaultSegment) this.standaloneSegments.add(segment);
    this.ensureNetwork(segment);
  }

  /** Creates the libvirt network of an isolated segment on this host, once. */
  public ensureNetwork(segment: Segment): void {
    if (segment === this.defaultSegment) {
      // No <forward> and no <ip>: guests on it reach nothing but each other.
      if (this.reachable && !this.network) this.network = new LeanNetwork(this, 'Network', { provider: this.provider, name: this.networkName, autostart: true });
      return;
    }
    if (segment.kind !== SegmentKind.ISOLATED) return;
    const known = this.segmentNetworks.get(segment.name);
    if (known) {
      if (known.segment !== segment) this.segmentClashes.add(segment.name);
      return;
    }
    // No <forward> and no <ip>, like the host's own network.
    const network = this.reachable
      ? new LeanNetwork(this, `Segment-${segment.name}`, { provider: this.provider, name: segment.name, autostart: true })
      : undefined;
    // Read once: each read of a resource attribute makes a new token.
    this.segmentNetworks.set(segment.name, { segment, name: network?.name });
  }

  /** The libvirt network name of an isolated segment on this host, as a reference when it is created here. */
  public networkNameFor(segment: Segment): string {
    if (segment === this.defaultSegment) return this.network?.name ?? this.networkName;
    return this.segmentNetworks.get(segment.name)?.name ?? segment.name;
  }

  /** Whether Terraform may contact the host: not failed, not powered down. */
  public get reachable(): boolean {
    return this.state !== HostState.FAILED && this.state !== HostState.STANDBY;
  }

  /** The base volume of `image` in this host's local pool, created on first use. */
  public imageVolume(image: IBaseImage): LeanVolume {
    let volume = this.images.get(image.name);
    if (!volume) {
      if (!this.pool) {
        if (this.withoutPool) {
          // Reported once, with the fix; the stand-in below is never rendered because synth fails.
          this.node.addValidation({ validate: () => [`host ${this.hostName} has localPool: false, and a VM needs image '${image.name}' on it: remove localPool: false to give the host its local pool, or place the VM elsewhere`] });
          volume = image.createVolume(this, `Image-${image.name}`, this.provider, LOCAL_POOL_NAME);
          this.images.set(image.name, volume);
          return volume;
        }
        throw new Error(`${this.node.path}: host ${this.hostName} is ${this.state}; nothing can be created on it`);
      }
      volume = image.createVolume(this, `Image-${image.name}`, this.provider, this.pool.name);
      this.images.set(image.name, volume);
    }
    return volume;
  }

  /** Refuses a remote connection that does not verify the host's key, unless opted out. */
  public applySecureDefaults(): void {
    const unverified = unverifiedConnection(this.uri);
    if (unverified && !this.insecureSkipHostKeyVerification) {
      this.node.addValidation({
        validate: () => [
          `${unverified}: use qemu+ssh with a known_hosts entry (the default ~/.ssh/known_hosts or ?knownhosts=PATH), or set insecureSkipHostKeyVerification: true to accept the risk`,
        ],
      });
    }
  }

  /** The secure defaults this host opts out of. */
  public policyOptOuts(): PolicyOptOut[] {
    const detail = this.insecureSkipHostKeyVerification ? unverifiedConnection(this.uri) : undefined;
    return detail ? [{ path: this.node.path, policy: 'host-key-verification', detail }] : [];
  }

  /** The host as the placement core sees it, or why it cannot be placed on. */
  public toHostSpec(): HostSpec | string {
    const cap = this.capacity;
    if (!cap) return `host ${this.hostName} (${this.node.path}) has no capacity; a cluster host needs capacity: { cores, memory }`;
    return {
      name: this.hostName,
      cores: cap.cores,
      memoryMiB: cap.memory.toMebibytes(),
      reservedCores: cap.reservedCores ?? 0,
      reservedMemoryMiB: cap.reservedMemory?.toMebibytes() ?? 0,
      labels: this.labels,
      state: this.state,
      ...(this.wakeTime ? { wakeSeconds: this.wakeTime.toSeconds() } : {}),
    };
  }

  /**
   * The Terraform addresses of what this host had while reachable, for `removed` blocks when it
   * is not: its pool, its network and the base volumes of `images`.
   */
  public forgottenAddresses(images: readonly IBaseImage[]): string[] {
    if (this.reachable) return [];
    return [
      addressAt(this, 'Pool', 'libvirt_pool'),
      addressAt(this, 'Network', 'libvirt_network'),
      ...[...this.segmentNetworks.keys()].map((name) => addressAt(this, `Segment-${name}`, 'libvirt_network')),
      ...images.map((image) => addressAt(this, `Image-${image.name}`, 'libvirt_volume')),
    ];
  }

  private validateProps(architecture: string, override: unknown): string[] {
    const problems: string[] = [];
    for (const segment of this.standaloneSegments) {
      for (const p of segment.validate()) problems.push(`${p} (a NIC of a VM on host ${this.hostName})`);
    }
    for (const name of this.segmentClashes) {
      problems.push(`two different segments are named ${name} on host ${this.hostName}: the name is their libvirt network; declare the segment once and share it, or rename one`);
    }
    if (override !== undefined && !(Object.values(HostState) as unknown[]).includes(override)) {
      problems.push(`context ${HOST_STATE_CONTEXT}${this.hostName}='${override}' is not a host state; use one of ${Object.values(HostState).join(', ')}`);
    }
    if (!HOST_NAME.test(this.hostName)) {
      problems.push(`host name '${this.hostName}' must start with a letter and hold only a-z, 0-9 and '-' (at most 31): it names the provider alias and network; set hostName`);
    }
    if (!ARCHITECTURES_64.includes(architecture)) {
      problems.push(`host architecture '${architecture}' is not 64-bit: hosts must be 64-bit (${ARCHITECTURES_64.join(', ')}); 32-bit guests run on 64-bit hosts`);
    }
    if (!/^[a-z0-9+]+:\/\//.test(this.uri)) {
      problems.push(`uri '${this.uri}' is not a libvirt connection URI such as qemu:///system or qemu+ssh://user@host/system`);
    }
    const cap = this.capacity;
    if (cap) {
      if (cap.memory.toBytes() < 2 ** 20) problems.push(`capacity.memory is ${cap.memory}: a host needs memory for its guests; give its physical memory, e.g. Size.gibibytes(64)`);
      if (!Number.isInteger(cap.cores) || cap.cores < 1) problems.push(`capacity.cores is ${cap.cores}; give a whole number of cores, at least 1`);
      const reserved = cap.reservedCores ?? 0;
      if (!Number.isInteger(reserved) || reserved < 0 || reserved >= cap.cores) {
        problems.push(`capacity.reservedCores is ${reserved}; it must be a whole number below capacity.cores (${cap.cores})`);
      }
      if (cap.reservedMemory && !cap.memory.isGreaterThan(cap.reservedMemory)) {
        problems.push(`capacity.reservedMemory (${cap.reservedMemory}) leaves no memory of ${cap.memory} for guests`);
      }
    }
    return problems;
  }
}

function stateFrom(declared: HostState, override: unknown): HostState {
  return (Object.values(HostState) as unknown[]).includes(override) ? (override as HostState) : declared;
}
