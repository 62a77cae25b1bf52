/**
 * What reconcile decides, purely: the facts of every host (as `host-observer.ts` gathers them), the
 * synthesized configuration and the Terraform state in, the actions out, in the order they run.
 * Nothing here talks to a host; `reconcile.ts` carries the actions out.
 */
import { Duration } from '../core/duration';
import { LOCAL_POOL_NAME } from '../constructs/host';
import {
  DEFAULT_SHUTDOWN_TIMEOUT, DesiredDomain, describeNic, DestinationFacts, destinationRefusals, devicesNeeded, liveMigrationBlocker, planResize, RunningDomain,
} from './live';

export interface ReconcileAction {
  readonly host: string;
  readonly action:
    | 'refresh-pool'
    | 'migrate-domain'
    | 'cold-move'
    | 'refuse-move'
    | 'stop-and-undefine-domain'
    | 'hot-add'
    | 'restart-on-apply'
    | 'record-state'
    | 'missing-segment'
    | 'undefine-domain'
    | 'start-domain'
    | 'delete-volume'
    | 'undefine-pool'
    | 'undefine-network'
    | 'host-unreachable'
    | 'grow-volume';
  readonly target: string;
  readonly reason: string;
  /** migrate-domain, cold-move, refuse-move: the host the domain goes to. */
  readonly destination?: string;
  /** hot-add: the vCPUs and memory (MiB) to reach. */
  readonly vcpus?: number;
  readonly memoryMiB?: number;
  /** migrate-domain, cold-move: the seed volume of the VM. */
  readonly seed?: DesiredDomain['seed'];
  /** record-state: the attributes to record. */
  readonly attributes?: Readonly<Record<string, unknown>>;
  /** cold-move, stop-and-undefine-domain: how long the guest has to shut down through ACPI before it is powered off. */
  readonly shutdownTimeout?: Duration;
}

/** The actions that stop reconcile before it does anything: no apply may follow. */
export const BLOCKING_ACTIONS: ReadonlySet<ReconcileAction['action']> = new Set(['missing-segment', 'refuse-move']);

/** What the synthesized configuration wants. */
export interface DesiredLayout {
  /** domain name -> host alias the configuration places it on */
  readonly domains: ReadonlyMap<string, string>;
  /** host alias -> pool and network names the configuration creates there */
  readonly pools: ReadonlyMap<string, ReadonlySet<string>>;
  readonly networks: ReadonlyMap<string, ReadonlySet<string>>;
  /** Pools volumes are created in that the configuration does not create: shared storage. */
  readonly sitePools: ReadonlySet<string>;
  /** Each deployed VM in detail, by domain name (vCPUs, memory, NICs, seed disk). */
  readonly vms?: ReadonlyMap<string, DesiredDomain>;
}

/** What the Terraform state knows (ids lower-cased). */
export interface KnownState {
  readonly domainNames: ReadonlySet<string>;
  readonly domainIds: ReadonlySet<string>;
  readonly poolIds: ReadonlySet<string>;
  readonly networkIds: ReadonlySet<string>;
  /** Paths of volumes and cloud-init disks. */
  readonly volumePaths: ReadonlySet<string>;
  /** Each resource's attributes, by address (`libvirt_domain.<name>`). */
  readonly attributes?: ReadonlyMap<string, Readonly<Record<string, unknown>>>;
}

/** What one host has, as virsh reports it. */
export interface HostInventory {
  readonly host: string;
  readonly domains: readonly { readonly name: string; readonly uuid: string; readonly running: boolean }[];
  /** Volumes of the host's local pool, when it is there and running. */
  readonly localVolumes: readonly { readonly name: string; readonly path: string }[];
  readonly pools: readonly { readonly name: string; readonly uuid: string; readonly running?: boolean }[];
  readonly networks: readonly { readonly name: string; readonly uuid: string }[];
  /** Managed domains that run here, in detail: those that move, and those that stay (for hot-add). */
  readonly running?: ReadonlyMap<string, RunningDomain>;
  /** What a move to this host needs from it. */
  readonly destination?: DestinationFacts;
  /** Whether each seed ISO of the stack folder exists, by path. */
  readonly seedIsoExists?: (isoFile: string) => boolean;
}

