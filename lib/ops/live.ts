/**
 * The live half of reconcile, as pure decisions: whether a move's destination can take a VM at all
 * (and what to fix when it cannot), which VMs move by live migration and which cold (and why),
 * which vCPU/memory raises are hot-added and which are left to a restarting apply, which bridge or
 * macvtap devices a host lacks, and what the Terraform state must be told afterwards. Plain data
 * in, plain data out; `host-observer.ts` gathers the facts with virsh, `vm-mover.ts` and
 * `reconcile.ts` carry the decisions out.
 */
import { Duration } from '../core/duration';

export { DEFAULT_SHUTDOWN_TIMEOUT } from '../core/duration';

/** A NIC as the configuration renders it, or as a running domain has it. */
export interface NicSource {
  /** `network`: a libvirt network; `bridge`: a Linux or Open vSwitch bridge; `direct`: macvtap on a device. */
  readonly kind: 'network' | 'bridge' | 'direct';
  /** The network's name, the bridge's, or the device's. */
  readonly source: string;
}

/** One VM as the synthesized configuration wants it. */
export interface DesiredDomain {
  readonly name: string;
  /** The host alias the configuration places it on. */
  readonly host: string;
  /** Its Terraform address, `libvirt_domain.<name>`. */
  readonly address: string;
  /** Ceiling (`vcpu`) and start value (`vcpu_current`, else the ceiling). */
  readonly vcpus: number;
  readonly currentVcpus: number;
  /** Ceiling (`memory`) and start value (`current_memory`, else the ceiling), in MiB. */
  readonly memoryMiB: number;
  readonly currentMemoryMiB: number;
  /** `vcpu_current`, `current_memory` and `current_memory_unit` as written in the configuration, for the state. */
  readonly stateValues: Readonly<Record<string, number | string>>;
  readonly nics: readonly NicSource[];
  /** The NoCloud seed volume in the host's local pool, and the ISO in the stack folder it is uploaded from. */
  readonly seed?: { readonly volume: string; readonly address: string; readonly isoFile: string };
  /**
   * How long a cold move waits for the guest to shut down through ACPI before it powers it off
   * (the VM's `shutdownTimeout`, the domain's `update.shutdown.timeout`).
   * @default DEFAULT_SHUTDOWN_TIMEOUT (30 s, the provider's default)
   */
  readonly shutdownTimeout?: Duration;
}

/** A running domain as libvirt reports it. */
export interface RunningDomain {
  readonly name: string;
  /** `<vcpu>` (ceiling) and the vCPUs online now. */
  readonly vcpus: number;
  readonly currentVcpus: number;
  /** `<memory>` (ceiling) and the persistent `<currentMemory>` (the balloon target), in MiB. */
  readonly memoryMiB: number;
  readonly currentMemoryMiB: number;
  /** Its disks: volume disks name their pool; read-only ones (a seed cdrom) are never written. */
  readonly disks: readonly { readonly pool?: string; readonly volume?: string; readonly readOnly: boolean; readonly target: string }[];
  readonly nics: readonly NicSource[];
}

/** What a migration needs from its destination, as found there. */
export interface DestinationFacts {
  readonly host: string;
  readonly reachable: boolean;
  /** Why it cannot be reached (virsh's message), when it cannot. */
  readonly unreachableReason?: string;
  /**
   * Memory the host can give a VM, in MiB, as libvirt reports it (`virsh nodememstats`: free +
   * buffers + cached).
   * @default - unknown: not checked
   */
  readonly freeMemoryMiB?: number;
  /** Active libvirt networks. */
  readonly activeNetworks: ReadonlySet<string>;
  /** Bridges and devices found on the host (those the configuration needs). */
  readonly devices: ReadonlySet<string>;
  /** Whether its local pool (where seed disks go) is running. */
  readonly localPoolRunning: boolean;
  /** Site pools running there. */
  readonly runningPools: ReadonlySet<string>;
}

