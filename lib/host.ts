import { TerraformResource } from 'cdktf';
import { Construct } from 'constructs';
import { Size } from './core/size';
import { DomainType } from './domain-type';
import { Image } from './image';
import { LibvirtProvider } from './generated/libvirt/provider';
import { Network } from './generated/libvirt/network';
import { Pool } from './generated/libvirt/pool';
import { SecureDefaults } from './secure-defaults';
import { Volume } from './generated/libvirt/volume';

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

/** The operational state of a host, set in code and reviewed like any other change. */
export enum HostState {
  /** Runs VMs and takes new ones. */
  ACTIVE = 'active',
  /** Drain: takes nothing new, and its VMs are placed elsewhere. */
  MAINTENANCE = 'maintenance',
  /** Powered down to save power: runs nothing. */
  STANDBY = 'standby',
  /** Unreachable: never contacted; its VMs restart on the survivors. */
  FAILED = 'failed',
}

/** Name of every host's local storage pool. */
export const LOCAL_POOL_NAME = 'cdktf-local';

/** Context key prefix for emergency state overrides: `libvirt-cluster:host-state:<host name>`. */
export const HOST_STATE_CONTEXT = 'libvirt-cluster:host-state:';

export interface HostProps {
  /**
   * The libvirt connection URI, e.g. `qemu:///system` or `qemu+ssh://admin@kvm1/system`.
   * Remote URIs must verify the host key (see `SecureDefaults`).
   * @default qemu:///system
   */
  readonly uri?: string;
  /**
   * The host's name in the cluster: names its provider alias, pool and network.
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
   * Capacity offered to guests; needed for a host to be part of a `Cluster`.
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
   * for emergencies.
   * @default HostState.ACTIVE
   */
  readonly state?: HostState;
  /**
   * Host architecture. Hosts must be 64-bit; anything else is rejected.
   * @default x86_64
   */
  readonly architecture?: string;
  /**
   * Accept a remote URI that does not verify the host's SSH key (`no_verify`,
   * `known_hosts_verify=ignore`). Shown as an opt-out in the report.
   * @default false
   */
  readonly insecureSkipHostKeyVerification?: boolean;
}

const HOST_NAME = /^[a-z][a-z0-9-]{0,30}$/;

/**
 * A libvirt host: one libvirtd reached through its own aliased provider, with a local storage
 * pool and an isolated network (no forwarding) for its guests.
 *
 * @example
 * const kvm1 = new Host(stack, 'kvm1', {
 *   uri: 'qemu+ssh://admin@kvm1.example.net/system',
 *   capacity: { cores: 16, memory: Size.gibibytes(64) },
 *   labels: { rack: 'r1' },
 * });
 */
export class Host extends Construct {
  /** Name of the host in the cluster and in its provider alias. */
  public readonly hostName: string;
  public readonly uri: string;
  public readonly domainType: DomainType;
  public readonly capacity?: HostCapacity;
  public readonly labels: Readonly<Record<string, string>>;
  /** Effective state, after any context override. */
  public readonly state: HostState;
  public readonly insecureSkipHostKeyVerification: boolean;
  /** The provider every resource on this host uses. */
  public readonly provider: LibvirtProvider;
  /** Local storage pool. */
  public readonly pool: Pool;
  /** Isolated network for the host's guests. */
  public readonly network: Network;
  private readonly images = new Map<string, Volume>();
  /** Set by the cluster the host joins. @internal */
  public clustered = false;

  constructor(scope: Construct, id: string, props: HostProps = {}) {
    super(scope, id);
    this.hostName = props.hostName ?? id;
    this.uri = props.uri ?? 'qemu:///system';
    this.domainType = props.domainType ?? DomainType.KVM;
    this.capacity = props.capacity;
    this.labels = props.labels ?? {};
    this.insecureSkipHostKeyVerification = props.insecureSkipHostKeyVerification ?? false;
    this.state = this.resolveState(props.state ?? HostState.ACTIVE);

    SecureDefaults.applyTo(this);
    const architecture = props.architecture ?? 'x86_64';
    this.node.addValidation({ validate: () => this.validateProps(architecture) });

    this.provider = new LibvirtProvider(this, 'Provider', { alias: this.hostName, uri: this.uri });
    this.pool = new Pool(this, 'Pool', {
      provider: this.provider,
      // The same name on every host: a VM that moves is read through its new host's provider,
      // which looks the pool up by the name recorded in state.
      name: LOCAL_POOL_NAME,
      type: 'dir',
      target: { path: props.poolPath ?? `/var/lib/libvirt/images/${this.hostName}` },
    });
    this.network = new Network(this, 'Network', {
      provider: this.provider,
      name: `${this.hostName}-isolated`,
      mode: 'none',
      autostart: true,
    });
  }

  /** The base volume of `image` on this host, created in the local pool on first use. */
  public imageVolume(image: Image): Volume {
    let volume = this.images.get(image.name);
    if (!volume) {
      volume = new Volume(this, `Image-${image.name}`, { provider: this.provider, pool: this.pool.name, ...image.volumeConfig() });
      this.images.set(image.name, volume);
    }
    return volume;
  }

  /**
   * Whether Terraform may contact the host: not failed, not powered down. Unreachable hosts get
   * no resources, and their provider alias is pointed elsewhere by their cluster.
   */
  public get reachable(): boolean {
    return this.state !== HostState.FAILED && this.state !== HostState.STANDBY;
  }

  /** What Terraform creates on this host for the host itself: pool, network, base images. */
  public ownResources(): TerraformResource[] {
    return [this.pool, this.network, ...this.images.values()];
  }

  private resolveState(declared: HostState): HostState {
    const override = this.node.tryGetContext(`${HOST_STATE_CONTEXT}${this.hostName}`);
    if (override === undefined) return declared;
    const known = Object.values(HostState) as string[];
    if (!known.includes(override)) {
      this.node.addValidation({
        validate: () => [
          `context ${HOST_STATE_CONTEXT}${this.hostName}='${override}' is not a host state; use one of ${known.join(', ')}`,
        ],
      });
      return declared;
    }
    return override as HostState;
  }

  private validateProps(architecture: string): string[] {
    const problems: string[] = [];
    if (!HOST_NAME.test(this.hostName)) {
      problems.push(`host name '${this.hostName}' must start with a letter and hold only a-z, 0-9 and '-' (at most 31): it names the provider alias, pool and network; set hostName`);
    }
    if (!['x86_64', 'aarch64', 'ppc64le', 's390x'].includes(architecture)) {
      problems.push(`host architecture '${architecture}' is not 64-bit: hosts must be 64-bit (x86_64, aarch64, ppc64le or s390x); 32-bit guests run on 64-bit hosts`);
    }
    if (!this.reachable && !this.clustered) {
      problems.push(`host ${this.hostName} is ${this.state} but belongs to no cluster: nothing can stand in for it, and its resources would still be contacted; add it to a Cluster or mark it active`);
    }
    if (!/^[a-z0-9+]+:\/\//.test(this.uri)) {
      problems.push(`uri '${this.uri}' is not a libvirt connection URI such as qemu:///system or qemu+ssh://user@host/system`);
    }
    const cap = this.capacity;
    if (cap) {
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
