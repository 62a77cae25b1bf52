import { LocalBackend, TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import { DomainType, Duration, GuestArchitecture, Host, Image, RemovalPolicy, Size, VirtualMachine } from '../lib';

export interface DemoStackProps {
  /**
   * libvirt connection URI of the one host.
   * @default qemu:///system
   */
  readonly uri?: string;
  /** How the host runs guests (`qemu` where there is no /dev/kvm). */
  readonly domainType: DomainType;
  /**
   * Directory of the host's storage pool.
   * @default /var/lib/libvirt/images/demo
   */
  readonly poolPath?: string;
  /**
   * Memory of the VM.
   * @default 96 MiB
   */
  readonly memory?: Size;
  /**
   * The image the VM boots.
   * @default - a blank 64 MiB disk that boots nothing (no internet here to fetch an OS)
   */
  readonly image?: Image;
  /**
   * Copy the VM's serial console to /var/log/libvirt/qemu/demo-vm-console.log on the host.
   * @default false
   */
  readonly consoleLog?: boolean;
  /**
   * Local state file.
   * @default terraform.demo.tfstate in the stack's output folder
   */
  readonly statePath?: string;
}

/** One small VM on one host: the walking skeleton, and what `npx cdktf synth` shows first. */
export class DemoStack extends TerraformStack {
  public readonly host: Host;
  public readonly vm: VirtualMachine;

  constructor(scope: Construct, id: string, props: DemoStackProps) {
    super(scope, id);
    new LocalBackend(this, { path: props.statePath ?? `terraform.${id}.tfstate` });
    this.host = new Host(this, 'demo', { uri: props.uri, domainType: props.domainType, poolPath: props.poolPath });
    this.vm = new VirtualMachine(this, 'demo-vm', {
      host: this.host,
      vcpus: 1,
      memory: props.memory ?? Size.mebibytes(96),
      // The blank image boots no OS, so nothing answers an ACPI shutdown: a change that needs a
      // restart waits this long, then the provider powers the guest off.
      shutdownTimeout: Duration.seconds(5),
      architecture: GuestArchitecture.X86_64,
      // No internet here: a blank image proves provisioning without booting an OS.
      image: props.image ?? Image.blank('blank', Size.mebibytes(64)),
      console: { logToFile: props.consoleLog ?? false },
      dataDisk: { size: Size.mebibytes(32), removalPolicy: RemovalPolicy.DESTROY },
      cloudInit: {
        users: [{ name: 'ops', sudo: true, sshAuthorizedKeys: [DEMO_PUBLIC_KEY] }],
      },
    });
  }
}

/** A public key only (safe to commit); its private half was never kept. */
export const DEMO_PUBLIC_KEY =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbTDT0vB3vSzqmnMJV3B2mUj4dd3yp7PqAf6l0uVvJq demo@cdktf-libvirt-cluster';