/** The VM a local disk belongs to, from its name (`<vm>-boot.qcow2`, `<vm>-cloudinit-<hash>.iso`). */
export function localVolumeOwner(volume: string): string | undefined {
  return /^(.*)-(boot\.qcow2|cloudinit-[0-9a-f]{16}\.iso)$/.exec(volume)?.[1];
}

/**
 * Decides what to tidy on one host: plain data in, actions out, in the order they must run
 * (domains before their disks, disks before their pool). A running domain that must go is
 * `stop-and-undefine-domain` here; `planOperations` turns those that move to another host into
 * live, cold or refused moves.
 */
export function planReconcile(inventory: HostInventory, desired: DesiredLayout, state: KnownState): ReconcileAction[] {
  const host = inventory.host;
  const managed = new Set([...desired.domains.keys(), ...state.domainNames]);
  const actions: ReconcileAction[] = [];
  // libvirt lists a pool's volumes from its own cache: files another host created on shared
  // storage (a VM that moves here, a base image) are not found by provider 0.9.x until refreshed.
  for (const pool of inventory.pools) {
    if (desired.sitePools.has(pool.name) && pool.running !== false) {
      actions.push({ host, action: 'refresh-pool', target: pool.name, reason: 'shared storage: volumes other hosts created become visible here' });
    }
  }
  for (const domain of inventory.domains) {
    if (!managed.has(domain.name)) continue;
    const placedOn = desired.domains.get(domain.name);
    // A domain where it belongs is kept, unless Terraform does not know it: then it is left
    // from an apply that died between defining and recording it, and blocks the next define.
    const orphan = placedOn === host && !state.domainIds.has(domain.uuid.toLowerCase());
    if (placedOn === host && !orphan) {
      // Provider 0.9.x starts a domain only when it creates it: one stopped outside Terraform
      // stays stopped through every apply. Where the configuration says it runs, start it.
      if (!domain.running) {
        actions.push({ host, action: 'start-domain', target: domain.name, reason: `${domain.name} is deployed here but shut off (stopped outside Terraform); the configuration runs it` });
      }
      continue;
    }
    const reason = orphan
      ? `${domain.name} is not in the Terraform state (left by an interrupted apply); the next apply defines it again with the same disks`
      : placedOn
        ? `the configuration places ${domain.name} on ${placedOn}`
        : `${domain.name} is not deployed in the configuration`;
    if (!domain.running) {
      actions.push({ host, action: 'undefine-domain', target: domain.name, reason });
      continue;
    }
    const shutdownTimeout = desired.vms?.get(domain.name)?.shutdownTimeout ?? DEFAULT_SHUTDOWN_TIMEOUT;
    actions.push({ host, action: 'stop-and-undefine-domain', target: domain.name, reason, shutdownTimeout });
  }
  // Local disks (cloud-init disks, and boot disks without shared storage) of managed VMs that no
  // longer run here, or that Terraform does not know (left by an interrupted apply, they block the
  // next create of the same name).
  for (const volume of inventory.localVolumes) {
    const owner = localVolumeOwner(volume.name);
    if (owner === undefined || !managed.has(owner)) continue;
    const here = desired.domains.get(owner) === host;
    if (here && state.volumePaths.has(volume.path)) continue;
    // The seed disk a live migration brought along: in use, Terraform knows it by another path.
    const seed = desired.vms?.get(owner)?.seed;
    const ownerHere = inventory.domains.find((d) => d.name === owner && state.domainIds.has(d.uuid.toLowerCase()));
    if (here && seed?.volume === volume.name && ownerHere !== undefined) {
      actions.push({
        host, action: 'record-state', target: seed.address, reason: `seed disk of ${owner}, which runs here: the state learns its path ${volume.path}`,
        attributes: { id: volume.path, key: volume.path, path: volume.path, 'target.path': volume.path },
      });
      continue;
    }
    const reason = here ? 'not in the Terraform state (left by an interrupted apply)' : `local disk of ${owner}, which no longer runs here`;
    actions.push({ host, action: 'delete-volume', target: `${LOCAL_POOL_NAME}/${volume.name}`, reason });
  }
  for (const pool of inventory.pools) {
    if (!desired.pools.get(host)?.has(pool.name) || state.poolIds.has(pool.uuid.toLowerCase())) continue;
    actions.push({ host, action: 'undefine-pool', target: pool.name, reason: 'left from before the host was failed or in standby; Terraform recreates it (files are kept)' });
  }
  for (const network of inventory.networks) {
    if (!desired.networks.get(host)?.has(network.name) || state.networkIds.has(network.uuid.toLowerCase())) continue;
    actions.push({ host, action: 'undefine-network', target: network.name, reason: 'left from before the host was failed or in standby; Terraform recreates it' });
  }
  return actions;
}

