import { Construct } from 'constructs';
import { CloudInit, CloudInitProps } from './cloud-init';
import { Size } from './core/size';
import { CloudinitDisk } from './generated/libvirt/cloudinit-disk';
import { Domain, DomainDisk, DomainGraphics } from './generated/libvirt/domain';
import { Volume } from './generated/libvirt/volume';
import { GuestArchitecture } from './guest-architecture';
import { Host } from './host';
import { Image } from './image';
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
  /** The host the VM runs on. */
  readonly host: Host;
  /**
   * libvirt domain name, unique on its host.
   * @default - the construct id
   */
  readonly name?: string;
  /**
   * Virtual CPUs.
   * @default 1
   */
  readonly vcpus?: number;
  /**
   * Memory.
   * @default 512 MiB
   */
  readonly memory?: Size;
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
   * An extra disk for data.
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
   * Start the VM when its host boots.
   * @default true
   */
  readonly autostart?: boolean;
  /**
   * Keep the VM running; `false` defines it but leaves it shut off.
   * @default true
   */
  readonly running?: boolean;
}

const DOMAIN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/**
 * A libvirt guest: a domain with a copy-on-write boot disk over a base image, an optional data
 * disk, a cloud-init disk and one NIC on its host's isolated network.
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
  public readonly host: Host;
  public readonly vcpus: number;
  public readonly memory: Size;
  public readonly architecture: GuestArchitecture;
  public readonly dataDiskRemovalPolicy?: RemovalPolicy;
  /** Address the VNC console listens on. */
  public readonly consoleListenAddress: string;
  /** The libvirt domain. */
  public readonly resource: Domain;
  public readonly bootDisk: Volume;
  public readonly dataDisk?: Volume;
  public readonly cloudInitDisk: CloudinitDisk;

  constructor(scope: Construct, id: string, props: VirtualMachineProps) {
    super(scope, id);
    this.vmName = props.name ?? id;
    this.host = props.host;
    this.vcpus = props.vcpus ?? 1;
    this.memory = props.memory ?? Size.mebibytes(512);
    this.architecture = props.architecture ?? GuestArchitecture.X86_64;
    const cloudInit = new CloudInit(props.cloudInit);
    this.node.addValidation({ validate: () => [...this.validateProps(props), ...cloudInit.validate(), ...props.image.validate()] });

    SecureDefaults.applyTo(this);
    const host = props.host;
    const provider = host.provider;
    const base = host.imageVolume(props.image);
    this.bootDisk = new Volume(this, 'BootDisk', {
      provider,
      name: `${this.vmName}-boot.qcow2`,
      pool: host.pool.name,
      format: 'qcow2',
      baseVolumeId: base.id,
      ...(props.bootDiskSize ? { size: props.bootDiskSize.toBytes() } : {}),
    });
    const disks: DomainDisk[] = [{ volumeId: this.bootDisk.id }];
    if (props.dataDisk) {
      this.dataDiskRemovalPolicy = props.dataDisk.removalPolicy ?? RemovalPolicy.RETAIN;
      this.dataDisk = new Volume(this, 'DataDisk', {
        provider,
        name: `${this.vmName}-data.qcow2`,
        pool: host.pool.name,
        format: 'qcow2',
        size: props.dataDisk.size.toBytes(),
      });
      disks.push({ volumeId: this.dataDisk.id });
    }
    this.cloudInitDisk = new CloudinitDisk(this, 'CloudInit', {
      provider,
      name: `${this.vmName}-cloudinit.iso`,
      pool: host.pool.name,
      userData: cloudInit.userData(this.vmName),
      metaData: cloudInit.metaData(this.vmName, this.vmName),
    });
    this.consoleListenAddress = props.console?.listenAddress ?? '127.0.0.1';
    const graphics: DomainGraphics = {
      type: 'vnc',
      autoport: true,
      listenType: 'address',
      listenAddress: this.consoleListenAddress,
    };
    this.resource = new Domain(this, 'Resource', {
      provider,
      name: this.vmName,
      type: host.domainType,
      arch: this.architecture,
      vcpu: this.vcpus,
      memory: this.memory.toMebibytes(),
      autostart: props.autostart ?? true,
      running: props.running ?? true,
      disk: disks,
      cloudinit: this.cloudInitDisk.id,
      networkInterface: props.network === false ? [] : [{ networkId: host.network.id }],
      console: [{ type: 'pty', targetType: 'serial', targetPort: '0' }],
      graphics,
    });
  }

  private validateProps(props: VirtualMachineProps): string[] {
    const problems: string[] = [];
    if (!DOMAIN_NAME.test(this.vmName)) {
      problems.push(`VM name '${this.vmName}' must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit; set name`);
    }
    if (!Number.isInteger(this.vcpus) || this.vcpus < 1) {
      problems.push(`vcpus is ${this.vcpus}; give a whole number, at least 1`);
    }
    if (this.memory.toMebibytes() < 16) {
      problems.push(`memory is ${this.memory}; give at least Size.mebibytes(16)`);
    }
    if (props.dataDisk && props.dataDisk.size.toBytes() === 0) {
      problems.push('dataDisk.size is 0; give a size such as Size.gibibytes(10)');
    }
    const image = props.image;
    if (props.bootDiskSize && image.size && image.size.isGreaterThan(props.bootDiskSize)) {
      problems.push(`bootDiskSize ${props.bootDiskSize} is smaller than image '${image.name}' (${image.size}); an overlay cannot shrink its base`);
    }
    return problems;
  }
}
