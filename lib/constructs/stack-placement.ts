import * as fs from 'fs';
import * as path from 'path';
import { App, Aspects, IAspect, Lazy, TerraformStack } from 'cdktf';
import { Construct, IConstruct } from 'constructs';
import { CONTROLLER_FILE, renderControllerFile } from '../core/controller-file';
import { IPlaceable, IPlacementCluster, IPlacementHost } from './contract';
import { ResolvedNic } from './nic';
import { writeMissingFiles } from './stack-files';
import { Segment } from './segment';

const ID = 'LibvirtClusterPlacement';

/** A VM as the stack's cross-cluster checks see it: where it runs, once it runs somewhere. */
type PlacedVm = IPlaceable & {
  readonly host: IPlacementHost;
  readonly placed: boolean;
  readonly vmName: string;
  readonly nics: readonly ResolvedNic[];
};

/**
 * What the clusters, hosts and VMs of one stack share: the stack's `removed` blocks (merged from
 * every cluster), the order of the synth steps (place, save locks, write the report), and the
 * rules that span clusters (a host in two clusters, two clusters on one lock file, two domains of
 * one name on a host, VMs beside a cluster on its hosts). One per stack, created on first use.
 */
export class StackPlacement extends Construct {
  /** The stack's instance, created on first use. */
  public static of(scope: IConstruct): StackPlacement {
    const stack = TerraformStack.of(scope);
    return (stack.node.tryFindChild(ID) as StackPlacement | undefined) ?? new StackPlacement(stack);
  }

  private readonly files = new Map<string, () => Buffer>();
  private readonly hosts: IPlacementHost[] = [];
  private readonly clusters: IPlacementCluster[] = [];
  private readonly vms: { readonly vm: PlacedVm; readonly standalone: boolean }[] = [];

  private constructor(stack: TerraformStack) {
    super(stack, ID);
    stack.addOverride('removed', Lazy.anyValue({ produce: () => this.removedBlocks() }, { omitEmptyArray: true }));
    const steps: IAspect = { visit: (node) => (node === stack ? this.synthesize(stack) : undefined) };
    Aspects.of(stack).add(steps);
    this.node.addValidation({ validate: () => this.validate() });
  }

  public addHost(host: IPlacementHost): void {
    this.hosts.push(host);
  }

  public addCluster(cluster: IPlacementCluster): void {
    this.clusters.push(cluster);
  }

  public addVirtualMachine(vm: PlacedVm, standalone: boolean): void {
    this.vms.push({ vm, standalone });
  }

  /** A file to write into the stack's working directory at synth, e.g. a seed disk. */
  public addStackFile(relativePath: string, produce: () => Buffer): void {
    this.files.set(relativePath, produce);
  }

  /** A reachable host of the cluster `host` belongs to, for its provider alias. */
  public standInFor(host: IPlacementHost): IPlacementHost | undefined {
    return this.clusters.find((c) => c.hosts.includes(host))?.hosts.find((h) => h.reachable);
  }