/** A live migration decided on. */
export interface MigrationPlan {
  readonly domain: string;
  readonly from: string;
  readonly to: string;
  /** The seed volume to copy before and delete from the source after, when the VM has one. */
  readonly seed?: DesiredDomain['seed'];
  readonly reason: string;
}

/**
 * Why a move's destination cannot take a VM at all, live or cold, each with what to fix; [] when it
 * can. The VM then stays where it runs. A destination takes a VM when it answers, runs every site
 * (shared) pool the VM's disks are on, has each bridge and macvtap device the configuration's NICs
 * need, has memory for the VM's ceiling (`neededMiB`: this VM's and those of the VMs moving there
 * before it, as placement reserves ceilings), and the seed disk's ISO is in the stack folder.
 */
export function destinationRefusals(
  running: RunningDomain,
  desired: DesiredDomain,
  destination: DestinationFacts,
  sitePools: ReadonlySet<string>,
  seedIsoExists: boolean,
  neededMiB: number,
): string[] {
  const to = destination.host;
  if (!destination.reachable) {
    return [`${to} cannot be reached${destination.unreachableReason ? ` (${destination.unreachableReason})` : ''}: bring its libvirtd back, or place ${desired.name} elsewhere`];
  }
  const refusals: string[] = [];
  const pools = new Set(running.disks.filter((d) => !d.readOnly && d.pool !== undefined && sitePools.has(d.pool)).map((d) => d.pool!));
  for (const pool of [...pools].sort()) {
    if (!destination.runningPools.has(pool)) refusals.push(`pool ${pool} is not running on ${to}: start it there (virsh pool-start ${pool})`);
  }
  if (desired.seed && !seedIsoExists) refusals.push(`the seed disk ${desired.seed.isoFile} is not in the stack folder: synthesize the stack again (cdktf synth)`);
  for (const nic of desired.nics) {
    if (nic.kind !== 'network' && !destination.devices.has(nic.source)) {
      refusals.push(`${describeNic(nic)} is not on ${to}: create it there (docs/networking.md), or place ${desired.name} elsewhere`);
    }
  }
  if (destination.freeMemoryMiB !== undefined && neededMiB > destination.freeMemoryMiB) {
    const before = neededMiB - desired.memoryMiB;
    refusals.push(
      `${to} has ${Math.floor(destination.freeMemoryMiB)} MiB of memory free (virsh nodememstats: free + buffers + cached) and ${desired.name} needs its ceiling of ${desired.memoryMiB} MiB` +
        `${before > 0 ? ` after ${before} MiB for the VMs moving there before it` : ''}: free memory on ${to}, or place ${desired.name} elsewhere`,
    );
  }
  return refusals;
}

/**
 * Why a VM whose destination can take it cannot move there live (the reason of a cold move), or
 * undefined when it can. Live needs: every writable disk a volume of a site (shared) pool, a running
 * local pool on the destination to copy the seed disk into, each NIC's libvirt network active on
 * the destination, and the NICs the same as the configuration's, since a migration keeps them as
 * they are. (Reachability, running site pools, devices and memory are `destinationRefusals`.)
 */
export function liveMigrationBlocker(running: RunningDomain, desired: DesiredDomain, destination: DestinationFacts, sitePools: ReadonlySet<string>): string | undefined {
  for (const disk of running.disks) {
    if (disk.readOnly) continue;
    if (disk.pool === undefined || !sitePools.has(disk.pool)) {
      return `disk ${disk.target} is not on shared storage (${disk.pool ? `pool ${disk.pool}` : 'not a pool volume'})`;
    }
  }
  if (desired.seed && !destination.localPoolRunning) return `${destination.host} has no running local pool for the seed disk`;
  if (running.nics.length !== desired.nics.length) {
    return `it has ${running.nics.length} NICs and the configuration ${desired.nics.length}: a migration keeps them as they are`;
  }
  for (const [i, nic] of running.nics.entries()) {
    const wanted = desired.nics[i];
    if (nic.kind !== wanted.kind || nic.source !== wanted.source) {
      return `NIC ${i + 1} is on ${describeNic(nic)} and the configuration puts it on ${describeNic(wanted)}: a migration keeps it as it is`;
    }
    if (nic.kind === 'network' && !destination.activeNetworks.has(nic.source)) return `network ${nic.source} is not active on ${destination.host}`;
  }
  return undefined;
}

