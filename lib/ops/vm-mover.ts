/**
 * Moving VMs off a host, gracefully and bounded in time: a live migration (seed disk copied first,
 * auto-converge, progress, aborted after its timeout), and the stop of a cold move (an ACPI
 * shutdown, the guest's `shutdownTimeout` to finish it, and only then a power-off). Every
 * `virsh destroy` of the library is here, after an ACPI shutdown that did not finish in time.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Duration } from '../core/duration';
import { LOCAL_POOL_NAME } from '../constructs/host';
import { lines, messageOf, Virsh } from './host-observer';
import { DEFAULT_SHUTDOWN_TIMEOUT, migrationProgress, parseJobInfo, StateUpdate } from './live';
import { ReconcileAction } from './reconcile-plan';

/** How long a live migration may run before it is aborted (the VM stays on its source), when not given. */
export const DEFAULT_MIGRATION_TIMEOUT = Duration.minutes(10);

export interface VmMoverOptions {
  /** The synthesized stack folder: where the seed ISOs are. */
  readonly stackDir: string;
  /** The connection URI of each host, by host name. */
  readonly hosts: Readonly<Record<string, string>>;
  /** `--migrateuri` by destination host. @default - libvirt's choice: the destination's hostname */
  readonly migrateUris?: Readonly<Record<string, string>>;
  /** `--bandwidth` of each migration, MiB/s. @default - no limit */
  readonly migrationBandwidthMiBs?: number;
  /** @default DEFAULT_MIGRATION_TIMEOUT */
  readonly migrationTimeout?: Duration;
  /** How often a running migration's progress is logged. @default Duration.seconds(5) */
  readonly progressEvery?: Duration;
  readonly log: (line: string) => void;
}

/** What a live migration came to. */
export type MigrationOutcome =
  | { readonly ok: true; readonly stateUpdate?: StateUpdate }
  | {
      readonly ok: false;
      /** One line: what failed, and where the VM is now. */
      readonly failure: string;
      /** The VM's state on its source afterwards (`running` when libvirt rolled back), if known. */
      readonly sourceState?: string;
    };

/** How a guest was stopped. */
export interface StopOutcome {
  readonly how: 'acpi' | 'power-off' | 'was-off';
  readonly seconds: number;
}

/** Raised when a VM could not be stopped gracefully and was left as it was. */
export class StopError extends Error {}

export class VmMover {
  constructor(private readonly options: VmMoverOptions) {}

  /**
   * Stops a running domain the graceful way: `virsh shutdown --mode acpi` (the guest hears the power
   * button), then up to `timeout` for it to be shut off, and only then `virsh destroy`. Logs which.
   * When libvirt refuses the ACPI request, nothing is powered off: throws StopError.
   */
  async shutDown(vm: string, host: string, virsh: Virsh, timeout: Duration = DEFAULT_SHUTDOWN_TIMEOUT): Promise<StopOutcome> {
    const started = Date.now();
    const seconds = () => (Date.now() - started) / 1000;
    if (stateOf(virsh, vm) === 'shut off') return { how: 'was-off', seconds: 0 };
    try {
      virsh('shutdown', '--mode', 'acpi', vm);
    } catch (err) {
      if (stateOf(virsh, vm) === 'shut off') return { how: 'acpi', seconds: seconds() };
      throw new StopError(`the ACPI shutdown of ${vm} on ${host} was refused (${messageOf(err)}); ${vm} is left ${stateOf(virsh, vm) ?? 'as it was'}, not powered off`);
    }
    this.options.log(`  shutting ${vm} down on ${host} through ACPI (up to ${timeout})`);
    const deadline = started + timeout.toSeconds() * 1000;
    while (Date.now() < deadline) {
      if (stateOf(virsh, vm) === 'shut off') {
        this.options.log(`  ${vm} shut down through ACPI on ${host} in ${seconds().toFixed(1)} s`);
        return { how: 'acpi', seconds: seconds() };
      }
      await sleep(250);
    }
    if (stateOf(virsh, vm) === 'shut off') return { how: 'acpi', seconds: seconds() };
    virsh('destroy', vm);
    this.options.log(`  ${vm} did not shut down within ${timeout} of the ACPI request on ${host}: powered off (virsh destroy) after ${seconds().toFixed(1)} s`);
    return { how: 'power-off', seconds: seconds() };
  }

  /** The source half of a cold move (or the stop of a domain that goes): graceful stop, then undefine. */
  async stopAndUndefine(action: ReconcileAction, virsh: Virsh): Promise<StopOutcome> {
    const outcome = await this.shutDown(action.target, action.host, virsh, action.shutdownTimeout);
    virsh('undefine', action.target);
    return outcome;
  }

  /**
   * A cold move after a refused live migration: graceful stop and undefine on the source, and the
   * seed copies removed from both hosts (the apply creates the VM's seed disk on the destination).
   */
  async moveColdAfterRefusal(action: ReconcileAction, source: Virsh, destination: Virsh): Promise<StopOutcome> {
    const outcome = await this.stopAndUndefine(action, source);
    const seed = action.seed;
    if (seed) {
      for (const host of [source, destination]) {
        if (lines(host('vol-list', LOCAL_POOL_NAME)).some((l) => l.split(/\s+/)[0] === seed.volume)) host('vol-delete', '--pool', LOCAL_POOL_NAME, seed.volume);
      }
    }
    return outcome;
  }