  /**
   * Runs once per synth, before any resource is rendered: place, save locks, write the stack's
   * files (seed disks), the report and controller.json, into the folder where cdktf writes the
   * stack's JSON.
   */
  private synthesize(stack: TerraformStack): void {
    for (const c of this.clusters) c.ensurePlaced();
    for (const c of this.clusters) c.saveLock();
    const dir = path.join(App.of(stack).outdir, 'stacks', stack.node.id);
    writeMissingFiles(dir, this.files);
    if (this.clusters.length === 0) return;
    const reports = this.clusters.map((c) => c.renderReport());
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'placement-report.md'), reports.map((r) => r.markdown).join('\n'));
    reports.forEach((r, i) => {
      const name = reports.length === 1 ? 'placement-report.svg' : `placement-report-${this.clusters[i].node.id}.svg`;
      fs.writeFileSync(path.join(dir, name), r.svg);
    });
    fs.writeFileSync(path.join(dir, CONTROLLER_FILE), renderControllerFile(stack.node.id, this.clusters.map((c) => c.controllerView())));
  }

  private removedBlocks(): { from: string; lifecycle: { destroy: false } }[] {
    return this.clusters
      .flatMap((c) => c.forgottenAddresses())
      .sort()
      .map((from) => ({ from, lifecycle: { destroy: false } }));
  }

  /** Hosts outside any cluster whose VMs need more memory, or one VM more vCPUs, than they have. */
  private overbookedStandaloneHosts(): string[] {
    const problems: string[] = [];
    // Grouped once: filtering every VM per host is hosts × VMs.
    const onHost = new Map<IPlacementHost, StackPlacement['vms'][number]['vm'][]>();
    for (const { vm, standalone } of this.vms) {
      if (!standalone || !vm.placed) continue;
      const list = onHost.get(vm.host);
      if (list) list.push(vm);
      else onHost.set(vm.host, [vm]);
    }
    for (const host of this.hosts) {
      const spec = host.toHostSpec();
      if (typeof spec === 'string') continue;
      const vms = (onHost.get(host) ?? []).map((vm) => vm.toVmSpec());
      const memory = spec.memoryMiB - spec.reservedMemoryMiB;
      const asked = vms.reduce((sum, vm) => sum + vm.memoryMiB, 0);
      if (asked > memory) {
        problems.push(`the VMs on host ${host.hostName} (${vms.map((v) => v.name).join(', ')}) need ${asked} MiB at their ceilings, ${asked - memory} MiB more than its ${memory} MiB for guests: lower their memory or move some to another host`);
      }
      const cores = spec.cores - spec.reservedCores;
      for (const vm of vms.filter((v) => v.vcpus > cores)) {
        problems.push(`VM ${vm.name} on host ${host.hostName} has ${vm.vcpus} vCPUs at its ceiling, more than the host's ${cores} cores for guests: lower vcpus/maxVcpus`);
      }
    }
    return problems;
  }

  /**
   * A MAC used by two NICs anywhere in the stack, or an address used twice on one segment: either
   * would make two guests answer for one identity once both run.
   */
  private duplicateNicIdentities(): string[] {
    const byMac = new Map<string, { readonly who: string; readonly vm: string; readonly derived: boolean }[]>();
    const byAddress = new Map<Segment, Map<string, string[]>>();
    for (const { vm } of this.vms) {
      for (const nic of vm.nics) {
        const who = `${vm.node.path} NIC ${nic.name}`;
        byMac.set(nic.mac, [...(byMac.get(nic.mac) ?? []), { who, vm: vm.vmName, derived: nic.derivedMac }]);
        const onSegment = byAddress.get(nic.segment) ?? new Map<string, string[]>();
        byAddress.set(nic.segment, onSegment);
        for (const address of nic.addresses) onSegment.set(address.ip, [...(onSegment.get(address.ip) ?? []), who]);
      }
    }
    const problems: string[] = [];
    for (const [mac, users] of byMac) {
      if (users.length < 2) continue;
      // Derived twice from one VM name on one host: the duplicate name is reported, and is the fix.
      if (users.every((u) => u.derived && u.vm === users[0].vm)) continue;
      problems.push(`MAC ${mac} is used by ${users.length} NICs (${users.map((u) => u.who).join(', ')}): give each its own mac, or leave mac out to derive one`);
    }
    for (const [segment, addresses] of byAddress) {
      for (const [ip, users] of addresses) {
        if (users.length > 1) problems.push(`address ${ip} is used by ${users.length} NICs on segment '${segment.name}' (${users.join(', ')}): give each its own address`);
      }
    }
    return problems;
  }

  private validate(): string[] {
    const problems: string[] = [];
    const owner = new Map<IPlacementHost, IPlacementCluster>();
    for (const c of this.clusters) {
      for (const h of c.hosts) {
        const first = owner.get(h);
        if (first && first !== c) {
          problems.push(`host ${h.hostName} (${h.node.path}) is in two clusters, ${first.node.path} and ${c.node.path}: each would book its capacity; give it to one`);
        } else owner.set(h, c);
      }
    }
    const named = new Map<string, IPlacementHost>();
    for (const h of this.hosts) {
      const first = named.get(h.hostName);
      if (first) {
        problems.push(`hosts ${first.node.path} and ${h.node.path} are both named ${h.hostName}: the name is their provider alias and network, unique in a stack; set hostName`);
      } else named.set(h.hostName, h);
    }
    for (const h of this.hosts) {
      if (!h.reachable && !owner.has(h)) {
        problems.push(`host ${h.hostName} (${h.node.path}) is ${h.state} but belongs to no cluster: nothing can stand in for it; add it to a Cluster or mark it active`);
      }
    }
    const byLock = new Map<string, IPlacementCluster>();
    for (const c of this.clusters) {
      const other = byLock.get(path.resolve(c.lockFile));
      if (other) problems.push(`clusters ${other.node.path} and ${c.node.path} share the lock file ${c.lockFile}: each would overwrite the other's; give one its own lockFile`);
      else byLock.set(path.resolve(c.lockFile), c);
    }
    const onHost = new Map<string, string[]>();
    for (const { vm, standalone } of this.vms) {
      if (!vm.placed) continue;
      const host = vm.host;
      const key = `${host.hostName}\0${vm.vmName}`;
      onHost.set(key, [...(onHost.get(key) ?? []), vm.node.path]);
      if (standalone && owner.has(host)) {
        problems.push(`VM ${vm.vmName} (${vm.node.path}) runs on host ${host.hostName}, which belongs to cluster ${owner.get(host)!.node.path}, without being placed by it: the cluster would not count it; give it cluster (and host to pin it)`);
      }
    }
    problems.push(...this.overbookedStandaloneHosts());
    problems.push(...this.duplicateNicIdentities());
    for (const [key, paths] of onHost) {
      if (paths.length < 2) continue;
      const [host, name] = key.split('\0');
      problems.push(`${paths.length} VMs are named ${name} on host ${host} (${paths.join(', ')}): libvirt domain and disk names must be unique on a host; set name`);
    }
    return problems;
  }
}
