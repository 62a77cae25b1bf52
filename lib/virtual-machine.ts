import { Lazy, TerraformResource } from 'cdktf';
import { Construct } from 'constructs';
import { CloudInit, CloudInitProps } from './cloud-init';
import type { Cluster } from './cluster';
import { Size } from './core/size';
import { CloudinitDisk } from './generated/libvirt/cloudinit-disk';
import { Domain, DomainDisk, DomainGraphics } from './generated/libvirt/domain';
import { Volume } from './generated/libvirt/volume';
import { GuestArchitecture } from './guest-architecture';
import { Host } from './host';
import { Image } from './image';
import { RestartPriority } from './restart-priority';
import { SecureDefaults } from './secure-defaults';

/** What happens to a data disk when its VM is removed from the code. */
export enum RemovalPolicy {
  /** The disk is protected (`prevent_destroy`): a plan that would destroy it fails. */
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
}

export interface VirtualMachineProps {
  /**
   * The host the VM runs on. With a `cluster`, pins the VM to that host.
   * @default - chosen by the cluster's placement (a `cluster` is then required)
   */
  readonly host?: Host;
  /**
   * The cluster that places the VM, restarts it elsewhere when its host fails and keeps its data
   * disk on the cluster's shared storage.
   * @default - none: the VM stands alone on `host`
   */
  readonly cluster?: Cluster;
  /**
   * libvirt domain name, unique on its host.
   * @default - the construct id
   */
  readonly name?: string;
  /**
   * Virtual CPUs at start.
   * @default 1
   */
  readonly vcpus?: number;
  /**
   * Ceiling the vCPUs can be raised to on the running VM (`virsh setvcpus --live`) without
   * redefining it. Placement reserves the ceiling.
   * @default - the same as vcpus
   */
  readonly maxVcpus?: number;
  /**
   * Memory at start.
   * @default 512 MiB
   */
  readonly memory?: Size;
  /**
   * Ceiling the memory can be raised to on the running VM (`virsh setmem --live`) without
   * redefining it. Placement reserves the ceiling.
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
   * User data applied on first boot through a NoCloud cloud-init disk.
   * @default - a cloud-init disk that only sets the hostname
   */
  readonly cloudInit?: CloudInitProps;
  /**
   * Attach one network interface to the host's isolated network.
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
   * Service level: placement order and restart after a host failure (clustered VMs only).
   * @default RestartPriority.MEDIUM
   */
  readonly priority?: RestartPriority;
  /**
   * Hosts the cluster may place the VM on.
   * @default - every host of the cluster
   */
  readonly allowedHosts?: readonly Host[];
  /**
   * Hosts tried first, in order, like preferred owners.
   * @default - none: the placement policy decides
   */
  readonly preferredHosts?: readonly Host[];
  /**
   * Whether the VM is deployed. `false` keeps only its data disk (and its reserved place in the
   * cluster): the domain, boot overlay and cloud-init disk are removed until it is deployed again.
   * Failover groups use this for replicas outside their schedule window.
   * @default true
   */
  readonly deployed?: boolean;
}

/** A clustered VM's membership in a failover group, set by the group. @internal */
export interface GroupMembership {
  readonly group: string;
  readonly antiAffinity: { readonly hard: boolean; readonly scope: string };
}

