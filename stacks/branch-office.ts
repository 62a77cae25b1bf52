import * as path from 'path';
import { LocalBackend, TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import { Cluster, GuestArchitecture, Host, Image, RestartPriority, Size, VirtualMachine, VmLimits } from '../lib';
import { StackEnvironment, stackEnvironment } from './environment';

/**
 * One host running a branch office's servers, consolidated: file, print and a 32-bit legacy
 * application server, within the original product's per-VM ceilings. A single host tolerates
 * no failure; the cluster still places, checks limits and reports.
 */
export class BranchOfficeStack extends TerraformStack {
  public readonly cluster: Cluster;

  constructor(scope: Construct, id: string, props: { readonly environment?: StackEnvironment; readonly lockFile?: string; readonly frozenLock?: boolean } = {}) {
    super(scope, id);
    const env = props.environment ?? stackEnvironment();
    new LocalBackend(this, { path: `terraform.${id}.tfstate` });
    const office = new Host(this, 'office', {
      uri: env.uri('office', 'qemu+ssh://admin@office-kvm.example.net/system'),
      domainType: env.domainType,
      capacity: { cores: 8, memory: Size.gibibytes(32), reservedCores: 1, reservedMemory: Size.gibibytes(2) },
    });
    this.cluster = new Cluster(this, 'cluster', {
      hosts: [office],
      failuresToTolerate: 0,
      vmLimits: VmLimits.originalProduct(),
      lockFile: props.lockFile ?? path.join(__dirname, `${id}.placement-lock.json`),
      frozenLock: props.frozenLock,
    });
    const image = Image.blank('blank', Size.mebibytes(64));
    const servers = [
      { id: 'files', vcpus: 2, memory: Size.gibibytes(4), priority: RestartPriority.HIGH, data: Size.gibibytes(200) },
      { id: 'print', vcpus: 1, memory: Size.gibibytes(1), priority: RestartPriority.LOW },
      { id: 'erp', vcpus: 4, memory: Size.gibibytes(8), maxMemory: Size.gibibytes(16), priority: RestartPriority.HIGH, data: Size.gibibytes(50) },
      { id: 'legacy-app', vcpus: 1, memory: Size.gibibytes(2), priority: RestartPriority.MEDIUM, i686: true },
    ];
    for (const s of servers) {
      new VirtualMachine(this, s.id, {
        cluster: this.cluster,
        vcpus: s.vcpus,
        memory: s.memory,
        maxMemory: s.maxMemory,
        priority: s.priority,
        architecture: s.i686 ? GuestArchitecture.I686 : GuestArchitecture.X86_64,
        image,
        dataDisk: s.data ? { size: s.data } : undefined,
      });
    }
  }
}
