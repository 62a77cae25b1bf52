import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { LOCAL_POOL_NAME } from '../constructs/host';
import { growVolume, planDiskGrowth } from './disk-growth';
import { terraformEngine } from './engine';
import {
  applyStateUpdates, DesiredDomain, describeNic, DestinationFacts, devicesNeeded, domainSize, liveMigrationBlocker, NicSource, parseJobInfo, planResize,
  RunningDomain, StateUpdate, toMebibytes,
} from './live';

export * from './live';

/**
 * Tidies reachable hosts before an apply, for the two cases Terraform cannot see:
 *
 * - a VM moves off a host that is still reachable (maintenance, rebalance): its address stays the
 *   same and its provider changes, so Terraform reads it on the new host by its UUID. Reconcile
 *   live-migrates it there first (same UUID: the plan shows no change to it) when its writable
 *   disks are on shared storage and the destination is ready (seed disk copied, networks and
 *   devices there); otherwise it stops and undefines the old copy, and the apply creates the VM on
 *   the new host: a cold move (disk leases stop a new copy while an old one runs).
 * - a VM runs where it belongs with fewer vCPUs or less memory than the configuration, within
 *   unchanged ceilings: reconcile hot-adds them (`setvcpus`/`setmem --live --config`) and records
 *   them in the state, so the apply does not restart it. A changed ceiling or a lowered value is
 *   left to the apply, which restarts the VM; reconcile says so first (`restart-on-apply`).
 * - a host lacks a bridge or macvtap device the configuration's NICs need there: reconcile does
 *   nothing at all and fails, listing every one (`missing-segment`).
 * - a host comes back after `failed` or `standby`: Terraform forgot what it had created there
 *   (`removed` blocks), and the host still has it. Reconcile undefines the stale domain copies,
 *   deletes their boot and cloud-init volumes, and undefines the forgotten pool and network, so the
 *   next apply recreates them (base image files are kept and adopted).
 *
 * - an apply died between defining a domain and recording it: the domain is where it belongs but
 *   not in the state, and blocks the next define of the same name. Reconcile undefines it.
 *
 * It never touches a domain, pool or network this stack does not manage, nor a domain the
 * configuration places on the host it is on and Terraform knows.
 */
export interface ReconcileOptions {
  /** The synthesized stack folder (cdktf.out/stacks/<stack>), already `init`ed. */
  readonly stackDir: string;
  /** The real connection URI of each host, by host name (the synthesized JSON points failed hosts elsewhere). */
  readonly hosts: Readonly<Record<string, string>>;
  /**
   * The Terraform engine.
   * @default - $TERRAFORM_BINARY_NAME, else the engine that initialized `stackDir`, else the one installed (see `terraformEngine`)
   */
  readonly terraformBinary?: string;
  /**
   * Environment for the engine (e.g. TF_CLI_CONFIG_FILE).
   * @default process.env
   */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * Only report what would be done.
   * @default false
   */
  readonly dryRun?: boolean;
  /**
   * The `--migrateuri` of a live migration, by destination host, e.g. `{ h2: 'tcp://10.0.0.2' }`:
   * where the destination's QEMU listens for the migration stream when its hostname does not
   * resolve to the right address.
   * @default - libvirt's choice: the destination's hostname
   */
  readonly migrateUris?: Readonly<Record<string, string>>;
  /**
   * Bandwidth limit of each live migration, in MiB/s (`virsh migrate --bandwidth`).
   * @default - no limit
   */
  readonly migrationBandwidthMiBs?: number;
  /**
   * Called with each line of progress as it happens (each action as it starts, each migration's result).
   * @default - silent: the actions are returned
   */
  readonly log?: (line: string) => void;
}

export interface ReconcileAction {
  readonly host: string;
  readonly action:
    | 'refresh-pool'
    | 'migrate-domain'
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
  /** migrate-domain: the host the domain goes to. */
  readonly destination?: string;
  /** hot-add: the vCPUs and memory (MiB) to reach. */
  readonly vcpus?: number;
  readonly memoryMiB?: number;
  /** migrate-domain: the seed volume it takes along. */
  readonly seed?: DesiredDomain['seed'];
  /** record-state: the attributes to record. */
  readonly attributes?: Readonly<Record<string, unknown>>;
}

