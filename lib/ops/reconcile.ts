import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Duration } from '../core/duration';
import { growVolume, planDiskGrowth } from './disk-growth';
import { hasDevice, lines, observeHost, probe, Virsh, virshOn } from './host-observer';
import { applyStateUpdates, devicesNeeded, StateUpdate } from './live';
import { BLOCKING_ACTIONS, formatAction, planOperations, ReconcileAction } from './reconcile-plan';
import { engineOf, readConfiguration, readState } from './stack-reader';
import { StopError, VmMover } from './vm-mover';

export * from './live';
export * from './reconcile-plan';
export { desiredDomains, readConfiguration } from './stack-reader';
export { freeMemoryMiB, runningDomain } from './host-observer';
export { DEFAULT_MIGRATION_TIMEOUT } from './vm-mover';

/**
 * Tidies reachable hosts before an apply, for the cases Terraform cannot see:
 *
 * - a VM moves off a host that is still reachable (maintenance, rebalance): its address stays the
 *   same and its provider changes, so Terraform reads it on the new host by its UUID. First
 *   reconcile checks that the destination can take it (it answers, runs the VM's shared pools, has
 *   each bridge and device its NICs need and memory for its ceiling, and the seed ISO is in the
 *   stack folder); if not, the move is refused, the VM keeps running, and nothing at all is done.
 *   Then it live-migrates it (same UUID: the plan shows no change to it) when its writable disks are
 *   on shared storage and its NICs and networks allow; otherwise it moves it cold: an ACPI shutdown,
 *   up to the VM's `shutdownTimeout`, a power-off only if that did not finish, and the apply creates
 *   the VM on the new host (disk leases stop a new copy while an old one runs). A live migration
 *   libvirt refuses fails that VM (it keeps running) unless `coldWhenLiveRefused` allows a cold move.
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
   * Only report what would be done: every move as live, cold or refused, with the reason.
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
   * How long one live migration may run before it is aborted (`virsh domjobabort`): the VM stays
   * on its source and reconcile fails.
   * @default DEFAULT_MIGRATION_TIMEOUT (10 min)
   */
  readonly migrationTimeout?: Duration;
  /**
   * Move a VM cold when libvirt refuses its live migration (for example storage libvirt does not
   * know as shared) and the VM still runs on its source: the operator accepts the guest's restart.
   * @default false - the VM keeps running on its source and reconcile fails, saying why
   */
  readonly coldWhenLiveRefused?: boolean;
  /**
   * Stops reconcile between steps (SIGTERM): the step under way (a migration, a shutdown) finishes,
   * what was done is recorded in the state, and reconcile fails listing what it did not do.
   * @default - runs to the end
   */
  readonly signal?: AbortSignal;
  /**
   * Called with each line of progress as it happens (each action as it starts, each migration's
   * progress and result, how each guest was stopped).
   * @default - silent: the actions are returned
   */
  readonly log?: (line: string) => void;
}

/** Raised when reconcile stops: a move refused, a segment missing, a live migration or a stop failed, or a signal. No apply may follow. */
export class ReconcileError extends Error {
  constructor(
    message: string,
    /** What was done (or, for refusals and missing segments, what stopped it) before it stopped. */
    public readonly actions: readonly ReconcileAction[],
  ) {
    super(message);
    this.name = 'ReconcileError';
  }
}

/**
 * Observes every host, plans (`planOperations`), and carries the plan out one step at a time.
 * Resolves with the actions done; rejects with a ReconcileError when no apply may follow.
 */