/** A running VM the configuration places on another host: how it moves, decided. */
export type MoveDecision =
  | { readonly kind: 'live'; readonly reason: string }
  | { readonly kind: 'cold'; readonly reason: string }
  | { readonly kind: 'refused'; readonly reason: string };

/**
 * How a VM running on `from` moves to its destination: refused (the destination cannot take it:
 * the VM stays, with what to fix), else live when it can, else cold (shut down through ACPI, then
 * created there by the apply). `neededMiB` is the memory the destination must have free for it,
 * counting the VMs moving there before it.
 */
export function decideMove(
  running: RunningDomain,
  vm: DesiredDomain,
  from: string,
  destination: DestinationFacts,
  sitePools: ReadonlySet<string>,
  seedIsoExists: boolean,
  neededMiB: number,
): MoveDecision {
  const refusals = destinationRefusals(running, vm, destination, sitePools, seedIsoExists, neededMiB);
  if (refusals.length > 0) return { kind: 'refused', reason: `refused: ${refusals.join('; ')}; ${vm.name} keeps running on ${from}` };
  const blocker = liveMigrationBlocker(running, vm, destination, sitePools);
  const timeout = vm.shutdownTimeout ?? DEFAULT_SHUTDOWN_TIMEOUT;
  if (blocker !== undefined) return { kind: 'cold', reason: `cold: ${blocker}; shut down through ACPI (up to ${timeout}), then created on ${destination.host} by the apply` };
  return {
    kind: 'live',
    reason: `live: writable disks on shared storage${vm.seed ? ', seed disk copied' : ''}, ${vm.nics.map(describeNic).join(', ') || 'no NIC'} there`,
  };
}

/**
 * Everything reconcile does, in the order it must run, decided from what every reachable host has:
 * shared pools refreshed first (a destination must see the disks), then the moves (live
 * migrations, and refusals), then each host's tidying (cold moves among it), then hot-adds, then
 * what the apply will restart, and the bridges and devices missing where VMs stay. Any
 * `refuse-move` or `missing-segment` (BLOCKING_ACTIONS) means nothing may be done.
 */