  /**
   * One live migration: the seed disk copied to the destination, `virsh migrate --live --persistent
   * --undefinesource --auto-converge` (never --unsafe; without --auto-converge only when the QEMU
   * refuses it), progress from `domjobinfo` on the source, `domjobabort` once it runs longer than
   * the timeout, then libvirt's own figures from the destination (with a non-p2p migration only the
   * destination keeps the completed job) and the source's seed disk deleted. On failure libvirt
   * rolls back: the VM keeps running on its source, and the outcome says so.
   */
  async migrate(action: ReconcileAction, source: Virsh, destination: Virsh): Promise<MigrationOutcome> {
    const { target: vm, host: from } = action;
    const to = action.destination!;
    const seed = action.seed;
    const log = this.options.log;
    const started = Date.now();
    let failure: string | undefined;
    try {
      if (seed && !lines(destination('vol-list', LOCAL_POOL_NAME)).some((l) => l.split(/\s+/)[0] === seed.volume)) {
        const iso = path.join(this.options.stackDir, seed.isoFile);
        destination('vol-create-as', LOCAL_POOL_NAME, seed.volume, String(fs.statSync(iso).size), '--format', 'raw');
        destination('vol-upload', '--pool', LOCAL_POOL_NAME, seed.volume, iso);
      }
      let autoConverge = true;
      for (;;) {
        log(`  migrating ${vm} from ${from} to ${to} (live${autoConverge ? ', auto-converge' : ''}, aborted after ${this.timeout()})`);
        const result = await this.runMigration(vm, source, to, autoConverge);
        if (result.ok) break;
        // A QEMU without the auto-converge capability refuses the job before it starts.
        if (autoConverge && /auto[-_ ]?converge/i.test(result.message) && /support/i.test(result.message)) {
          log(`  this QEMU cannot auto-converge (${result.message}): migrating without it`);
          autoConverge = false;
          continue;
        }
        failure = result.message;
        break;
      }
    } catch (err) {
      failure = messageOf(err);
    }
    if (failure !== undefined) {
      const sourceState = stateOf(source, vm);
      const where = sourceState !== undefined ? `${vm} is ${sourceState} on ${from}` : `its state on ${from} is unknown`;
      const line = `live migration of ${vm} from ${from} to ${to} failed: ${failure}; ${where}`;
      log(`  ${line}`);
      return { ok: false, failure: line, sourceState };
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
    if (!seed) return { ok: true };
    // The copy on the destination is the one in use now; the source's copy is no one's.
    source('vol-delete', '--pool', LOCAL_POOL_NAME, seed.volume);
    const newPath = destination('vol-path', '--pool', LOCAL_POOL_NAME, seed.volume).trim();
    return { ok: true, stateUpdate: { address: seed.address, attributes: { id: newPath, key: newPath, path: newPath, 'target.path': newPath }, reason: `seed disk of ${vm} now at ${to}:${newPath}` } };
  }

  private timeout(): Duration {
    return this.options.migrationTimeout ?? DEFAULT_MIGRATION_TIMEOUT;
  }

  /** `virsh migrate` as a child, watched: progress every `progressEvery`, aborted after the timeout. */
  private async runMigration(vm: string, source: Virsh, to: string, autoConverge: boolean): Promise<{ ok: true } | { ok: false; message: string }> {
    const args = ['migrate', '--live', '--persistent', '--undefinesource', ...(autoConverge ? ['--auto-converge'] : []), vm, this.options.hosts[to]];
    const migrateUri = this.options.migrateUris?.[to];
    if (migrateUri !== undefined) args.push('--migrateuri', migrateUri);
    if (this.options.migrationBandwidthMiBs !== undefined) args.push('--bandwidth', String(this.options.migrationBandwidthMiBs));
    const child = spawn('virsh', ['-q', '-c', source.uri, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stdout.resume();
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number>((resolve) => {
      child.on('error', (err) => {
        stderr += String(err);
        resolve(-1);
      });
      child.on('exit', (code) => resolve(code ?? -1));
    });
    const started = Date.now();
    const every = (this.options.progressEvery ?? Duration.seconds(5)).toSeconds() * 1000;
    let lastLogged = started;
    let aborted = false;
    let done = false;
    void exited.then(() => (done = true));
    while (!done) {
      await Promise.race([exited, sleep(1000)]);
      if (done) break;
      const elapsed = Date.now() - started;
      if (!aborted && elapsed > this.timeout().toSeconds() * 1000) {
        aborted = true;
        this.options.log(`  ${vm}: the migration runs longer than ${this.timeout()}: aborting it (virsh domjobabort)`);
        try {
          source('domjobabort', vm);
        } catch (err) {
          this.options.log(`  ${vm}: domjobabort failed: ${messageOf(err)}`);
        }
        // A virsh that does not return after the abort is ended by its pid: we started it.
        setTimeout(() => {
          if (!done) child.kill('SIGKILL');
        }, 60_000).unref();
      }
      if (!aborted && Date.now() - lastLogged >= every) {
        let progress: string | undefined;
        try {
          progress = migrationProgress(parseJobInfo(source('domjobinfo', vm)));
        } catch {
          progress = undefined; // the job ended meanwhile
        }
        if (progress !== undefined) {
          this.options.log(`  ${vm}: ${progress} after ${(elapsed / 1000).toFixed(0)} s`);
          lastLogged = Date.now();
        }
      }
    }
    const code = await exited;
    if (code === 0) return { ok: true };
    const message = messageOf({ stderr });
    return { ok: false, message: aborted ? `aborted after ${this.timeout()} (${message || 'no message'})` : message || `virsh migrate exited ${code}` };
  }
}

/** `virsh domstate`, or undefined when it cannot be read. */
function stateOf(virsh: Virsh, vm: string): string | undefined {
  try {
    return virsh('domstate', vm).trim();
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
