import * as path from 'path';
import { LocalBackend, TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import {
  AntiAffinity, Cluster, Duration, FailoverGroup, Host, HostState, RemovalPolicy, RestartPriority, Schedule, Segment, Size, UnattendedAction,
} from '../lib';
import { StackEnvironment, stackEnvironment } from './environment';

export interface MailServiceProps {
  /** @default - from the environment (see stacks/environment.ts) */
  readonly environment?: StackEnvironment;
  /** @default - mail-service.placement-lock.json beside this file */
  readonly lockFile?: string;
  /** @default - the cluster's default (context libvirt-cluster:instant, else now) */
  readonly instant?: Date;
  /** @default - the cluster's default (frozen when CI=true) */
  readonly frozenLock?: boolean;
  /**
   * What happens to mail data disks when a replica is removed from the code.
   * @default RemovalPolicy.RETAIN
   */
  readonly dataRemovalPolicy?: RemovalPolicy;
  /**
   * vCPUs of each mail replica, up to its ceiling of 2.
   * @default 1
   */
  readonly mailVcpus?: number;
  /**
   * Memory of each mail replica, up to its ceiling of 512 MiB.
   * @default 256 MiB
   */
  readonly mailMemory?: Size;
  /**
   * What the controller may do for the cluster on its own (the drills turn these on).
   * @default - none: the controller only watches
   */
  readonly unattended?: readonly UnattendedAction[];
}

/**
 * The e-mail service of the original idea: 2 mail VMs at night on 2 different hosts, a third at
 * the 08:00 peak, both hosts backing each other up (one failure tolerated: everything restarts on
 * the survivor), mail data on shared storage, and the directory it needs started first.
 */
export class MailServiceStack extends TerraformStack {
  public readonly cluster: Cluster;
  public readonly mail: FailoverGroup;
  public readonly directory: FailoverGroup;

  constructor(scope: Construct, id: string, props: MailServiceProps = {}) {
    super(scope, id);
    const env = props.environment ?? stackEnvironment();
    new LocalBackend(this, { path: `terraform.${id}.tfstate` });

    const capacity = { cores: 4, memory: Size.gibibytes(4), reservedMemory: Size.mebibytes(512) };
    // Powered on until libvirt answers within a minute: in standby, a host still counts as capacity
    // for failures, since a failover (2 min by default) can wake it.
    const wakeTime = Duration.seconds(60);
    // To take a host out, change its state here (HostState.MAINTENANCE, STANDBY, FAILED) and review the plan.
    const h1 = new Host(this, 'h1', { uri: env.uri('h1', 'qemu+ssh://admin@kvm1.example.net/system'), domainType: env.domainType, capacity, labels: { rack: 'r1' }, state: HostState.ACTIVE, wakeTime });
    const h2 = new Host(this, 'h2', { uri: env.uri('h2', 'qemu+ssh://admin@kvm2.example.net/system'), domainType: env.domainType, capacity, labels: { rack: 'r2' }, state: HostState.ACTIVE, wakeTime });

    // The LAN every host bridges as br0: the replicas keep their MAC and addresses wherever they run.
    // Documentation ranges (RFC 5737, RFC 3849): replace them with the site's.
    const lan = Segment.hostBridge('lan', env.bridge, {
      subnets: ['192.0.2.0/24', '2001:db8:25::/64'],
      gateway4: '192.0.2.1',
      gateway6: '2001:db8:25::1',
      nameservers: ['192.0.2.53'],
    });
    this.cluster = new Cluster(this, 'cluster', {
      segments: [lan],
      hosts: [h1, h2],
      sharedStorage: { poolName: 'shared', path: env.sharedPath },
      failuresToTolerate: 1,
      timeZone: 'Europe/Zurich',
      lockFile: props.lockFile ?? path.join(__dirname, `${id}.placement-lock.json`),
      instant: props.instant,
      frozenLock: props.frozenLock,
      unattended: props.unattended,
    });
    const image = env.image;
    const console = { logToFile: env.consoleLog };

    this.directory = new FailoverGroup(this, 'directory', {
      cluster: this.cluster,
      replicas: 1,
      priority: RestartPriority.HIGH,
      nics: [{ segment: lan, firstAddresses: ['192.0.2.10/24', '2001:db8:25::10/64'] }],
      template: { vcpus: 1, memory: Size.mebibytes(128), image, console },
    });
    this.mail = new FailoverGroup(this, 'mail', {
      cluster: this.cluster,
      replicas: Schedule.from('08:00', 3).and('20:00', 2),
      // Soft: on two hosts, both nightly replicas must be able to run on the survivor.
      antiAffinity: AntiAffinity.soft(),
      priority: RestartPriority.HIGH,
      startAfter: [this.directory],
      // mail-1 is .11, mail-2 .12, the peak replica mail-3 .13.
      nics: [{ segment: lan, firstAddresses: ['192.0.2.11/24', '2001:db8:25::11/64'] }],
      template: {
        // Room to grow while running: up to 2 vCPUs and 512 MiB are hot-added without a restart.
        vcpus: props.mailVcpus ?? 1,
        maxVcpus: 2,
        memory: props.mailMemory ?? Size.mebibytes(256),
        maxMemory: Size.mebibytes(512),
        image,
        console,
        dataDisk: { size: Size.mebibytes(32), removalPolicy: props.dataRemovalPolicy },
        cloudInit: { packages: ['postfix', 'dovecot-imapd'] },
      },
    });
  }
}