export function planOperations(inventories: readonly HostInventory[], desired: DesiredLayout, state: KnownState): ReconcileAction[] {
  const perHost = inventories.map((inventory) => planReconcile(inventory, desired, state));
  const byHost = new Map(inventories.map((inventory) => [inventory.host, inventory]));
  const moves: ReconcileAction[] = [];
  const dropped = new Set<string>(); // host:target of delete-volume actions a move takes over or keeps
  const moving = new Set<string>(); // VMs that move between reachable hosts (their segments are checked per move)
  const incomingMiB = new Map<string, number>(); // memory the moves so far take on each destination
  const resized: ReconcileAction[] = [];
  for (const [i, inventory] of inventories.entries()) {
    perHost[i] = perHost[i].map((action): ReconcileAction | undefined => {
      if (action.action !== 'stop-and-undefine-domain') return action;
      const vm = desired.vms?.get(action.target);
      const running = inventory.running?.get(action.target);
      const to = desired.domains.get(action.target);
      if (vm === undefined || running === undefined || to === undefined || to === inventory.host) return action;
      moving.add(vm.name);
      const destination = byHost.get(to)?.destination ?? unreachable(to);
      const seedIso = vm.seed === undefined || (inventory.seedIsoExists?.(vm.seed.isoFile) ?? false);
      const neededMiB = (incomingMiB.get(to) ?? 0) + vm.memoryMiB;
      const decision = decideMove(running, vm, inventory.host, destination, desired.sitePools, seedIso, neededMiB);
      const reason = `${action.reason}; ${decision.reason}`;
      if (decision.kind === 'refused') {
        // The VM stays: so do its disks here.
        for (const volume of inventory.localVolumes) {
          if (localVolumeOwner(volume.name) === vm.name) dropped.add(`${inventory.host}:${LOCAL_POOL_NAME}/${volume.name}`);
        }
        moves.push({ host: inventory.host, action: 'refuse-move', target: vm.name, destination: to, reason });
        return undefined;
      }
      incomingMiB.set(to, neededMiB);
      if (decision.kind === 'cold') return { ...action, action: 'cold-move', destination: to, seed: vm.seed, reason };
      if (vm.seed) {
        dropped.add(`${inventory.host}:${LOCAL_POOL_NAME}/${vm.seed.volume}`);
        dropped.add(`${to}:${LOCAL_POOL_NAME}/${vm.seed.volume}`);
      }
      moves.push({ host: inventory.host, action: 'migrate-domain', target: vm.name, destination: to, seed: vm.seed, shutdownTimeout: action.shutdownTimeout, reason });
      return undefined;
    }).filter((a): a is ReconcileAction => a !== undefined);
    // Hot-add on the host the configuration places a VM on, for a VM Terraform knows there.
    for (const [name, running] of inventory.running ?? []) {
      const vm = desired.vms?.get(name);
      const domain = inventory.domains.find((d) => d.name === name);
      if (vm === undefined || vm.host !== inventory.host || domain === undefined || !state.domainIds.has(domain.uuid.toLowerCase())) continue;
      const decision = planResize(running, vm);
      const target = name;
      if (decision.kind === 'restart-on-apply') {
        resized.push({ host: inventory.host, action: 'restart-on-apply', target, reason: decision.reason });
        continue;
      }
      if (decision.kind === 'hot-add') {
        resized.push({ host: inventory.host, action: 'hot-add', target, reason: decision.reason, vcpus: decision.vcpus, memoryMiB: decision.memoryMiB });
      }
      // Provider 0.9.7 never reads vCPUs or memory back: the state must hold what now runs.
      const recorded = state.attributes?.get(vm.address) ?? {};
      const stale = Object.entries(vm.stateValues).some(([key, value]) => recorded[key] !== value);
      if (decision.kind === 'hot-add' || stale) {
        resized.push({
          host: inventory.host,
          action: 'record-state',
          target: vm.address,
          reason: `${name} runs with ${Object.entries(vm.stateValues).map(([k, v]) => `${k} = ${v}`).join(', ')}`,
          attributes: vm.stateValues,
        });
      }
    }
  }
  const tidy = perHost.flat().filter((a) => !(a.action === 'delete-volume' && dropped.has(`${a.host}:${a.target}`)));
  const refresh = tidy.filter((a) => a.action === 'refresh-pool');
  const present = new Map(inventories.map((inventory) => [inventory.host, inventory.destination?.devices]));
  const missing = missingSegments(desired, (host) => present.get(host), moving);
  return [...refresh, ...moves, ...tidy.filter((a) => a.action !== 'refresh-pool'), ...resized, ...missing];
}

function unreachable(host: string): DestinationFacts {
  return { host, reachable: false, activeNetworks: new Set(), devices: new Set(), localPoolRunning: false, runningPools: new Set() };
}

/**
 * The bridges and macvtap devices the configuration needs on reachable hosts that are missing, as
 * actions; VMs in `moving` are left out (their move is refused with the device it lacks).
 */
export function missingSegments(
  desired: DesiredLayout,
  present: (host: string) => ReadonlySet<string> | undefined,
  moving: ReadonlySet<string> = new Set(),
): ReconcileAction[] {
  const missing: ReconcileAction[] = [];
  const staying = [...(desired.vms?.values() ?? [])].filter((vm) => !moving.has(vm.name));
  for (const [host, needs] of [...devicesNeeded(staying)].sort(([a], [b]) => a.localeCompare(b))) {
    const found = present(host);
    if (found === undefined) continue; // unreachable: nothing is done there
    for (const [device, { nic, vms }] of needs) {
      if (found.has(device)) continue;
      const what = nic.kind === 'direct' ? `device ${device} (macvtap)` : `bridge ${device}`;
      missing.push({ host, action: 'missing-segment', target: what, reason: `${what} is not on this host; ${vms.sort().join(', ')} ${vms.length === 1 ? 'needs' : 'need'} it` });
    }
  }
  return missing;
}

/** One line per action, as the command prints it. */
export function formatAction(action: ReconcileAction, dryRun: boolean): string {
  const target = action.destination !== undefined ? `${action.host}:${action.target} → ${action.destination}` : `${action.host}:${action.target}`;
  const would = dryRun && !BLOCKING_ACTIONS.has(action.action) && action.action !== 'host-unreachable';
  return `${would ? 'would ' : ''}${action.action} ${target} (${action.reason})`;
}