const DOMAIN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/**
 * A libvirt guest: a domain with a copy-on-write boot disk over a base image, an optional data
 * disk, a cloud-init disk and one NIC on its host's isolated network. It stands alone on a host,
 * or is placed by a `Cluster`, which chooses the host at synth and moves it when the host fails;
 * its Terraform addresses never depend on the host.
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
export class VirtualMachine extends Construct {
  public readonly vmName: string;
  public readonly vcpus: number;
  public readonly maxVcpus: number;
  public readonly memory: Size;
  public readonly maxMemory: Size;
  public readonly architecture: GuestArchitecture;
  public readonly image: Image;
  public readonly priority: RestartPriority;
  public readonly cluster?: Cluster;
  /** The host the VM is pinned to, if any. */
  public readonly pinnedHost?: Host;
  public readonly allowedHosts?: readonly Host[];
  public readonly preferredHosts?: readonly Host[];
  public readonly deployed: boolean;
  public readonly dataDiskRemovalPolicy?: RemovalPolicy;
  /** Address the VNC console listens on. */
  public readonly consoleListenAddress: string;
  /** The libvirt domain; absent while the VM is not deployed. */
  public readonly resource?: Domain;
  public readonly bootDisk?: Volume;
  public readonly dataDisk?: Volume;
  public readonly cloudInitDisk?: CloudinitDisk;
  /** Set by a failover group. @internal */
  public membership?: GroupMembership;
  private boundHost?: Host;

  constructor(scope: Construct, id: string, props: VirtualMachineProps) {
    super(scope, id);
    this.vmName = props.name ?? id;
    this.vcpus = props.vcpus ?? 1;
    this.maxVcpus = props.maxVcpus ?? this.vcpus;
    this.memory = props.memory ?? Size.mebibytes(512);
    this.maxMemory = props.maxMemory ?? this.memory;
    this.architecture = props.architecture ?? GuestArchitecture.X86_64;
    this.image = props.image;
    this.priority = props.priority ?? RestartPriority.MEDIUM;
    this.cluster = props.cluster;
    this.pinnedHost = props.host;
    this.allowedHosts = props.allowedHosts;
    this.preferredHosts = props.preferredHosts;
    this.deployed = props.deployed ?? true;
    this.consoleListenAddress = props.console?.listenAddress ?? '127.0.0.1';
    const cloudInit = new CloudInit(props.cloudInit);
    this.node.addValidation({ validate: () => [...this.validateProps(props), ...cloudInit.validate(), ...props.image.validate()] });
    SecureDefaults.applyTo(this);

    // Everything host-specific is resolved late, so a clustered VM's host can be chosen once the
    // whole tree is known; the addresses below never mention the host.
    // Disks go to the cluster's shared storage when it has one: they follow the VM to another
    // host, and their disk leases fence a stale copy. The cloud-init disk is rebuilt anywhere.
    const localPool = Lazy.stringValue({ produce: () => this.host.pool.name });
    const diskPool = Lazy.stringValue({ produce: () => this.cluster?.sharedPoolName ?? this.host.pool.name });
    if (props.dataDisk) {
      this.dataDiskRemovalPolicy = props.dataDisk.removalPolicy ?? RemovalPolicy.RETAIN;
      this.dataDisk = new Volume(this, 'DataDisk', {
        name: `${this.vmName}-data.qcow2`,
        pool: diskPool,
        format: 'qcow2',
        size: props.dataDisk.size.toBytes(),
      });
    }
    if (this.deployed) {
      this.bootDisk = new Volume(this, 'BootDisk', {
        name: `${this.vmName}-boot.qcow2`,
        pool: diskPool,
        format: 'qcow2',
        baseVolumeId: Lazy.stringValue({ produce: () => this.baseVolume().id }),
        ...(props.bootDiskSize ? { size: props.bootDiskSize.toBytes() } : {}),
      });
      this.cloudInitDisk = new CloudinitDisk(this, 'CloudInit', {
        name: `${this.vmName}-cloudinit.iso`,
        pool: localPool,
        userData: cloudInit.userData(this.vmName),
        metaData: cloudInit.metaData(this.vmName, this.vmName),
      });
      const disks: DomainDisk[] = [{ volumeId: this.bootDisk.id }];
      if (this.dataDisk) disks.push({ volumeId: this.dataDisk.id });
      const graphics: DomainGraphics = {
        type: 'vnc',
        autoport: true,
        listenType: 'address',
        listenAddress: this.consoleListenAddress,
      };
      this.resource = new Domain(this, 'Resource', {
        name: this.vmName,
        type: Lazy.stringValue({ produce: () => this.host.domainType }),
        arch: this.architecture,
        // The provider's vcpu and memory are the ceilings; the stylesheet sets the start values.
        vcpu: this.maxVcpus,
        memory: this.maxMemory.toMebibytes(),
        autostart: props.autostart ?? this.cluster === undefined,
        disk: disks,
        cloudinit: this.cloudInitDisk.id,
        networkInterface:
          props.network === false ? [] : [{ networkId: Lazy.stringValue({ produce: () => this.host.network.id }) }],
        console: [{ type: 'pty', targetType: 'serial', targetPort: '0' }],
        graphics,
        ...(this.hasHotplugCeiling ? { xml: { xslt: this.hotplugStylesheet() } } : {}),
      });
    }
    if (!this.cluster) {
      if (!props.host) throw new Error(`${this.node.path}: a VirtualMachine needs a host or a cluster`);
      this.bind(props.host);
    } else {
      this.cluster.register(this);
    }
  }

  /** The host the VM runs on: its pinned host, or where its cluster placed it. */
  public get host(): Host {
    if (!this.boundHost) {
      this.cluster?.resolve();
      if (!this.boundHost) throw new Error(`${this.node.path} has no host: its cluster could not place it (see the synth errors)`);
    }
    return this.boundHost;
  }

  /** Places the VM's resources on `host`. Called once, by the VM or its cluster. @internal */
  public bind(host: Host): void {
    if (this.boundHost) throw new Error(`${this.node.path} is already bound to host ${this.boundHost.hostName}`);
    this.boundHost = host;
    if (this.deployed) this.baseVolume(); // created now, so it is rendered with the rest
    for (const r of this.resources()) r.provider = host.provider;
  }

  private baseVolume(): Volume {
    return this.cluster ? this.cluster.baseVolumeFor(this.image, this.host) : this.host.imageVolume(this.image);
  }

  /** The Terraform resources of this VM. */
  public resources(): TerraformResource[] {
    return [this.resource, this.bootDisk, this.dataDisk, this.cloudInitDisk].filter((r): r is NonNullable<typeof r> => r !== undefined);
  }

  private get hasHotplugCeiling(): boolean {
    return this.maxVcpus !== this.vcpus || this.maxMemory.toMebibytes() !== this.memory.toMebibytes();
  }

  /** XSLT applied by the provider to its generated domain XML: start values below the ceilings. */
  private hotplugStylesheet(): string {
    return [
      '<?xml version="1.0"?>',
      '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">',
      '  <xsl:output omit-xml-declaration="yes" indent="yes"/>',
      '  <xsl:template match="node()|@*"><xsl:copy><xsl:apply-templates select="node()|@*"/></xsl:copy></xsl:template>',
      `  <xsl:template match="/domain/vcpu"><vcpu current="${this.vcpus}"><xsl:value-of select="."/></vcpu></xsl:template>`,
      '  <xsl:template match="/domain/memory"><xsl:copy-of select="."/>' +
        `<currentMemory unit="MiB">${this.memory.toMebibytes()}</currentMemory></xsl:template>`,
      '</xsl:stylesheet>',
      '',
    ].join('\n');
  }

  private validateProps(props: VirtualMachineProps): string[] {
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
    if (!props.cluster && (props.priority !== undefined || props.allowedHosts || props.preferredHosts)) {
      problems.push('priority, allowedHosts and preferredHosts only apply to a VM placed by a cluster; set cluster or remove them');
    }
    const image = props.image;
    if (props.bootDiskSize && image.size && image.size.isGreaterThan(props.bootDiskSize)) {
      problems.push(`bootDiskSize ${props.bootDiskSize} is smaller than image '${image.name}' (${image.size}); an overlay cannot shrink its base`);
    }
    return problems;
  }
}