/** Raised when reconcile stops: a segment is missing, or a live migration failed. No apply may follow. */
export class ReconcileError extends Error {
  constructor(
    message: string,
    /** What was done (or, for missing segments, what is missing) before it stopped. */
    public readonly actions: readonly ReconcileAction[],
  ) {
    super(message);
    this.name = 'ReconcileError';
  }
}

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
  /** What a migration to this host needs from it. */
  readonly destination?: DestinationFacts;
  /** Whether each seed ISO of the stack folder exists, by path. */
  readonly seedIsoExists?: (isoFile: string) => boolean;
}

/**
 * Decides what to tidy on one host: plain data in, actions out, in the order they must run
 * (domains before their disks, disks before their pool).
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
    actions.push({ host, action: domain.running ? 'stop-and-undefine-domain' : 'undefine-domain', target: domain.name, reason });
  }
  // Local disks (cloud-init disks, and boot disks without shared storage) of managed VMs that no
  // longer run here, or that Terraform does not know (left by an interrupted apply, they block the
  // next create of the same name).
  for (const volume of inventory.localVolumes) {
    const owner = /^(.*)-(boot\.qcow2|cloudinit-[0-9a-f]{16}\.iso)$/.exec(volume.name)?.[1];
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

/**
 * Everything reconcile does, in the order it must run, decided from what every reachable host has:
 * shared pools refreshed first (a destination must see the disks), then live migrations, then each
 * host's tidying (cold moves among it), then hot-adds, then what the apply will restart.
 */
