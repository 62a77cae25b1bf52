/**
 * The decision record on a two-host lab with the real test guest, the mail-service stack and its
 * state, mutex and record in one real PostgreSQL:
 *
 * 1. a controller is killed (SIGKILL) right after it fenced a dead host, in the middle of the
 *    failover; another controller, with another id (as a restarted one with the default id), reads
 *    the record, does not fence again and completes the failover: one fence, one apply with
 *    changes, the incident closed with every step;
 * 2. a person's reconcile of the code as committed (the host active) stops, saying what the
 *    controller decided and how to accept or override it; the database holds the record;
 * 3. a deploy from the code that reads the record (`record --out`, context
 *    libvirt-cluster:decision-record) keeps the failover: reconcile passes and the plan is empty.
 *
 * Controllers are `node --import tsx lib/ops/cli.ts controller` processes (the pid killed is the
 * controller itself); the lab's power switch is served by this process and counts every request.
 */
import { ChildProcess, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { pathToFileURL } from 'url';
import type { ControllerEvent } from '../../lib/ops/controller';
import { RESOURCE_LOCK_CONTEXT } from '../../lib/constructs/stack-placement';
import { DECISION_RECORD_CONTEXT, emptyRecord, revise } from '../../lib/core/decision-record';
import { PostgresDecisionStore } from '../../lib/ops/decision-record';
import { Lab } from '../lab/lab';
import { HOSTS, NIGHT, readEventLog, REPO, siteEnv, siteMissing, TSX, writeSite } from './controller-site';
import { Postgres } from './postgres';
import { describeE2e, drillTest, TOFU, tofu, tofuPlan } from './toolchain';

const INSTANT = '2026-11-26T03:00:00+01:00';
/** tsx as node's loader, so that the pid of a controller is the controller itself (the tsx command runs it as a child). */
const TSX_LOADER = pathToFileURL(path.join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
const why = siteMissing();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describeE2e('the decision record: shared by controllers, seen by reconcile and deploys', () => {
  let theLab: Lab;
  let postgres: Postgres;
  let work: string;
  let events: string;
  const durations: string[] = [];
  const children: ChildProcess[] = [];
  const drill = drillTest(durations);
  const host = (name: string) => theLab.host(name);
  let victim: string;
  let survivor: string;

  const appEnv = (): Record<string, string> => siteEnv(theLab, work);
  const cli = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, ['--import', TSX_LOADER, path.join(REPO, 'lib', 'ops', 'cli.ts'), ...args], { cwd: work, env: { ...process.env, ...appEnv(), TERRAFORM_BINARY_NAME: TOFU, ...env }, encoding: 'utf8', timeout: 300_000 });
  /** A synth of the site's app from the repository's code into `outdir`, with `context`; its output. */
  const synth = (outdir: string, context: Record<string, string> = {}) => {
    const run = spawnSync(TSX, ['main.ts'], {
      cwd: work,
      env: { ...process.env, ...appEnv(), CDKTF_OUTDIR: outdir, CDKTF_CONTEXT_JSON: JSON.stringify({ 'libvirt-cluster:instant': INSTANT, [RESOURCE_LOCK_CONTEXT.frozen]: false, ...context }) },
      encoding: 'utf8',
    });
    expect(run.status).toBe(0);
    return `${run.stdout}${run.stderr}`;
  };

  function startController(id: string): ChildProcess {
    const config = {
      stacks: ['mail-service'],
      hosts: Object.fromEntries(HOSTS.map((h) => [h, { uri: host(h).uri, migrateUri: 'tcp://127.0.0.1', fence: theLab.fenceConfig(h) }])),
      unattended: ['failover'],
      membership: { probesOnly: true }, // two hosts, no third vote: the probes alone, accepted by name
      eventLog: events,
      engine: TOFU,
      env: appEnv(),
    };
    const file = path.join(work, `controller-${id}.json`);
    fs.writeFileSync(file, JSON.stringify(config, null, 2));
    const log = fs.openSync(path.join(work, `controller-${id}.out`), 'a');
    const child = spawn(process.execPath, ['--import', TSX_LOADER, path.join(REPO, 'lib', 'ops', 'cli.ts'), 'controller', '--config', file, '--id', id, '--clock-offset-seconds', ((Date.parse(INSTANT) - Date.now()) / 1000).toFixed(3)], {
      cwd: work,
      env: { ...process.env, CHECKPOINT_DISABLE: '1', TF_IN_AUTOMATION: '1' },
      stdio: ['ignore', log, log],
    });
    fs.closeSync(log); // the child has its own copy
    children.push(child);
    return child;
  }
  async function stop(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    const killed = setTimeout(() => child.kill('SIGKILL'), 120_000);
    await exited;
    clearTimeout(killed);
  }

  const readEvents = (): ControllerEvent[] => readEventLog(events);
  async function waitForEvent(match: (e: ControllerEvent) => boolean, what: string, ms: number): Promise<ControllerEvent> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = readEvents().find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}; event log:\n${readEvents().slice(-30).map((e) => JSON.stringify(e)).join('\n')}`);
      await sleep(100);
    }
  }
  const changed = (e: ControllerEvent) => e.event === 'applied' && !/Resources: 0 added, 0 changed, 0 destroyed/.test(e.detail);
  /** The record as the database holds it. */
  const stored = () => JSON.parse(postgres.psql(postgres.database, "SELECT record::text FROM cdktf_mail_service.cdktf_libvirt_cluster_decisions WHERE name = 'record'"));
  const where = () => Object.fromEntries(HOSTS.filter((h) => host(h).isPoweredOn()).flatMap((h) => host(h).runningDomains().map((vm) => [vm, h])));

  beforeAll(async () => {
    postgres = await Postgres.start();
    process.env.PG_CONN_STR = postgres.connStr; // the engine, the controllers and reconcile read it; never in a file
    theLab = await Lab.start({ hosts: 2 });
    work = writeSite(theLab);
    events = path.join(work, 'controller-events.jsonl');
  });

  afterAll(async () => {
    for (const child of children) await stop(child, 'SIGTERM');
    await theLab?.teardown();
    await postgres?.stop();
    delete process.env.PG_CONN_STR;
    console.log(durations.join('\n'));
  });

  drill('the PostgreSQL store: a write succeeds only at the revision read; of two writers that read the same revision, one wins', () => {
    const store = new PostgresDecisionStore('drill_cas', postgres.connStr);
    const other = new PostgresDecisionStore('drill_cas', postgres.connStr);
    expect(store.load()).toBeUndefined();
    const first = revise(emptyRecord({ hostStates: {}, poweredOff: [] as string[] }), { decisions: { hostStates: { h2: 'failed' }, poweredOff: [] } }, "a'; --", Date.now(), "h2's fence");
    expect([store.write(first, 0), other.write(first, 0)]).toEqual([true, false]);
    const mine = revise(first, { decisions: { hostStates: {}, poweredOff: [] } }, 'a', Date.now());
    const theirs = revise(first, { decisions: { hostStates: { h2: 'standby' }, poweredOff: ['h2'] } }, 'b', Date.now());
    expect([other.write(theirs, 1), store.write(mine, 1)]).toEqual([true, false]);
    expect(store.load()).toEqual(theirs);
    expect(postgres.psql(postgres.database, 'SELECT name, revision FROM drill_cas.cdktf_libvirt_cluster_decisions')).toBe('record|2');
  });

  drill('deploy by hand: the directory and two mail replicas run', () => {
    const out = path.join(work, 'cdktf.out');
    synth(out);
    const stackDir = path.join(out, 'stacks', 'mail-service');
    tofu(stackDir, ['init', '-input=false']);
    tofu(stackDir, ['apply', '-auto-approve', '-input=false']);
    expect(Object.keys(where()).sort()).toEqual(NIGHT);
  });

  drill('a controller killed right after its fence: another controller completes the failover from the record, without a second fence', async () => {
    const a = startController('a');
    await waitForEvent((e) => e.controller === 'a' && e.event === 'enabled', 'controller a to start', 120_000);
    const before = where();
    victim = before['directory-1'];
    survivor = HOSTS.find((h) => h !== victim)!;
    await sleep(3000); // a has seen both hosts answer
    const killed = Date.now();
    await host(victim).stopHard();
    const fenced = await waitForEvent((e) => e.controller === 'a' && e.event === 'fenced', `a to fence ${victim}`, 60_000);
    await stop(a, 'SIGKILL'); // mid-failover: nothing of the deploy is done
    const left = stored();
    console.log(`controller a killed ${((Date.now() - Date.parse(fenced.time)) / 1000).toFixed(2)} s after it fenced ${victim}; the record then:\n${JSON.stringify({ hostStates: left.decisions.hostStates, incidents: left.incidents }, null, 1)}`);
    expect(left.decisions.hostStates).toEqual({ [victim]: 'failed' });
    expect(left.incidents).toHaveLength(1);
    expect(left.incidents[0].steps.slice(0, 2).map((s: { name: string; state: string; by: string }) => `${s.name} ${s.state} ${s.by}`)).toEqual(['fence off started a', 'fence off done a']);
    expect(readEvents().some((e) => e.controller === 'a' && changed(e))).toBe(false);

    const restarted = Date.now();
    const c = startController('c');
    const start = await waitForEvent((e) => e.controller === 'c' && e.event === 'start' && /^decision record:/.test(e.detail), 'controller c to read the record', 120_000);
    expect(start.detail).toMatch(new RegExp(`^decision record: PostgreSQL table cdktf_mail_service\\.cdktf_libvirt_cluster_decisions, revision \\d+; incidents in progress: failover of ${victim} by a, last step (fence off done|deploy mail-service started)$`));
    const applied = await waitForEvent((e) => e.controller === 'c' && changed(e), 'controller c to complete the failover', 240_000);
    console.log(`kill of ${victim} → failover applied by c: ${((Date.parse(applied.time) - killed) / 1000).toFixed(1)} s (c started ${((restarted - killed) / 1000).toFixed(1)} s after the kill): ${applied.detail}`);
    expect(where()).toEqual(Object.fromEntries(Object.keys(before).map((vm) => [vm, survivor])));

    // Exactly one fence: one `off` request to the power switch, one fenced event, none from c.
    const offs = theLab.powerRequests().filter((r) => r.request.startsWith(`off ${victim}`));
    expect(offs).toHaveLength(1);
    expect(readEvents().filter((e) => e.event === 'fenced').map((e) => e.controller)).toEqual(['a']);
    const done = stored();
    expect(done.incidents).toEqual([]);
    const steps = done.closed[done.closed.length - 1].steps.map((s: { name: string; state: string; by: string }) => `${s.name} ${s.state} ${s.by}`);
    console.log(`the incident as closed in the record:\n  ${steps.join('\n  ')}`);
    expect(steps.slice(0, 2)).toEqual(['fence off started a', 'fence off done a']);
    expect(steps.slice(-2)).toEqual(['deploy mail-service started c', 'deploy mail-service done c']);
    expect(steps.filter((s: string) => s.startsWith('fence'))).toHaveLength(2);
    await stop(c, 'SIGTERM');
    console.log(`event log (verbatim):\n${readEvents().filter((e) => ['start', 'decided', 'fenced', 'resumed', 'synth', 'applied', 'waiting'].includes(e.event)).map((e) => JSON.stringify(e)).join('\n')}`);
  });

  drill("a person's reconcile of the code as committed (the host active) stops, saying what was decided and how to accept or override it", () => {
    const out = path.join(work, 'cdktf.out');
    synth(out);
    const stackDir = path.join(out, 'stacks', 'mail-service');
    const run = cli(['reconcile', '--stack-dir', stackDir, ...HOSTS.map((h) => `--host=${h}=${host(h).uri}`)]);
    console.log(`reconcile of the code as committed (exit ${run.status}):\n${run.stdout}${run.stderr}`);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('reconcile failed: the code contradicts a live decision of the controllers (PostgreSQL table cdktf_mail_service.cdktf_libvirt_cluster_decisions); nothing done, do not apply:');
    expect(run.stderr).toContain(`${victim} was fenced (powered off) and declared failed: its VMs were restarted elsewhere by controller a at `);
    expect(run.stderr).toContain(`and the synthesized code says ${victim} is active`);
    expect(run.stderr).toContain(`reconcile --override-decision ${victim}`);
    expect(where()).toEqual(Object.fromEntries(NIGHT.map((vm) => [vm, survivor])));
  });

  drill('a deploy that reads the record keeps the failover: the synth applies the decided state with a warning, reconcile passes, the plan is empty', () => {
    const stackDir = path.join(work, 'cdktf.out', 'stacks', 'mail-service');
    const file = path.join(work, 'decisions.json');
    const pulled = cli(['record', '--stack-dir', stackDir, '--out', file]);
    console.log(pulled.stdout);
    expect(pulled.status).toBe(0);
    expect(pulled.stdout).toContain(`host ${victim}: failed`);
    const out = path.join(work, 'cdktf.out.record');
    synth(out, { [DECISION_RECORD_CONTEXT]: file });
    const recordedDir = path.join(out, 'stacks', 'mail-service');
    expect(fs.readFileSync(path.join(recordedDir, 'placement-report.md'), 'utf8')).toContain(`host ${victim} is failed, not active as in code`);
    tofu(recordedDir, ['init', '-input=false']);
    const reconciled = cli(['reconcile', '--stack-dir', recordedDir, ...HOSTS.map((h) => `--host=${h}=${host(h).uri}`)]);
    console.log(`reconcile with the record (exit ${reconciled.status}):\n${reconciled.stdout}${reconciled.stderr}`);
    expect(reconciled.status).toBe(0);
    const plan = tofuPlan(recordedDir, ['-lock=false', '-no-color']);
    console.log(`plan of the deploy that read the record: exit ${plan.code} (0: no changes)\n${plan.output.split('\n').filter((l) => /No changes|Plan:|will be/.test(l)).join('\n')}`);
    expect(plan.code).toBe(0);
    expect(where()).toEqual(Object.fromEntries(NIGHT.map((vm) => [vm, survivor])));
  });
}, why);