export async function reconcile(options: ReconcileOptions): Promise<ReconcileAction[]> {
  const env = options.env ?? process.env;
  const binary = engineOf(options.stackDir, options.terraformBinary, env);
  const desired = readConfiguration(options.stackDir);
  const state = readState(options.stackDir, binary, env);
  const dryRun = options.dryRun ?? false;
  const log = options.log ?? (() => undefined);
  const hosts = Object.entries(options.hosts).sort(([a], [b]) => a.localeCompare(b));
  const connections = new Map<string, Virsh>();
  const done: ReconcileAction[] = [];
  for (const [host, uri] of hosts) {
    const virsh = virshOn(uri);
    const answer = probe(virsh);
    if (answer.reachable) {
      connections.set(host, virsh);
      continue;
    }
    const action: ReconcileAction = { host, action: 'host-unreachable', target: uri, reason: `virsh cannot connect (${answer.reason}); nothing done there` };
    done.push(action);
    log(formatAction(action, dryRun));
  }
  const needed = devicesNeeded(desired.vms?.values() ?? []);
  const inventories = [...connections].map(([host, virsh]) => {
    const devices = new Set([...(needed.get(host)?.keys() ?? [])].filter((device) => hasDevice(virsh, device)));
    return observeHost(host, virsh, dryRun, desired, devices, options.stackDir);
  });
  const planned = planOperations(inventories, desired, state);

  // A move refused or a device missing: nothing at all is done, every reason listed.
  const blocking = planned.filter((a) => BLOCKING_ACTIONS.has(a.action));
  if (blocking.length > 0) {
    for (const action of dryRun ? planned : blocking) log(formatAction(action, dryRun));
    const refused = blocking.filter((a) => a.action === 'refuse-move').length;
    const missing = blocking.length - refused;
    const what = [
      refused > 0 ? `${refused} move${refused === 1 ? ' is' : 's are'} refused (the VM${refused === 1 ? ' keeps' : 's keep'} running where ${refused === 1 ? 'it is' : 'they are'})` : '',
      missing > 0 ? `${missing} bridge or device${missing === 1 ? ' is' : 's are'} missing` : '',
    ].filter((s) => s !== '').join(' and ');
    throw new ReconcileError(`nothing done: ${what}; do not apply:\n${blocking.map((a) => formatAction(a, false)).join('\n')}`, blocking);
  }
  if (dryRun) {
    for (const action of planned) log(formatAction(action, true));
    return [...done, ...planned, ...growVolumes(options.stackDir, connections, state.attributes, true, log, [])];
  }

  const mover = new VmMover({ ...options, log });
  const failures: string[] = [];
  const stateUpdates: StateUpdate[] = [];
  let stoppedAt: number | undefined;
  for (const [index, action] of planned.entries()) {
    // After a failed migration only the other migrations go on: no tidying, no hot-add, no apply.
    if (failures.length > 0 && action.action !== 'migrate-domain') continue;
    if (options.signal?.aborted) {
      stoppedAt = index;
      break;
    }
    log(formatAction(action, false));
    const virsh = connections.get(action.host)!;
    try {
      switch (action.action) {
        case 'migrate-domain': {
          const destination = connections.get(action.destination!)!;
          const outcome = await mover.migrate(action, virsh, destination);
          if (outcome.ok) {
            done.push(action);
            if (outcome.stateUpdate) stateUpdates.push(outcome.stateUpdate);
            break;
          }
          if (options.coldWhenLiveRefused && outcome.sourceState === 'running' && probe(destination).reachable) {
            const cold: ReconcileAction = {
              ...action,
              action: 'cold-move',
              reason: `${action.reason.replace(/; live: .*$/, '')}; cold, as allowed (coldWhenLiveRefused): ${outcome.failure}`,
            };
            log(formatAction(cold, false));
            await mover.moveColdAfterRefusal(cold, virsh, destination);
            done.push(cold);
            break;
          }
          failures.push(outcome.failure);
          break;
        }
        case 'cold-move': {
          // Checked when planned, maybe minutes ago (migrations first): it must still answer.
          const destination = connections.get(action.destination!);
          const answer = destination === undefined ? { reachable: false as const, reason: 'not connected' } : probe(destination);
          if (!answer.reachable) {
            const line = `cold move of ${action.target} from ${action.host} to ${action.destination} not started: ${action.destination} no longer answers (${answer.reason}); ${action.target} keeps running on ${action.host}`;
            log(`  ${line}`);
            failures.push(line);
            break;
          }
          await mover.stopAndUndefine(action, virsh);
          done.push(action);
          break;
        }
        case 'stop-and-undefine-domain':
          await mover.stopAndUndefine(action, virsh);
          done.push(action);
          break;
        case 'hot-add':
          if (action.vcpus !== undefined) virsh('setvcpus', action.target, String(action.vcpus), '--live', '--config');
          if (action.memoryMiB !== undefined) virsh('setmem', action.target, `${action.memoryMiB}M`, '--live', '--config');
          done.push(action);
          break;
        case 'record-state':
          stateUpdates.push({ address: action.target, attributes: action.attributes ?? {}, reason: action.reason });
          done.push(action);
          break;
        default:
          carryOut(action, virsh);
          done.push(action);
      }
    } catch (err) {
      if (!(err instanceof StopError)) throw err;
      log(`  ${err.message}`);
      failures.push(err.message);
    }
  }
  if (failures.length === 0 && stoppedAt === undefined && !options.signal?.aborted) {
    done.push(...growVolumes(options.stackDir, connections, state.attributes, false, log, stateUpdates));
  }
  // What was done is recorded, whatever stopped the run.
  if (stateUpdates.length > 0) recordInState(options.stackDir, binary, env, stateUpdates, log);
  if (stoppedAt !== undefined) {
    const left = planned.slice(stoppedAt).filter((a) => failures.length === 0 || a.action === 'migrate-domain');
    throw new ReconcileError(`stopped by a signal after ${done.length} step${done.length === 1 ? '' : 's'}; not done, do not apply:\n${left.map((a) => formatAction(a, false)).join('\n')}`, done);
  }
  if (failures.length > 0) {
    throw new ReconcileError(`${failures.length} move${failures.length === 1 ? '' : 's'} failed; nothing else was done; do not apply:\n${failures.join('\n')}`, done);
  }
  return done;
}