export function describeNic(nic: NicSource): string {
  return nic.kind === 'direct' ? `device ${nic.source} (macvtap)` : `${nic.kind} ${nic.source}`;
}

/** A domain's vCPUs and memory: ceilings and current values, memory in MiB. */
export interface DomainSize {
  readonly vcpus: number;
  readonly currentVcpus: number;
  readonly memoryMiB: number;
  readonly currentMemoryMiB: number;
}

/**
 * The size a `libvirt_domain`'s attributes declare (`vcpu`, `vcpu_current`, `memory`,
 * `current_memory` and their units; a current value left out is the ceiling), as in the
 * synthesized JSON, the state and a plan.
 */
export function domainSize(d: Readonly<Record<string, any>>): DomainSize {
  const vcpus = Number(d.vcpu ?? 1);
  const memoryMiB = toMebibytes(Number(d.memory ?? 0), d.memory_unit ?? 'KiB');
  return {
    vcpus,
    currentVcpus: Number(d.vcpu_current ?? vcpus),
    memoryMiB,
    currentMemoryMiB: d.current_memory !== undefined && d.current_memory !== null ? toMebibytes(Number(d.current_memory), d.current_memory_unit ?? 'KiB') : memoryMiB,
  };
}

/** What a running VM on its own host needs for the configuration's vCPUs and memory. */
export type ResizeDecision =
  | { readonly kind: 'none' }
  | { readonly kind: 'hot-add'; readonly vcpus?: number; readonly memoryMiB?: number; readonly reason: string }
  | { readonly kind: 'restart-on-apply'; readonly reason: string };

/**
 * A raise of the current vCPUs or memory within unchanged ceilings is applied live (placement
 * already reserves the ceilings, so it never overbooks the host). A changed ceiling or a lowered
 * value is left to the apply, which restarts the domain: reported so the operator sees it first.
 */
export function planResize(running: DomainSize, desired: DomainSize): ResizeDecision {
  const restart: string[] = [];
  if (desired.vcpus !== running.vcpus) restart.push(`vCPU ceiling ${running.vcpus} → ${desired.vcpus}`);
  if (desired.memoryMiB !== running.memoryMiB) restart.push(`memory ceiling ${running.memoryMiB} → ${desired.memoryMiB} MiB`);
  if (desired.currentVcpus < running.currentVcpus) restart.push(`vCPUs lowered ${running.currentVcpus} → ${desired.currentVcpus}`);
  if (desired.currentMemoryMiB < running.currentMemoryMiB) restart.push(`memory lowered ${running.currentMemoryMiB} → ${desired.currentMemoryMiB} MiB`);
  if (restart.length > 0) return { kind: 'restart-on-apply', reason: restart.join(', ') };
  const vcpus = desired.currentVcpus > running.currentVcpus ? desired.currentVcpus : undefined;
  const memoryMiB = desired.currentMemoryMiB > running.currentMemoryMiB ? desired.currentMemoryMiB : undefined;
  if (vcpus === undefined && memoryMiB === undefined) return { kind: 'none' };
  const reason = [
    vcpus !== undefined ? `vCPUs ${running.currentVcpus} → ${vcpus} of ${running.vcpus}` : '',
    memoryMiB !== undefined ? `memory ${running.currentMemoryMiB} → ${memoryMiB} of ${running.memoryMiB} MiB` : '',
  ]
    .filter((s) => s !== '')
    .join(', ');
  return { kind: 'hot-add', vcpus, memoryMiB, reason };
}