export function planOperations(inventories: readonly HostInventory[], desired: DesiredLayout, state: KnownState): ReconcileAction[] {
  const perHost = inventories.map((inventory) => planReconcile(inventory, desired, state));
  const byHost = new Map(inventories.map((inventory) => [inventory.host, inventory]));
  const migrations: ReconcileAction[] = [];
  const dropped = new Set<string>(); // host:target of delete-volume actions a migration takes over
  const resized: ReconcileAction[] = [];
  for (const [i, inventory] of inventories.entries()) {
    perHost[i] = perHost[i].map((action) => {
      if (action.action !== 'stop-and-undefine-domain') return action;
      const vm = desired.vms?.get(action.target);
      const running = inventory.running?.get(action.target);
      const to = desired.domains.get(action.target);
      if (vm === undefined || running === undefined || to === undefined || to === inventory.host) return action;
      const destination = byHost.get(to)?.destination ?? unreachable(to);
      const seedIso = vm.seed === undefined || (inventory.seedIsoExists?.(vm.seed.isoFile) ?? false);
      const blocker = liveMigrationBlocker(running, vm, destination, desired.sitePools, seedIso);
      if (blocker !== undefined) return { ...action, reason: `${action.reason}; moved cold: ${blocker}` };
      if (vm.seed) {
        dropped.add(`${inventory.host}:${LOCAL_POOL_NAME}/${vm.seed.volume}`);
        dropped.add(`${to}:${LOCAL_POOL_NAME}/${vm.seed.volume}`);
      }
      migrations.push({
        host: inventory.host,
        action: 'migrate-domain',
        target: action.target,
        destination: to,
        seed: vm.seed,
        reason: `${action.reason}; live: writable disks on shared storage${vm.seed ? ', seed disk copied' : ''}, ${vm.nics.map(describeNic).join(', ') || 'no NIC'} there`,
      });
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
  return [...refresh, ...migrations, ...tidy.filter((a) => a.action !== 'refresh-pool'), ...resized];
}

function unreachable(host: string): DestinationFacts {
  return { host, reachable: false, activeNetworks: new Set(), devices: new Set(), localPoolRunning: false, runningPools: new Set() };
}

/** The bridges and macvtap devices the configuration needs on reachable hosts that are missing, as actions. */
export function missingSegments(desired: DesiredLayout, present: (host: string) => ReadonlySet<string> | undefined): ReconcileAction[] {
  const missing: ReconcileAction[] = [];
  for (const [host, needs] of [...devicesNeeded(desired.vms?.values() ?? [])].sort(([a], [b]) => a.localeCompare(b))) {
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

type Virsh = (...args: string[]) => string;

export function reconcile(options: ReconcileOptions): ReconcileAction[] {
  const desired = readConfiguration(options.stackDir);
  const state = readState(options);
  const dryRun = options.dryRun ?? false;
  const log = options.log ?? (() => undefined);
  const hosts = Object.entries(options.hosts).sort(([a], [b]) => a.localeCompare(b));
  const connections = new Map<string, Virsh>();
  const actions: ReconcileAction[] = [];
  for (const [host, uri] of hosts) {
    const virsh = virshOn(uri);
    try {
      virsh('version');
      connections.set(host, virsh);
    } catch {
      const action: ReconcileAction = { host, action: 'host-unreachable', target: uri, reason: 'virsh cannot connect; nothing done there' };
      actions.push(action);
      log(formatAction(action, dryRun));
    }
  }
  // Before anything else: every bridge and macvtap device the NICs need on the hosts that run them.
  const needed = devicesNeeded(desired.vms?.values() ?? []);
  const devices = new Map<string, Set<string>>();
  for (const [host, virsh] of connections) {
    devices.set(host, new Set([...(needed.get(host)?.keys() ?? [])].filter((device) => hasDevice(virsh, device))));
  }
  const missing = missingSegments(desired, (host) => devices.get(host));
  if (missing.length > 0) {
    for (const action of missing) log(formatAction(action, false));
    throw new ReconcileError(`nothing done: ${missing.length} bridge or device${missing.length === 1 ? ' is' : 's are'} missing:\n${missing.map((a) => formatAction(a, false)).join('\n')}`, missing);
  }
  const inventories = [...connections].map(([host, virsh]) => inventoryOf(host, virsh, dryRun, desired, devices.get(host)!, options.stackDir));
  const planned = planOperations(inventories, desired, state);
  const done: ReconcileAction[] = [...actions];
  const failures: string[] = [];
  const stateUpdates: StateUpdate[] = [];
  for (const action of planned) {
    // After a failed migration only the other migrations go on: no tidying, no hot-add, no apply.
    if (failures.length > 0 && action.action !== 'migrate-domain') continue;
    log(formatAction(action, dryRun));
    done.push(action);
    if (dryRun) continue;
    const virsh = connections.get(action.host)!;
    switch (action.action) {
      case 'migrate-domain': {
        const outcome = migrate(action, virsh, connections.get(action.destination!)!, options, log, stateUpdates);
        if (outcome.failure !== undefined) failures.push(outcome.failure);
        if (outcome.cold !== undefined) {
          log(formatAction(outcome.cold, false));
          done.push(outcome.cold);
        }
        break;
      }
      case 'hot-add':
        if (action.vcpus !== undefined) virsh('setvcpus', action.target, String(action.vcpus), '--live', '--config');
        if (action.memoryMiB !== undefined) virsh('setmem', action.target, `${action.memoryMiB}M`, '--live', '--config');
        break;
      case 'record-state':
        stateUpdates.push({ address: action.target, attributes: action.attributes ?? {}, reason: action.reason });
        break;
      default:
        carryOut(action, virsh);
    }
  }
  if (failures.length === 0) done.push(...growVolumes(options, connections, state, dryRun, log, stateUpdates));
  if (!dryRun && stateUpdates.length > 0) recordInState(options, stateUpdates, log);
  if (failures.length > 0) {
    throw new ReconcileError(`${failures.length} live migration${failures.length === 1 ? '' : 's'} failed; nothing else was done; do not apply:\n${failures.join('\n')}`, done);
  }
  return done;
}

/**
 * Grows the volumes the configuration made bigger (the provider cannot), so the apply finds their
 * capacity as configured; a host that cannot be reached keeps its volumes as they are.
 */
function growVolumes(
  options: ReconcileOptions,
  connections: ReadonlyMap<string, Virsh>,
  state: KnownState,
  dryRun: boolean,
  log: (line: string) => void,
  stateUpdates: StateUpdate[],
): ReconcileAction[] {
  const config = JSON.parse(fs.readFileSync(path.join(options.stackDir, 'cdk.tf.json'), 'utf8'));
  const { grow, shrink } = planDiskGrowth(config, state.attributes ?? new Map());
  for (const line of shrink) log(`  not shrunk: ${line}`);
  const done: ReconcileAction[] = [];
  for (const g of grow) {
    const virsh = connections.get(g.host);
    if (!virsh) continue;
    const action: ReconcileAction = { host: g.host, action: 'grow-volume', target: `${g.pool}/${g.volume}`, reason: `${g.fromBytes} → ${g.toBytes} bytes: provider 0.9.7 updates no volume in place` };
    log(formatAction(action, dryRun));
    if (!dryRun) {
      log(`  grown ${growVolume(g, virsh)}`);
      // The provider's read keeps the capacity the state has: the state learns the new one.
      stateUpdates.push({ address: g.address, attributes: { capacity: g.toBytes }, reason: `grown to ${g.toBytes} bytes` });
    }
    done.push(action);
  }
  return done;
}

/** One line per action, as the command prints it. */
export function formatAction(action: ReconcileAction, dryRun: boolean): string {
  const target = action.action === 'migrate-domain' ? `${action.host}:${action.target} → ${action.destination}` : `${action.host}:${action.target}`;
  return `${dryRun ? 'would ' : ''}${action.action} ${target} (${action.reason})`;
}

/**
 * One live migration: the seed disk copied to the destination, `virsh migrate --live --persistent
 * --undefinesource` (never --unsafe), the result with libvirt's own figures from the destination
 * (with a non-p2p migration only the destination keeps the completed job), then the source's seed
 * disk deleted. A failure leaves the VM running on its source (libvirt rolls back) and returns a
 * message; nothing more is done for that VM. A refusal up front because libvirt does not know the
 * storage as shared moves the VM cold instead, as when the destination is not ready.
 */
function migrate(
  action: ReconcileAction,
  source: Virsh,
  destination: Virsh,
  options: ReconcileOptions,
  log: (line: string) => void,
  stateUpdates: StateUpdate[],
): { failure?: string; cold?: ReconcileAction } {
  const { target: vm, host: from, destination: to } = action;
  const seed = action.seed;
  const started = Date.now();
  try {
    if (seed && !lines(destination('vol-list', LOCAL_POOL_NAME)).some((l) => l.split(/\s+/)[0] === seed.volume)) {
      const iso = path.join(options.stackDir, seed.isoFile);
      destination('vol-create-as', LOCAL_POOL_NAME, seed.volume, String(fs.statSync(iso).size), '--format', 'raw');
      destination('vol-upload', '--pool', LOCAL_POOL_NAME, seed.volume, iso);
    }
    const uri = options.hosts[to!];
    const args = ['migrate', '--live', '--persistent', '--undefinesource', vm, uri];
    const migrateUri = options.migrateUris?.[to!];
    if (migrateUri !== undefined) args.push('--migrateuri', migrateUri);
    if (options.migrationBandwidthMiBs !== undefined) args.push('--bandwidth', String(options.migrationBandwidthMiBs));
    log(`  migrating ${vm} from ${from} to ${to} (live)`);
    source(...args);
  } catch (err) {
    let state: string | undefined;
    let where: string;
    try {
      state = source('domstate', vm).trim();
      where = `${vm} is ${state} on ${from}`;
    } catch (stateErr) {
      where = `its state on ${from} is unknown (${messageOf(stateErr)})`;
    }
    const message = messageOf(err);
    // Refused before anything moved: libvirt does not know the disks' file system as shared (NFS,
    // GFS2, a GlusterFS mount, ...). The destination is not ready for a live move: move it cold.
    if (/Unsafe migration/.test(message) && state === 'running') {
      log(`  libvirt refuses to migrate ${vm} live (${message}); moving it cold`);
      source('destroy', vm);
      source('undefine', vm);
      if (seed) {
        for (const host of [source, destination]) {
          if (lines(host('vol-list', LOCAL_POOL_NAME)).some((l) => l.split(/\s+/)[0] === seed.volume)) host('vol-delete', '--pool', LOCAL_POOL_NAME, seed.volume);
        }
      }
      const reason = `${action.reason.replace(/; live: .*$/, '')}; moved cold: libvirt refuses a live migration: ${message}`;
      return { cold: { host: from, action: 'stop-and-undefine-domain', target: vm, reason } };
    }
    const line = `live migration of ${vm} from ${from} to ${to} failed: ${message}; ${where}`;
    log(`  ${line}`);
    return { failure: line };
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  let figures = '';
  try {
    const info = parseJobInfo(destination('domjobinfo', '--completed', vm));
    figures = `; libvirt: ${info['Time elapsed'] ?? '?'} elapsed, downtime ${info['Total downtime'] ?? '?'}`;
  } catch {
    figures = '; libvirt kept no job statistics';
  }
  log(`  migrated ${vm} from ${from} to ${to} in ${seconds} s${figures}`);
  if (seed) {
    // The copy on the destination is the one in use now; the source's copy is no one's.
    source('vol-delete', '--pool', LOCAL_POOL_NAME, seed.volume);
    const newPath = destination('vol-path', '--pool', LOCAL_POOL_NAME, seed.volume).trim();
    stateUpdates.push({ address: seed.address, attributes: { id: newPath, key: newPath, path: newPath, 'target.path': newPath }, reason: `seed disk of ${vm} now at ${to}:${newPath}` });
  }
  return {};
}

/**
 * Tells the Terraform state what reconcile changed, through the engine (`state pull`, then `state
 * push`, which takes the state lock and refuses when the state changed in between).
 */
function recordInState(options: ReconcileOptions, updates: readonly StateUpdate[], log: (line: string) => void): void {
  const binary = engineOf(options);
  const env = options.env ?? process.env;
  const pulled = JSON.parse(execFileSync(binary, ['state', 'pull'], { cwd: options.stackDir, env, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 }));
  const next = applyStateUpdates(pulled, updates);
  if (next === undefined) return;
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'reconcile-state-')), 'state.json');
  try {
    fs.writeFileSync(file, JSON.stringify(next, null, 2), { mode: 0o600 });
    execFileSync(binary, ['state', 'push', file], { cwd: options.stackDir, env, encoding: 'utf8' });
  } finally {
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
  for (const u of updates) log(`  recorded in the state: ${u.address} (${u.reason})`);
}

function virshOn(uri: string): Virsh {
  return (...args: string[]) => execFileSync('virsh', ['-q', '-c', uri, ...args], { encoding: 'utf8', timeout: 60 * 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Whether the host has a network device: through libvirt (`iface-dumpxml`), so over qemu+ssh it is the remote host's. */
function hasDevice(virsh: Virsh, device: string): boolean {
  try {
    virsh('iface-dumpxml', device);
    return true;
  } catch {
    return false;
  }
}

function messageOf(err: unknown): string {
  const e = err as { stderr?: string; message?: string };
  return (e.stderr?.trim() || e.message || String(err)).replace(/^error: /gm, '').replace(/\s*\n\s*/g, ' ').trim();
}

function inventoryOf(host: string, virsh: Virsh, dryRun: boolean, desired: DesiredLayout, devices: ReadonlySet<string>, stackDir: string): HostInventory {
  const pools = lines(virsh('pool-list', '--all', '--name'));
  const activePools = new Set(lines(virsh('pool-list', '--name')));
  let localVolumes: { name: string; path: string }[] = [];
  if (pools.includes(LOCAL_POOL_NAME)) {
    // A host that was down may not have started its pool yet; its volumes are needed.
    const running = activePools.has(LOCAL_POOL_NAME);
    if (!running && !dryRun) {
      virsh('pool-start', LOCAL_POOL_NAME);
      activePools.add(LOCAL_POOL_NAME);
    }
    if (running || !dryRun) localVolumes = volumesOf(virsh('vol-list', LOCAL_POOL_NAME)).map(([name, path]) => ({ name, path }));
  }
  const active = new Set(lines(virsh('list', '--name')));
  const domains = lines(virsh('list', '--all', '--name')).map((name) => ({ name, uuid: virsh('domuuid', name).trim(), running: active.has(name) }));
  const running = new Map<string, RunningDomain>();
  for (const d of domains) {
    if (d.running && desired.vms?.has(d.name)) running.set(d.name, runningDomain(d.name, virsh('dumpxml', d.name), virsh('dumpxml', '--inactive', d.name)));
  }
  return {
    host,
    domains,
    localVolumes,
    pools: pools.map((name) => ({ name, uuid: virsh('pool-uuid', name).trim(), running: activePools.has(name) })),
    networks: lines(virsh('net-list', '--all', '--name')).map((name) => ({ name, uuid: virsh('net-uuid', name).trim() })),
    running,
    destination: {
      host,
      reachable: true,
      activeNetworks: new Set(lines(virsh('net-list', '--name'))),
      devices,
      localPoolRunning: activePools.has(LOCAL_POOL_NAME),
      runningPools: activePools,
    },
    seedIsoExists: (isoFile) => fs.existsSync(path.join(stackDir, isoFile)),
  };
}

/** A running domain from its live XML (ceilings, vCPUs online, disks, NICs) and its persistent XML (the memory target). */
export function runningDomain(name: string, liveXml: string, persistentXml: string): RunningDomain {
  const vcpu = /<vcpu\b([^>]*)>(\d+)<\/vcpu>/.exec(liveXml);
  const vcpus = Number(vcpu?.[2] ?? 0);
  const currentVcpus = Number(/current='(\d+)'/.exec(vcpu?.[1] ?? '')?.[1] ?? vcpus);
  const size = (xml: string, element: string): number | undefined => {
    const match = new RegExp(`<${element}\\b([^>]*)>(\\d+)</${element}>`).exec(xml);
    return match ? toMebibytes(Number(match[2]), /unit='(\w+)'/.exec(match[1])?.[1] ?? 'KiB') : undefined;
  };
  const memoryMiB = size(liveXml, 'memory') ?? 0;
  const current = size(persistentXml, 'currentMemory') ?? size(liveXml, 'currentMemory');
  const disks = [...liveXml.matchAll(/<disk\b([^>]*)>([\s\S]*?)<\/disk>/g)].map(([, , body]) => ({
    pool: /<source\b[^>]*\bpool='([^']+)'/.exec(body)?.[1],
    volume: /<source\b[^>]*\bvolume='([^']+)'/.exec(body)?.[1],
    readOnly: /<readonly\/>/.test(body),
    target: /<target\b[^>]*\bdev='([^']+)'/.exec(body)?.[1] ?? '?',
  }));
  const nics = [...liveXml.matchAll(/<interface\b[^>]*\btype='(\w+)'[^>]*>([\s\S]*?)<\/interface>/g)].map(([, type, body]): NicSource => {
    if (type === 'network') return { kind: 'network', source: /<source\b[^>]*\bnetwork='([^']+)'/.exec(body)?.[1] ?? '' };
    if (type === 'direct') return { kind: 'direct', source: /<source\b[^>]*\bdev='([^']+)'/.exec(body)?.[1] ?? '' };
    return { kind: 'bridge', source: /<source\b[^>]*\bbridge='([^']+)'/.exec(body)?.[1] ?? '' };
  });
  return { name, vcpus, currentVcpus, memoryMiB, currentMemoryMiB: current ?? memoryMiB, disks, nics };
}

