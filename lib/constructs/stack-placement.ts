import * as fs from 'fs';
import * as path from 'path';
import { Annotations, App, Aspects, IAspect, IStackSynthesizer, Lazy, TerraformResource, TerraformStack } from 'cdktf';
import { Construct, IConstruct } from 'constructs';
import { CONTROLLER_FILE, renderControllerFile } from '../core/controller-file';
import { FROZEN_LOCK_CONTEXT, HOST_STATE_CONTEXT } from '../core/model';
import { decideRecord, EMPTY_RECORD, RecordDecision, RecordedVm, ResourceRecord, recordProblem } from '../core/resource-record';
import { IPlaceable, IPlacementCluster, IPlacementHost, LOCAL_POOL_NAME } from './contract';
import { readLock, writeLock } from './lock-store';
import { ResolvedNic } from './nic';
import { writeMissingFiles } from './stack-files';
import { Segment } from './segment';
import { briefSynthFailures } from './synth-failure';

const ID = 'LibvirtClusterPlacement';

/** Context keys of the stack's resource lock (see {@link StackPlacement}). */
export const RESOURCE_LOCK_CONTEXT = {
  /** Folder of `<stack>.resources-lock.json`, relative to the working directory. */
  dir: 'libvirt-cluster:resource-lock-dir',
  /** `true`: fail the synth when a lock would change; `false`: write it even when CI=true. */
  frozen: FROZEN_LOCK_CONTEXT,
} as const;

/** Whether locks are frozen: the context value when it is a boolean (or its string), else CI=true. */
export function locksFrozen(scope: IConstruct): boolean {
  const value = scope.node.tryGetContext(RESOURCE_LOCK_CONTEXT.frozen);
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  return process.env.CI === 'true';
}

/** The Terraform address of a resource, as `moved` and `removed` blocks name it. */
export function addressOf(resource: TerraformResource): string {
  return `${resource.terraformResourceType}.${resource.friendlyUniqueId}`;
}

/**
 * The address a resource of `type` with construct id `id` under `scope` has, or would have: a plain
 * construct at that path has the logical id the resource gets.
 */
export function addressAt(scope: Construct, id: string, type: string): string {
  const node = scope.node.tryFindChild(id) ?? new Construct(scope, id);
  return `${type}.${TerraformStack.of(scope).getLogicalId(node.node)}`;
}

/** A VM as the stack's cross-cluster checks see it: where it runs, once it runs somewhere. */
type PlacedVm = IPlaceable & {
  readonly host: IPlacementHost;
  readonly placed: boolean;
  readonly vmName: string;
  readonly nics: readonly ResolvedNic[];
  /** The VM's key in the resource lock: its libvirt name where that is unique. */
  readonly recordKey: string;
  /** What the VM owns in Terraform now, for the resource lock. */
  recordEntry(): RecordedVm;
  /** The VM's Terraform resources. */
  resources(): TerraformResource[];
  /** Moves the code asks for (`renamedFrom`). */
  explicitMoves(): readonly { readonly from: string; readonly to: string }[];
};