/**
 * Grows the volumes the configuration made bigger (the provider cannot), so the apply finds their
 * capacity as configured; a host that cannot be reached keeps its volumes as they are.
 */
function growVolumes(
  stackDir: string,
  connections: ReadonlyMap<string, Virsh>,
  attributes: ReadonlyMap<string, Readonly<Record<string, unknown>>> | undefined,
  dryRun: boolean,
  log: (line: string) => void,
  stateUpdates: StateUpdate[],
): ReconcileAction[] {
  const config = JSON.parse(fs.readFileSync(path.join(stackDir, 'cdk.tf.json'), 'utf8'));
  const { grow, shrink } = planDiskGrowth(config, attributes ?? new Map());
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

/**
 * Tells the Terraform state what reconcile changed, through the engine (`state pull`, then `state
 * push`, which takes the state lock and refuses when the state changed in between).
 */
function recordInState(stackDir: string, binary: string, env: NodeJS.ProcessEnv, updates: readonly StateUpdate[], log: (line: string) => void): void {
  const pulled = JSON.parse(execFileSync(binary, ['state', 'pull'], { cwd: stackDir, env, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 }));
  const next = applyStateUpdates(pulled, updates);
  if (next === undefined) return;
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'reconcile-state-')), 'state.json');
  try {
    fs.writeFileSync(file, JSON.stringify(next, null, 2), { mode: 0o600 });
    execFileSync(binary, ['state', 'push', file], { cwd: stackDir, env, encoding: 'utf8' });
  } finally {
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
  for (const u of updates) log(`  recorded in the state: ${u.address} (${u.reason})`);
}

/** The actions that are one or two plain virsh commands (no running domain is stopped here). */
function carryOut(action: ReconcileAction, virsh: Virsh): void {
  switch (action.action) {
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
    default:
      throw new Error(`reconcile cannot carry out ${action.action} here`);
  }
}