function carryOut(action: ReconcileAction, virsh: (...args: string[]) => string): void {
  switch (action.action) {
    case 'stop-and-undefine-domain':
      virsh('destroy', action.target);
      virsh('undefine', action.target);
      break;
    case 'undefine-domain':
      virsh('undefine', action.target);
      break;
    case 'start-domain':
      virsh('start', action.target);
      break;
    case 'refresh-pool':
      virsh('pool-refresh', action.target);
      break;
    case 'delete-volume': {
      const [pool, volume] = action.target.split('/');
      virsh('vol-delete', '--pool', pool, volume);
      break;
    }
    case 'undefine-pool':
      if (/State:\s+running/.test(virsh('pool-info', action.target))) virsh('pool-destroy', action.target);
      virsh('pool-undefine', action.target);
      break;
    case 'undefine-network':
      if (lines(virsh('net-list', '--name')).includes(action.target)) virsh('net-destroy', action.target);
      virsh('net-undefine', action.target);
      break;
    case 'host-unreachable':
    case 'missing-segment':
    case 'restart-on-apply':
    case 'migrate-domain':
    case 'hot-add':
    case 'record-state':
      break; // reported only, or carried out by reconcile itself
  }
}

function readConfiguration(stackDir: string): DesiredLayout {
  const json = JSON.parse(fs.readFileSync(path.join(stackDir, 'cdk.tf.json'), 'utf8'));
  const alias = (r: { provider?: string }) => (r.provider ?? '').replace(/^libvirt\./, '');
  const domains = new Map<string, string>();
  for (const d of Object.values<any>(json.resource?.libvirt_domain ?? {})) domains.set(d.name, alias(d));
  const byHost = (type: string) => {
    const map = new Map<string, Set<string>>();
    for (const r of Object.values<any>(json.resource?.[type] ?? {})) {
      if (!map.has(alias(r))) map.set(alias(r), new Set());
      map.get(alias(r))!.add(r.name);
    }
    return map;
  };
  const created = new Set(Object.values<any>(json.resource?.libvirt_pool ?? {}).map((p) => p.name));
  const used = Object.values<any>(json.resource?.libvirt_volume ?? {}).map((v) => v.pool);
  const sitePools = new Set(used.filter((p) => typeof p === 'string' && !p.includes('${') && !created.has(p)));
  return { domains, pools: byHost('libvirt_pool'), networks: byHost('libvirt_network'), sitePools, vms: desiredDomains(json) };
}