/**
 * What the clusters, hosts and VMs of one stack share: the stack's `removed` and `moved` blocks
 * (from every cluster and from the resource lock), the order of the synth steps (place, check, then
 * write locks, seed disks, reports), and the rules that span clusters (a host in two clusters, two
 * clusters on one lock file, two domains of one name on a host, VMs beside a cluster on its hosts).
 * One per stack, created on first use.
 *
 * The resource lock, `<stack>.resources-lock.json` (committed beside the code, like a placement
 * lock), records each VM's Terraform addresses and disks. From it a renamed construct gets `moved`
 * blocks instead of a destroy, a data disk whose VM left the code is forgotten (`removed`, the
 * file stays) instead of destroyed, and a disk change the provider cannot apply is refused at synth.
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
  /** The resource lock's file. */
  public readonly resourceLockFile: string;
  private record?: { readonly previous: ResourceRecord; readonly problem?: string };
  private decision?: RecordDecision;

  private constructor(stack: TerraformStack) {
    super(stack, ID);
    const dir = this.node.tryGetContext(RESOURCE_LOCK_CONTEXT.dir);
    this.resourceLockFile = path.resolve(typeof dir === 'string' && dir !== '' ? dir : process.cwd(), `${stack.node.id}.resources-lock.json`);
    stack.addOverride('removed', Lazy.anyValue({ produce: () => this.removedBlocks() }, { omitEmptyArray: true }));
    stack.addOverride('moved', Lazy.anyValue({ produce: () => [...this.decide().moved] }, { omitEmptyArray: true }));
    const steps: IAspect = { visit: (node) => (node === stack ? this.prepare(stack) : undefined) };
    Aspects.of(stack).add(steps);
    // Files are written once the stack's validations passed: a failed synth leaves no seed disk,
    // lock or report of its own (cdktf still writes the stack's JSON).
    const synthesizer: IStackSynthesizer = stack.synthesizer;
    stack.synthesizer = {
      synthesize: (session) => {
        try {
          synthesizer.synthesize(session);
        } catch (err) {
          this.writeReports(stack, failureLines(err));
          throw err;
        }
        this.write(stack);
      },
    };
    this.node.addValidation({ validate: () => this.validate() });
    briefSynthFailures();
  }

  /** The resource lock's entry of a VM at the last synth, if any. */
  public recorded(key: string): RecordedVm | undefined {
    const vms = this.previousRecord().previous.vms;
    return Object.prototype.hasOwnProperty.call(vms, key) ? vms[key] : undefined;
  }

  /** What the resource lock refuses about the VM with `key`: each VM reports its own. */
  public recordProblems(key: string): string[] {
    return this.decide()
      .problems.filter((p) => p.vm === key)
      .map((p) => p.message);
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

  /** Runs once per synth, before validation: place, and drop last synth's reports (a failed synth must not leave an "OK"). */
  private prepare(stack: TerraformStack): void {
    for (const c of this.clusters) c.ensurePlaced();
    const dir = this.outputDir(stack);
    for (const name of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
      if (/^placement-report.*\.(md|svg)$/.test(name) || name === CONTROLLER_FILE) fs.rmSync(path.join(dir, name), { force: true });
    }
  }

  /**
   * Runs once the stack's validations passed: save the locks, write the stack's files (seed
   * disks), the report and controller.json, into the folder where cdktf writes the stack's JSON.
   */
  private write(stack: TerraformStack): void {
    for (const c of this.clusters) c.saveLock();
    const decision = this.decide();
    if (decision.changed && !locksFrozen(this)) writeLock(this.resourceLockFile, decision.next);
    const dir = this.outputDir(stack);
    writeMissingFiles(dir, this.files);
    this.writeReports(stack);
  }

  /** The placement reports and controller.json; after a failed synth, reports that say so and no controller.json. */
  private writeReports(stack: TerraformStack, failed?: readonly string[]): void {
    if (this.clusters.length === 0) return;
    const dir = this.outputDir(stack);
    const reports = this.clusters.map((c) => c.renderReport(failed));
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'placement-report.md'), reports.map((r) => r.markdown).join('\n'));
    reports.forEach((r, i) => {
      const name = reports.length === 1 ? 'placement-report.svg' : `placement-report-${this.clusters[i].node.id}.svg`;
      fs.writeFileSync(path.join(dir, name), r.svg);
    });
    if (failed) return;
    fs.writeFileSync(path.join(dir, CONTROLLER_FILE), renderControllerFile(stack.node.id, this.clusters.map((c) => c.controllerView())));
  }

  private outputDir(stack: TerraformStack): string {
    return path.join(App.of(stack).outdir, 'stacks', stack.node.id);
  }

  private previousRecord(): NonNullable<StackPlacement['record']> {
    if (this.record) return this.record;
    const read = readLock<ResourceRecord>(this.resourceLockFile, 'resource lock');
    const problem = read.problem ?? (read.lock !== undefined ? recordProblem(read.lock) : undefined);
    this.record = problem
      ? { previous: EMPTY_RECORD, problem: read.problem ?? `resource lock ${this.resourceLockFile} cannot be used: ${problem}; restore it from version control` }
      : { previous: read.lock ?? EMPTY_RECORD };
    return this.record;
  }

  /**
   * The resource lock's decisions for this synth, once every VM is placed: moves, disks to forget,
   * refusals. Computed once, and shown once in the synth output.
   */
  private decide(): RecordDecision {
    if (this.decision) return this.decision;
    for (const c of this.clusters) c.ensurePlaced();
    const stack = TerraformStack.of(this);
    const configured = new Set(stack.node.findAll().filter(TerraformResource.isTerraformResource).map((r) => addressOf(r as TerraformResource)));
    const current = Object.fromEntries(this.vms.map(({ vm }) => [vm.recordKey, vm.recordEntry()] as const));
    const explicit = this.vms.flatMap(({ vm }) => vm.explicitMoves());
    const decision = decideRecord(this.previousRecord().previous, current, configured, explicit);
    this.decision = decision;
    const byKey = new Map(this.vms.map(({ vm }) => [vm.recordKey, vm]));
    for (const m of decision.newMoves) {
      const vm = [...byKey.values()].find((v) => v.resources().some((r) => addressOf(r) === m.to));
      Annotations.of(vm ?? this).addWarning(`${m.from} moves to ${m.to} (a renamed construct: a moved block, nothing is destroyed)`);
    }
    for (const f of decision.newlyForgotten) {
      Annotations.of(byKey.get(f.vm) ?? this).addWarning(
        `the data disk of VM ${f.vm} (${f.volume} in pool ${f.pool}, ${f.where}) is kept: Terraform forgets ${f.address} (a removed block), the file stays; RemovalPolicy.DESTROY lets a data disk go with its VM`,
      );
    }
    return decision;
  }

  private removedBlocks(): { from: string; lifecycle: { destroy: false } }[] {
    const forgotten = new Set([...this.clusters.flatMap((c) => c.forgottenAddresses()), ...this.decide().forgotten.map((f) => f.address)]);
    return [...forgotten].sort().map((from) => ({ from, lifecycle: { destroy: false } }));
  }

  /** The data disks the resource lock keeps forgotten, for the cluster reports. */
  public forgottenDisks(): RecordDecision['forgotten'] {
    return this.decide().forgotten;
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

  /** The placements of the app's stacks, in the app's order (this one among them). */
  private appPlacements(): StackPlacement[] {
    return App.of(this)
      .node.children.filter(TerraformStack.isStack)
      .map((stack) => stack.node.tryFindChild(ID) as StackPlacement | undefined)
      .filter((p): p is StackPlacement => p !== undefined);
  }

  /** Memory the VMs placed on `host` reserve at their ceilings, and their names. */
  private booked(host: IPlacementHost): { readonly mib: number; readonly vms: string[] } {
    for (const c of this.clusters) c.ensurePlaced();
    const on = this.vms.filter(({ vm }) => vm.placed && vm.host === host).map(({ vm }) => vm.toVmSpec());
    return { mib: on.reduce((sum, vm) => sum + vm.memoryMiB, 0), vms: on.map((vm) => vm.name) };
  }

  /**
   * One app, one picture of each machine: a host URI declared in two stacks is one machine that
   * both would manage (its pool, its networks) and book; reported by the earlier stack, once.
   */
  private sharedMachineProblems(): string[] {
    const all = this.appPlacements();
    const later = all.slice(all.indexOf(this) + 1);
    const problems: string[] = [];
    const stackName = (p: StackPlacement) => TerraformStack.of(p).node.id;
    for (const host of this.hosts) {
      for (const peer of later) {
        for (const other of peer.hosts.filter((h) => h.uri === host.uri)) {
          problems.push(
            `host ${host.hostName} (${host.node.path}) and host ${other.hostName} of stack ${stackName(peer)} (${other.node.path}) are one machine, ${host.uri}: both stacks would manage its pool ${LOCAL_POOL_NAME} and networks and define domains there; declare the machine in one stack, with all the VMs it runs`,
          );
          const spec = host.toHostSpec();
          if (typeof spec === 'string') continue;
          const mine = this.booked(host);
          const theirs = peer.booked(other);
          const free = spec.memoryMiB - spec.reservedMemoryMiB;
          if (mine.mib + theirs.mib > free) {
            problems.push(
              `machine ${host.uri} is over-booked: stack ${stackName(this)} places ${mine.mib} MiB on it (${mine.vms.join(', ') || 'no VM'}) and stack ${stackName(peer)} ${theirs.mib} MiB (${theirs.vms.join(', ') || 'no VM'}), ${mine.mib + theirs.mib} MiB at the VMs' ceilings for its ${free} MiB for guests: move VMs to another host, or lower their memory`,
            );
          }
        }
      }
    }
    return problems;
  }

  /** A context override of a host's state that names no host of the app: a typo, or a host since removed. */
  private unknownHostOverrides(): string[] {
    const all = this.appPlacements();
    if (all[0] !== this) return []; // the app's context: reported once
    const names = new Set(all.flatMap((p) => p.hosts.map((h) => h.hostName)));
    return Object.keys(this.node.getAllContext())
      .filter((key) => key.startsWith(HOST_STATE_CONTEXT) && !names.has(key.slice(HOST_STATE_CONTEXT.length)))
      .map((key) => `context ${key} names no host of this app (hosts: ${[...names].sort().join(', ') || 'none'}): the override would be ignored; correct the host name or remove it`);
  }

  private validate(): string[] {
    const problems: string[] = [...this.sharedMachineProblems(), ...this.unknownHostOverrides()];
    const record = this.previousRecord();
    if (record.problem) problems.push(record.problem);
    const decision = this.decide();
    if (decision.changed && locksFrozen(this) && decision.problems.length === 0) {
      problems.push(
        `resource lock ${this.resourceLockFile} would change, and locks are frozen (CI=true or ${RESOURCE_LOCK_CONTEXT.frozen}): synthesize locally, review the moves and kept disks it reports, and commit the lock file`,
      );
    }
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
      // Case-blind: guest hostnames are, and so are disk file names on a case-insensitive mount.
      const key = `${host.hostName}\0${vm.vmName.toLowerCase()}`;
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
      problems.push(`${paths.length} VMs are named ${name} on host ${host}, ignoring case (${paths.join(', ')}): libvirt domain and disk names, and guest hostnames, must be unique on a host; set name`);
    }
    return problems;
  }
}

/** The `[path] message` lines of a failed synth's error, or its first line. */
function failureLines(err: unknown): string[] {
  const message = err instanceof Error ? err.message : String(err);
  const lines = message.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('['));
  return lines.length > 0 ? lines : [message.split('\n')[0]];
}
