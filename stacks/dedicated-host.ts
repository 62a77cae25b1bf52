import * as path from 'path';
import { LocalBackend, TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import { Cluster, Host, HostState, Image, RestartPriority, Size, VirtualMachine } from '../lib';
import { StackEnvironment, stackEnvironment } from './environment';

/**
 * A database that has a host to itself, kept virtualized so it can move: a spare host waits in
 * standby. To move the database, set the spare ACTIVE and db-host MAINTENANCE, and review the plan.
 */
export class DedicatedHostStack extends TerraformStack {
  public readonly cluster: Cluster;
  public readonly database: VirtualMachine;

  constructor(scope: Construct, id: string, props: { readonly environment?: StackEnvironment; readonly lockFile?: string; readonly frozenLock?: boolean } = {}) {
    super(scope, id);
    const env = props.environment ?? stackEnvironment();
    new LocalBackend(this, { path: `terraform.${id}.tfstate` });
    const capacity = { cores: 16, memory: Size.gibibytes(128), reservedCores: 2, reservedMemory: Size.gibibytes(8) };
    const dbHost = new Host(this, 'db-host', { uri: env.uri('db-host', 'qemu+ssh://admin@db1.example.net/system'), domainType: env.domainType, capacity });
    const spare = new Host(this, 'spare', { uri: env.uri('spare', 'qemu+ssh://admin@spare1.example.net/system'), domainType: env.domainType, capacity, state: HostState.STANDBY });
    this.cluster = new Cluster(this, 'cluster', {
      hosts: [dbHost, spare],
      // The spare is powered down, so no failure can be absorbed without a person waking it.
      failuresToTolerate: 0,
      sharedStorage: { poolName: 'shared', path: env.sharedPath },
      lockFile: props.lockFile ?? path.join(__dirname, `${id}.placement-lock.json`),
      frozenLock: props.frozenLock,
    });
    this.database = new VirtualMachine(this, 'database', {
      cluster: this.cluster,
      vcpus: 8,
      maxVcpus: 12,
      memory: Size.gibibytes(64),
      maxMemory: Size.gibibytes(96),
      priority: RestartPriority.HIGH,
      image: Image.blank('blank', Size.mebibytes(64)),
      dataDisk: { size: Size.gibibytes(500) },
    });
  }
}