/** Each domain of a synthesized stack (`cdk.tf.json`) in detail, references to other resources resolved. */
export function desiredDomains(json: any): Map<string, DesiredDomain> {
  const resources = json.resource ?? {};
  // "${libvirt_volume.<name>.<attribute>}" → that attribute as the configuration sets it
  const resolve = (value: unknown): unknown => {
    const ref = typeof value === 'string' ? /^\$\{(\w+)\.([^.}]+)\.(\w+)\}$/.exec(value) : null;
    return ref ? resources[ref[1]]?.[ref[2]]?.[ref[3]] : value;
  };
  const refersTo = (value: unknown) => (typeof value === 'string' ? /^\$\{(\w+)\.([^.}]+)\.\w+\}$/.exec(value) : null);
  const vms = new Map<string, DesiredDomain>();
  for (const [key, d] of Object.entries<any>(resources.libvirt_domain ?? {})) {
    const stateValues: Record<string, number | string> = {};
    for (const k of ['vcpu_current', 'current_memory', 'current_memory_unit']) if (d[k] !== undefined) stateValues[k] = d[k];
    const nics = (d.devices?.interfaces ?? []).map((nic: any): NicSource => {
      const source = nic.source ?? {};
      if (source.network) return { kind: 'network', source: String(resolve(source.network.network)) };
      if (source.direct) return { kind: 'direct', source: String(resolve(source.direct.dev)) };
      return { kind: 'bridge', source: String(resolve(source.bridge?.bridge)) };
    });
    let seed: DesiredDomain['seed'];
    for (const disk of d.devices?.disks ?? []) {
      const ref = refersTo(disk.source?.volume?.volume);
      const volume = ref && ref[1] === 'libvirt_volume' ? resources.libvirt_volume?.[ref[2]] : undefined;
      const url = volume?.create?.content?.url;
      if (disk.device === 'cdrom' && typeof url === 'string' && !/^[a-z]+:\/\//.test(url)) {
        seed = { volume: volume.name, address: `libvirt_volume.${ref![2]}`, isoFile: url };
      }
    }
    vms.set(d.name, {
      name: d.name,
      host: String(d.provider ?? '').replace(/^libvirt\./, ''),
      address: `libvirt_domain.${key}`,
      ...domainSize(d),
      stateValues,
      nics,
      seed,
    });
  }
  return vms;
}

