import { dependable } from 'cdktf';
import { Construct } from 'constructs';
import { InterfaceAddress } from '../core/addressing';
import { RestartPriority } from '../core/model';
import { isTimeZone, Schedule } from '../core/schedule';
import { AntiAffinity } from './anti-affinity';
import { IPlacementHost, IReplicaPlacer, IScheduledGroup } from './contract';
import { NicProps } from './nic';
import { VirtualMachine, VirtualMachineProps } from './virtual-machine';

/** The shape every replica of a failover group shares: these props of `VirtualMachineProps`. */
export type ReplicaTemplate = Pick<
  VirtualMachineProps,
  'vcpus' | 'maxVcpus' | 'memory' | 'maxMemory' | 'architecture' | 'image' | 'bootDiskSize' | 'dataDisk' | 'cloudInit' | 'console' | 'shutdownTimeout' | 'gracefulDestroy'
>;

/** A NIC every replica has; the replicas' static addresses count up from the first. */
export interface ReplicaNicProps extends Omit<NicProps, 'addresses' | 'mac'> {
  /**
   * The first replica's static addresses with prefix (IPv4 and/or IPv6); replica n has each plus
   * n - 1: `192.0.2.11/24` gives mail-1 .11, mail-2 .12, mail-3 .13. A replica keeps its address
   * for its life, like its name.
   * @default - none: the replicas ask DHCP
   */
  readonly firstAddresses?: readonly string[];
}

export interface FailoverGroupProps {
  /** The cluster that places and restarts the replicas. */
  readonly cluster: IReplicaPlacer;
  /** The replicas' shape. */
  readonly template: ReplicaTemplate;
  /**
   * How many replicas run: a number, or a schedule of time windows in the cluster's time zone.
   * Replicas outside the current window keep their place and data disk but are not deployed.
   * @default 1
   */
  readonly replicas?: number | Schedule;
  /**
   * How replicas are kept apart.
   * @default AntiAffinity.soft() - different hosts when possible
   */
  readonly antiAffinity?: AntiAffinity;
  /**
   * Service level of every replica.
   * @default RestartPriority.MEDIUM
   */
  readonly priority?: RestartPriority;
  /**
   * Hosts tried first, in order (preferred owners).
   * @default - none
   */
  readonly preferredHosts?: readonly IPlacementHost[];
  /**
   * Hosts replicas may run on.
   * @default - every host of the cluster
   */
  readonly allowedHosts?: readonly IPlacementHost[];
  /**
   * Groups whose replicas must be created (and so started) before this group's.
   * @default - none
   */
  readonly startAfter?: readonly FailoverGroup[];
  /**
   * Every replica's NICs, on the cluster's segments.
   * @default - one NIC on the cluster's default segment
   */
  readonly nics?: readonly ReplicaNicProps[];
  /**
   * The construct path the group had in this stack before it was renamed or moved (e.g. `mail`):
   * each replica's resources get `moved` blocks from `<renamedFrom>/replica-<i>`.
   * @default - the resource lock finds renames that keep `namePrefix`
   */
  readonly renamedFrom?: string;
  /**
   * Prefix of replica names: `<prefix>-1`, `<prefix>-2`, ...
   * @default - the construct id
   */
  readonly namePrefix?: string;
}

/**
 * A service of N replica VMs from one template, kept apart by anti-affinity and restarted on the
 * survivors when a host fails (the VM-level failover group). Replica i always has the Terraform
 * address `<group>/replica-<i>`, so scaling adds or removes only the last replicas.
 *
 * @example
 * new FailoverGroup(stack, 'mail', {
 *   cluster,
 *   replicas: Schedule.from('08:00', 3).and('20:00', 2),
 *   template: { vcpus: 2, memory: Size.gibibytes(4), image: debian, dataDisk: { size: Size.gibibytes(50) } },
 *   antiAffinity: AntiAffinity.soft(),
 *   priority: RestartPriority.HIGH,
 * });
 */
export class FailoverGroup extends Construct implements IScheduledGroup {
  public readonly groupName: string;
  public readonly cluster: IReplicaPlacer;
  public readonly schedule: Schedule;
  /** Every replica up to the schedule's peak; those outside the current window are not deployed. */
  public readonly replicas: readonly VirtualMachine[];
  /** Replicas deployed in the current window. */
  public readonly runningReplicas: readonly VirtualMachine[];

  constructor(scope: Construct, id: string, props: FailoverGroupProps) {
    super(scope, id);
    this.groupName = props.namePrefix ?? id;
    const replicas = props.replicas ?? 1;
    this.schedule = typeof replicas === 'number' ? Schedule.constant(replicas) : replicas;
    const cluster = props.cluster;
    this.cluster = cluster;
    if (cluster === undefined || cluster === null) {
      // Possible from JavaScript: reported at the group's path with every other problem of the app.
      this.replicas = [];
      this.runningReplicas = [];
      this.node.addValidation({ validate: () => ['a FailoverGroup needs a cluster to place its replicas: set cluster to a Cluster of the hosts that back each other up'] });
      return;
    }
    // A time zone the cluster rejects (its validation says so) runs every replica until it is fixed.
    const now = isTimeZone(cluster.timeZone) ? this.schedule.replicasAt(cluster.instant, cluster.timeZone) : this.schedule.maxReplicas();
    const antiAffinity = (props.antiAffinity ?? AntiAffinity.soft()).toSpec();
    const list: VirtualMachine[] = [];
    for (let i = 1; i <= this.schedule.maxReplicas(); i++) {
      const vm = new VirtualMachine(this, `replica-${i}`, {
        cluster,
        name: `${this.groupName}-${i}`,
        ...props.template,
        ...(props.nics ? { nics: props.nics.map((nic) => replicaNic(nic, i)) } : {}),
        priority: props.priority,
        preferredHosts: props.preferredHosts,
        allowedHosts: props.allowedHosts,
        deployed: i <= now,
        ...(props.renamedFrom ? { renamedFrom: `${props.renamedFrom}/replica-${i}` } : {}),
        group: { group: this.groupName, antiAffinity },
      });
      list.push(vm);
    }
    this.replicas = list;
    this.runningReplicas = list.filter((vm) => vm.deployed);
    for (const before of props.startAfter ?? []) {
      for (const vm of this.runningReplicas) {
        for (const other of before.runningReplicas) {
          // Replicas render nothing in a cluster without hosts; synth reports that.
          if (vm.resource && other.resource) vm.resource.dependsOn = [...(vm.resource.dependsOn ?? []), dependable(other.resource)];
        }
      }
    }
    cluster.addGroup(this);
    this.node.addValidation({
      validate: () =>
        this.schedule.maxReplicas() < 1 ? [`replicas peaks at ${this.schedule.maxReplicas()}; a failover group needs at least 1 replica`] : [],
    });
  }

  /** E.g. `mail: 08:00 → 3, 20:00 → 2 (now 2)`, for the report. */
  public describeSchedule(): string {
    return `${this.groupName}: ${this.schedule} (now ${this.runningReplicas.length})`;
  }
}

/** Replica `n`'s NIC: the first addresses plus n - 1 (an unparsable one is passed on for the VM to report). */
function replicaNic(nic: ReplicaNicProps, n: number): NicProps {
  const { firstAddresses, ...rest } = nic;
  if (firstAddresses === undefined) return rest;
  const addresses = firstAddresses.map((text) => {
    const first = InterfaceAddress.parse(text);
    if (typeof first === 'string') return text;
    return first.plus(n - 1)?.toString() ?? `${text}+${n - 1}`;
  });
  return { ...rest, addresses };
}
