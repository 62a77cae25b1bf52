/**
 * Remote state with locking, against a real PostgreSQL (its own cluster on a unix socket, see
 * postgres.ts) and the machine's libvirtd: a minimal stack (an isolated network, a pool, volumes)
 * with `PostgresBackend`, synthesized into two folders as two pipelines would, both `tofu init`ed
 * against the same database with the connection string in PG_CONN_STR only.
 *
 * - Two applies at once: while one holds the lock (it waits for its approval), the other fails on
 *   the lock; a `plan -lock=false` runs meanwhile; the first then completes and the state is
 *   complete and consistent (every resource in it and on the host, a fresh plan shows nothing).
 * - With `-lock-timeout`, the second apply waits for the lock instead and then finds nothing to do.
 * - A `plan -lock=false` running does not block an apply.
 */
import { ChildProcess, spawn, spawnSync } from 'child_process';
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import { PostgresBackend } from '../../lib';
import { Network } from '../../lib/generated/libvirt/network';
import { Pool } from '../../lib/generated/libvirt/pool';
import { LibvirtProvider } from '../../lib/generated/libvirt/provider';
import { Volume } from '../../lib/generated/libvirt/volume';
import { Postgres, postgresMissing } from './postgres';
import { SystemLibvirtd } from './system-libvirtd';
import { describeE2e, TOFU, tofuEnv, virsh } from './toolchain';

const STACK = 'pgstate';

interface StateStackProps {
  readonly uri: string;
  /** Prefix of every libvirt object's name, unique to the test run. */
  readonly prefix: string;
  readonly poolPath: string;
  readonly volumes: number;
}

/** An isolated network, a dir pool and `volumes` small volumes, the state in PostgreSQL. */
class StateStack extends TerraformStack {
  constructor(scope: Construct, id: string, props: StateStackProps) {
    super(scope, id);
    new PostgresBackend(this);
    const provider = new LibvirtProvider(this, 'libvirt', { uri: props.uri });
    new Network(this, 'network', { provider, name: `${props.prefix}-net` });
    const pool = new Pool(this, 'pool', { provider, name: `${props.prefix}-pool`, type: 'dir', target: { path: props.poolPath } });
    for (let i = 1; i <= props.volumes; i++) {
      new Volume(this, `volume-${i}`, { provider, pool: pool.name, name: `${props.prefix}-${i}.qcow2`, capacity: 1024 * 1024, target: { format: { type: 'qcow2' } } });
    }
  }
}

/** A tofu process running in the background, in its own process group. */
class Running {
  public stdout = '';
  public stderr = '';
  public exit: number | null | undefined = undefined;
  private readonly done: Promise<number | null>;

  constructor(public readonly child: ChildProcess) {
    child.stdout!.on('data', (d) => (this.stdout += d));
    child.stderr!.on('data', (d) => (this.stderr += d));
    this.done = new Promise((resolve) => child.on('exit', (code) => resolve((this.exit = code))));
  }