function engineOf(options: ReconcileOptions): string {
  return options.terraformBinary ?? terraformEngine(options.stackDir, undefined, options.env ?? process.env).binary;
}

function readState(options: ReconcileOptions): KnownState {
  const binary = engineOf(options);
  const shown = JSON.parse(
    execFileSync(binary, ['show', '-json', '-no-color'], { cwd: options.stackDir, env: options.env ?? process.env, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 }),
  );
  const resources: { address: string; type: string; values: { name?: string; id?: string; uuid?: string; path?: string } }[] = shown.values?.root_module?.resources ?? [];
  const of = (type: string) => resources.filter((r) => r.type === type);
  return {
    domainNames: new Set(of('libvirt_domain').map((r) => r.values.name ?? '')),
    // Provider 0.9: a domain's `id` is its runtime number, its identity is `uuid`; a pool's and a
    // network's `id` is their UUID; a volume's `path` is its file.
    domainIds: new Set(of('libvirt_domain').map((r) => uuidOf(r.values.uuid ?? ''))),
    poolIds: new Set(of('libvirt_pool').map((r) => uuidOf(r.values.id ?? ''))),
    networkIds: new Set(of('libvirt_network').map((r) => uuidOf(r.values.id ?? ''))),
    volumePaths: new Set(of('libvirt_volume').map((r) => r.values.path ?? r.values.id ?? '')),
    attributes: new Map(resources.map((r) => [r.address, r.values as Record<string, unknown>])),
  };
}

/** `virsh vol-list` rows as [name, path]. */
function volumesOf(listing: string): [string, string][] {
  return lines(listing)
    .filter((l) => !/^Name\s+Path$/.test(l) && !/^-+$/.test(l))
    .map((l) => l.split(/\s+/) as [string, string]);
}

const lines = (text: string) => text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
const uuidOf = (text: string) => text.trim().toLowerCase();