/** The bridges and macvtap devices the configuration's NICs need on each host, with the VMs that need them. */
export function devicesNeeded(domains: Iterable<DesiredDomain>): Map<string, Map<string, { nic: NicSource; vms: string[] }>> {
  const byHost = new Map<string, Map<string, { nic: NicSource; vms: string[] }>>();
  for (const d of domains) {
    for (const nic of d.nics) {
      if (nic.kind === 'network') continue; // a libvirt network of the stack: the apply creates it
      if (!byHost.has(d.host)) byHost.set(d.host, new Map());
      const needs = byHost.get(d.host)!;
      const entry = needs.get(nic.source) ?? { nic, vms: [] };
      if (!entry.vms.includes(d.name)) entry.vms.push(d.name);
      needs.set(nic.source, entry);
    }
  }
  return byHost;
}

/** A change to one resource's attributes in the Terraform state. */
export interface StateUpdate {
  /** `libvirt_volume.<name>` or `libvirt_domain.<name>` (root module). */
  readonly address: string;
  readonly attributes: Readonly<Record<string, unknown>>;
  /** Why, in words for the output. */
  readonly reason: string;
}

/**
 * Applies updates to a pulled state (`terraform state pull`), returning the new state with its
 * serial raised, or undefined when the state already holds every value. Provider 0.9.7 keeps a
 * domain's vCPUs and memory as its state says (it never reads them back), and finds a volume by
 * the path recorded there: after a hot-add or a migration only the state can tell it.
 */
export function applyStateUpdates(state: any, updates: readonly StateUpdate[]): any | undefined {
  const next = JSON.parse(JSON.stringify(state));
  let changed = false;
  for (const update of updates) {
    const [type, name] = update.address.split('.');
    const resource = (next.resources ?? []).find((r: any) => r.mode === 'managed' && r.type === type && r.name === name && r.module === undefined);
    const attributes = resource?.instances?.[0]?.attributes;
    if (attributes === undefined) throw new Error(`the Terraform state has no ${update.address}`);
    for (const [key, value] of Object.entries(update.attributes)) {
      if (key === 'target.path') {
        if (attributes.target && attributes.target.path !== value) {
          attributes.target.path = value;
          changed = true;
        }
      } else if (attributes[key] !== value) {
        attributes[key] = value;
        changed = true;
      }
    }
  }
  if (!changed) return undefined;
  next.serial = (next.serial ?? 0) + 1;
  return next;
}

/** `virsh domjobinfo --completed` as key → value. */
export function parseJobInfo(text: string): Record<string, string> {
  const info: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const at = line.indexOf(':');
    if (at > 0) info[line.slice(0, at).trim()] = line.slice(at + 1).trim().replace(/\s+/g, ' ');
  }
  return info;
}

/**
 * A running migration's progress from `virsh domjobinfo` on its source, e.g. `62% (160 of 256 MiB
 * copied, 96 MiB left)`, or undefined when the job reports no data yet.
 */
export function migrationProgress(info: Readonly<Record<string, string>>): string | undefined {
  const mib = (key: string): number | undefined => {
    const match = /^([\d.]+)\s*(\w+)$/.exec(info[key] ?? '');
    return match ? toMebibytes(Number(match[1]), match[2]) : undefined;
  };
  const total = mib('Data total');
  const remaining = mib('Data remaining');
  if (total === undefined || remaining === undefined || total <= 0) return undefined;
  const copied = mib('Data processed') ?? total - remaining;
  const percent = Math.min(100, Math.max(0, Math.round(((total - remaining) / total) * 100)));
  return `${percent}% (${Math.round(copied)} of ${Math.round(total)} MiB copied, ${Math.round(remaining)} MiB left)`;
}

/** A size as libvirt XML or Terraform writes it, in MiB. */
export function toMebibytes(value: number, unit = 'KiB'): number {
  const scale: Record<string, number> = { b: 1 / 1048576, bytes: 1 / 1048576, k: 1 / 1024, kib: 1 / 1024, m: 1, mib: 1, g: 1024, gib: 1024, t: 1048576, tib: 1048576 };
  const factor = scale[unit.toLowerCase()];
  if (factor === undefined) throw new Error(`unknown memory unit '${unit}'`);
  return value * factor;
}