  public async waitForOutput(text: string, ms = 120_000): Promise<void> {
    const until = Date.now() + ms;
    while (!this.stdout.includes(text)) {
      if (this.exit !== undefined) throw new Error(`tofu exited (${this.exit}) before printing '${text}':\n${this.stdout}\n${this.stderr}`);
      if (Date.now() > until) throw new Error(`no '${text}' after ${ms / 1000} s:\n${this.stdout}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  public async finished(ms = 300_000): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`tofu still running after ${ms / 1000} s:\n${this.stdout}`)), ms);
    });
    try {
      return await Promise.race([this.done, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Ends the process group if it still runs (cleanup after a failed test); the group is ours. */
  public kill(): void {
    if (this.exit === undefined && this.child.pid) {
      try {
        process.kill(-this.child.pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }
}

const missingPostgres = postgresMissing();
describeE2e('remote state in PostgreSQL with locking (PostgresBackend)', () => {
  let daemon: SystemLibvirtd;
  let pg: Postgres;
  let work: string;
  let prefix: string;
  let applied = false;
  const background: Running[] = [];
  const dirs: Record<'a' | 'b', string> = { a: '', b: '' };

  const env = () => ({ ...tofuEnv(), PG_CONN_STR: pg.connStr });

  /** Synthesizes the stack into `<work>/<pipeline>` (as `cdktf synth` does) and returns its stack folder. */
  function synth(pipeline: 'a' | 'b', volumes: number): string {
    const app = new App({ outdir: path.join(work, pipeline) });
    new StateStack(app, STACK, { uri: daemon.uri, prefix, poolPath: path.join(work, 'pool'), volumes });
    app.synth();
    return (dirs[pipeline] = path.join(work, pipeline, 'stacks', STACK));
  }

  function tofu(dir: string, ...args: string[]): { status: number | null; output: string } {
    const r = spawnSync('setsid', [TOFU, ...args, '-no-color'], { cwd: dir, env: env(), encoding: 'utf8', timeout: 5 * 60 * 1000, maxBuffer: 64 * 1024 * 1024 });
    return { status: r.status, output: `${r.stdout}\n${r.stderr}` };
  }

  function tofuOk(dir: string, ...args: string[]): string {
    const r = tofu(dir, ...args);
    if (r.status !== 0) throw new Error(`tofu ${args.join(' ')} failed (exit ${r.status}):\n${r.output}`);
    return r.output;
  }

  function start(dir: string, ...args: string[]): Running {
    const running = new Running(spawn(TOFU, [...args, '-no-color'], { cwd: dir, env: env(), detached: true, stdio: ['pipe', 'pipe', 'pipe'] }));
    background.push(running);
    return running;
  }

  /** Names of the volumes in the test's pool on the host. */
  const volumesOnHost = () => virsh(daemon.uri, 'vol-list', '--pool', `${prefix}-pool`).split('\n').map((l) => l.trim().split(/\s+/)[0]).filter((n) => n.startsWith(prefix)).sort();

  /** Rows of the stack's state table: one per workspace. */
  const stateRows = () => pg.psql(pg.database, 'SELECT name FROM cdktf_pgstate.states ORDER BY name').split('\n').filter((l) => l !== '');

  /** Resources in the remote state, as `tofu state list` reads them from PostgreSQL. */
  const stateList = (dir: string) => tofuOk(dir, 'state', 'list').split('\n').map((l) => l.trim()).filter((l) => l !== '').sort();

  beforeAll(async () => {
    daemon = await SystemLibvirtd.ensure();
    pg = await Postgres.start();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-backend-e2e-'));
    fs.chmodSync(work, 0o755);
    prefix = `pgstate-${randomBytes(3).toString('hex')}`;
  });

  afterAll(async () => {
    for (const r of background) r.kill();
    try {
      if (applied) tofuOk(dirs.b, 'destroy', '-auto-approve', '-input=false', '-lock-timeout=60s');
    } finally {
      // Whatever a failed run left on the host, by the names only this run uses.
      if (daemon) {
        const has = (kind: string) => virsh(daemon.uri, kind, '--all', '--name').split('\n').map((l) => l.trim());
        if (has('pool-list').includes(`${prefix}-pool`)) {
          for (const v of volumesOnHost()) virsh(daemon.uri, 'vol-delete', '--pool', `${prefix}-pool`, v);
          try {
            virsh(daemon.uri, 'pool-destroy', `${prefix}-pool`);
          } catch {
            // inactive already
          }
          virsh(daemon.uri, 'pool-undefine', `${prefix}-pool`);
        }
        if (has('net-list').includes(`${prefix}-net`)) virsh(daemon.uri, 'net-undefine', `${prefix}-net`);
      }
      await pg?.stop();
      await daemon?.release();
      if (work) fs.rmSync(work, { recursive: true, force: true });
    }
  });

  test('the JSON names the pg backend and a schema, never the connection string; init reads it from PG_CONN_STR', () => {
    for (const pipeline of ['a', 'b'] as const) {
      const dir = synth(pipeline, 2);
      const text = fs.readFileSync(path.join(dir, 'cdk.tf.json'), 'utf8');
      expect(JSON.parse(text).terraform.backend).toEqual({ pg: { schema_name: 'cdktf_pgstate' } });
      expect(text).not.toContain('postgres://');
      expect(text).not.toContain(pg.dir);
      expect(tofuOk(dir, 'init', '-input=false')).toContain('Successfully configured the backend "pg"');
    }
  });

  test('two applies at once: one fails on the lock while the other holds it, a plan -lock=false runs meanwhile, the state ends complete', async () => {
    const first = start(dirs.a, 'apply', '-input=true');
    await first.waitForOutput('Enter a value:'); // planned, holding the lock, waiting for approval
    expect(Number(pg.psql(pg.database, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"))).toBeGreaterThan(0);

    const second = tofu(dirs.b, 'apply', '-auto-approve', '-input=false');
    expect(second.status).toBe(1);
    expect(second.output).toContain('Error acquiring the state lock');

    const planned = tofu(dirs.b, 'plan', '-lock=false', '-input=false', '-detailed-exitcode');
    expect(planned.output).toContain('Plan: 4 to add, 0 to change, 0 to destroy.');
    expect(planned.status).toBe(2); // changes, and not held up by the lock

    applied = true;
    first.child.stdin!.end('yes\n');
    expect(await first.finished()).toBe(0);
    expect(first.stdout).toContain('Apply complete! Resources: 4 added, 0 changed, 0 destroyed.');

    // Complete and consistent: read back from PostgreSQL by the other pipeline, and on the host.
    expect(stateRows()).toEqual(['default']);
    expect(stateList(dirs.b)).toEqual(['libvirt_network.network', 'libvirt_pool.pool', 'libvirt_volume.volume-1', 'libvirt_volume.volume-2']);
    expect(volumesOnHost()).toEqual([`${prefix}-1.qcow2`, `${prefix}-2.qcow2`]);
    const again = tofu(dirs.b, 'plan', '-input=false', '-detailed-exitcode');
    expect(again.output).toContain('No changes.');
    expect(again.status).toBe(0);
  });

  test('with -lock-timeout, the second apply waits for the lock, then finds the work done', async () => {
    synth('a', 3);
    synth('b', 3);
    const first = start(dirs.a, 'apply', '-input=true');
    await first.waitForOutput('Enter a value:');
    const waiting = start(dirs.b, 'apply', '-auto-approve', '-input=false', '-lock-timeout=300s');
    await new Promise((r) => setTimeout(r, 5000));
    expect(waiting.exit).toBeUndefined(); // still waiting for the lock

    first.child.stdin!.end('yes\n');
    expect(await first.finished()).toBe(0);
    expect(first.stdout).toContain('Apply complete! Resources: 1 added, 0 changed, 0 destroyed.');
    expect(await waiting.finished()).toBe(0);
    expect(waiting.stdout).toContain('No changes.');
    expect(waiting.stdout).toContain('Apply complete! Resources: 0 added, 0 changed, 0 destroyed.');
    expect(stateList(dirs.a)).toContain('libvirt_volume.volume-3');
    expect(volumesOnHost()).toEqual([1, 2, 3].map((i) => `${prefix}-${i}.qcow2`));
  });

  test('a plan -lock=false that is running does not block an apply', async () => {
    synth('b', 2);
    const plan = start(dirs.a, 'plan', '-lock=false', '-input=false');
    expect(plan.exit).toBeUndefined(); // running when the apply starts
    const apply = tofu(dirs.b, 'apply', '-auto-approve', '-input=false');
    expect(apply.output).toContain('Apply complete! Resources: 0 added, 0 changed, 1 destroyed.');
    expect(apply.status).toBe(0);
    expect(await plan.finished()).toBe(0);
    expect(volumesOnHost()).toEqual([1, 2].map((i) => `${prefix}-${i}.qcow2`));
    expect(stateList(dirs.b)).not.toContain('libvirt_volume.volume-3');
    expect(stateRows()).toEqual(['default']);
  });
}, missingPostgres);
