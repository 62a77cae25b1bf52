/**
 * Controller drills: `cdktf-libvirt-cluster controller` processes, unattended, on a two-host lab
 * with the real test guest, the mail-service stack and its state in PostgreSQL. The drills run
 * one after the other on one deployment:
 *
 * 1. a host is killed (two controllers run, sharing the stack's decision record): it is detected,
 *    fenced once, and every priority VM runs on the survivor in start order with its data; exactly
 *    one controller applies; recovery time printed (kill → the last guest's first report on the
 *    survivor);
 * 2. the host returns, and is put back in service after answering for failureAfterSeconds;
 * 3. a host that stops answering (frozen) and cannot be fenced: nothing restarts, the log says
 *    why; once the fence works, the failover completes;
 * 4. schedule boundaries 08:00 and 20:00 Europe/Zurich on the controller's clock (offset);
 * 5. standby: a candidate is powered off, and woken when the other host dies.
 *
 * Controllers are child processes (tsx lib/ops/cli.ts controller); the lab's power switch is
 * served by this process, so the test never blocks its event loop while a controller may fence.
 */
import { ChildProcess, spawn, spawnSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { ControllerEvent } from '../../lib/ops/controller';
import { RESOURCE_LOCK_CONTEXT } from '../../lib/constructs/stack-placement';
import { Lab } from '../lab/lab';
import { HOSTS, NIGHT, readEventLog, REPO, siteEnv, siteMissing, TSX, writeSite } from './controller-site';
import { Postgres } from './postgres';
import { GuestReport, guestReports, waitForGuestReport } from './test-guest';
import { describeE2e, drillTest, TOFU, tofu } from './toolchain';

const DAY = '2026-11-26';
const why = siteMissing();

/** Seconds to add to the real clock so that the controller's clock reads `local` (Zurich, winter) on DAY now. */
const offsetTo = (local: string) => (Date.parse(`${DAY}T${local}+01:00`) - Date.now()) / 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

interface RunningController {
  readonly id: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  output: string;
}

describeE2e('controller drills on a two-host lab', () => {
  let theLab: Lab;
  let postgres: Postgres;
  let work: string;
  let events: string;
  const durations: string[] = [];
  const controllers: RunningController[] = [];
  const drill = drillTest(durations);
  const host = (name: string) => theLab.host(name);

  /** Where each VM runs; throws when one runs twice. */
  const where = (): Record<string, string> => theLab.whereRunning(HOSTS);
  /** Checks every second, until stopped, that no VM runs twice. */
  let twice: string | undefined;
  let watching = true;
  const watchTwice = async () => {
    while (watching) {
      try {
        where();
      } catch (err) {
        twice = (err as Error).message;
      }
      await sleep(1000);
    }
  };

  const appEnv = (): Record<string, string> => siteEnv(theLab, work);

  /** Starts a controller process with the site's configuration plus `over`; its clock reads `local` on DAY. */
  function startController(id: string, local: string, over: { unattended?: string[]; env?: Record<string, string> } = {}): RunningController {
    const config = {
      stacks: ['mail-service'],
      hosts: Object.fromEntries(HOSTS.map((h) => [h, { uri: host(h).uri, migrateUri: 'tcp://127.0.0.1', fence: theLab.fenceConfig(h) }])),
      unattended: over.unattended ?? ['failover'],
      // Two hosts and no third vote: these drills run on the probes alone, accepted by name (the
      // corosync drills are test/e2e/quorum.e2e.test.ts).
      membership: { probesOnly: true },
      eventLog: events,
      engine: TOFU,
      env: { ...appEnv(), ...(over.env ?? {}) },
    };
    const file = path.join(work, `controller-${id}.json`);
    fs.writeFileSync(file, JSON.stringify(config, null, 2));
    const child = spawn(TSX, [path.join(REPO, 'lib', 'ops', 'cli.ts'), 'controller', '--config', file, '--id', id, '--clock-offset-seconds', offsetTo(local).toFixed(3)], {
      cwd: work,
      env: { ...process.env, CHECKPOINT_DISABLE: '1', TF_IN_AUTOMATION: '1' },
    });
    const running: RunningController = { id, child, exited: new Promise((r) => child.on('exit', (code) => r(code))), output: '' };
    const log = fs.createWriteStream(path.join(work, `controller-${id}.out`));
    child.stdout!.on('data', (d) => {
      running.output += d;
      log.write(d);
    });
    child.stderr!.on('data', (d) => {
      running.output += d;
      log.write(d);
    });
    controllers.push(running);
    return running;
  }

  async function stopController(c: RunningController): Promise<void> {
    if (c.child.exitCode === null) c.child.kill('SIGTERM');
    const killed = setTimeout(() => c.child.kill('SIGKILL'), 120_000);
    await c.exited;
    clearTimeout(killed);
    controllers.splice(controllers.indexOf(c), 1);
  }

  const readEvents = (id?: string): ControllerEvent[] => readEventLog(events).filter((e) => id === undefined || e.controller === id);
  /** Waits for an event matching `match` after `since` (event index); returns it. */
  async function waitForEvent(match: (e: ControllerEvent) => boolean, what: string, ms: number, since = 0): Promise<ControllerEvent> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = readEvents().slice(since).find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}; controllers said:\n${controllers.map((c) => `--- ${c.id}\n${c.output.split('\n').slice(-40).join('\n')}`).join('\n')}`);
      await sleep(250);
    }
  }
  const changed = (e: ControllerEvent) => e.event === 'applied' && !/Resources: 0 added, 0 changed, 0 destroyed/.test(e.detail);
  const dataChecksums = () => {
    const dir = path.join(theLab.sharedDir, 'pool');
    return Object.fromEntries(fs.readdirSync(dir).filter((f) => /-data\.qcow2$/.test(f)).sort().map((f) => [f, createHash('sha256').update(fs.readFileSync(path.join(dir, f))).digest('hex')]));
  };
  /** The start time of a VM's QEMU process, in clock ticks since boot (/proc/<pid>/stat field 22). */
  const startedAt = (h: string, vm: string) => Number(fs.readFileSync(`/proc/${host(h).qemuPid(vm)}/stat`, 'utf8').split(') ')[1].split(' ')[19]);
  const verbatim = (id: string, from: number) => readEvents().slice(from).filter((e) => e.controller === id).map((e) => JSON.stringify(e)).join('\n');

  beforeAll(async () => {
    postgres = await Postgres.start();
    process.env.PG_CONN_STR = postgres.connStr; // the engine and every controller read it; never in a file
    theLab = await Lab.start({ hosts: 2 });
    work = writeSite(theLab);
    events = path.join(work, 'controller-events.jsonl');
  });

  afterAll(async () => {
    watching = false;
    for (const c of [...controllers]) await stopController(c);
    await theLab?.teardown();
    await postgres?.stop();
    delete process.env.PG_CONN_STR;
    console.log(durations.join('\n'));
  });

  drill('deploy at 03:00 by hand: directory and two mail replicas, each guest reports', async () => {
    const out = path.join(work, 'cdktf.out');
    const synth = spawnSync(TSX, ['main.ts'], {
      cwd: work,
      env: { ...process.env, ...appEnv(), CDKTF_OUTDIR: out, CDKTF_CONTEXT_JSON: JSON.stringify({ 'libvirt-cluster:instant': `${DAY}T03:00:00+01:00`, [RESOURCE_LOCK_CONTEXT.frozen]: false }) },
      encoding: 'utf8',
    });
    expect(synth.stderr + synth.stdout).not.toMatch(/Error/);
    const stackDir = path.join(out, 'stacks', 'mail-service');
    tofu(stackDir, ['init', '-input=false']);
    tofu(stackDir, ['apply', '-auto-approve', '-input=false']);
    expect(Object.keys(where()).sort()).toEqual(NIGHT);
    for (const [vm, h] of Object.entries(where())) await waitForGuestReport(host(h).consoleLog(vm), (r) => r.instanceId === vm, 120_000);
    void watchTwice();
  });

  drill('a host dies with two controllers running: fenced, every priority VM runs on the survivor in start order with its data, exactly one controller applies', async () => {
    const a = startController('a', '03:00:00');
    const b = startController('b', '03:00:00');
    for (const c of ['a', 'b']) await waitForEvent((e) => e.controller === c && e.event === 'enabled', `controller ${c} to start`, 120_000);
    const before = where();
    const victim = before['directory-1'];
    const survivor = HOSTS.find((h) => h !== victim)!;
    const moving = Object.keys(before).filter((vm) => before[vm] === victim).sort();
    const boots = Object.fromEntries(moving.map((vm) => [vm, guestReports(host(victim).consoleLog(vm)).pop()!.bootId]));
    const checksums = dataChecksums();
    await sleep(3000); // both controllers have seen both hosts answer
    const from = readEvents().length;

    const killed = Date.now();
    await host(victim).stopHard();
    const reports: Record<string, GuestReport> = {};
    const seen: Record<string, number> = {};
    await Promise.all(
      moving.map(async (vm) => {
        reports[vm] = await waitForGuestReport(host(survivor).consoleLog(vm), (r) => r.instanceId === vm && r.bootId !== boots[vm], 180_000);
        seen[vm] = Date.now();
      }),
    );
    const recovery = Math.max(...Object.values(seen)) - killed;
    const mine = readEvents().slice(from);
    const at = (match: (e: ControllerEvent) => boolean) => {
      const e = mine.find(match);
      return e ? seconds(Date.parse(e.time) - killed) : '-';
    };
    console.log(
      `recovery time (kill of ${victim} → the last priority VM's guest reports on ${survivor}): ${seconds(recovery)}\n` +
        `  ${moving.map((vm) => `${vm} ${seconds(seen[vm] - killed)}`).join(', ')}\n` +
        `  fenced at ${at((e) => e.event === 'fenced')}, synth done ${at((e) => e.event === 'synth')}, reconcile done ${at((e) => e.event === 'reconcile')}, applied ${at(changed)}`,
    );
    expect(where()).toEqual(Object.fromEntries(Object.keys(before).map((vm) => [vm, survivor])));
    expect(dataChecksums()).toEqual(checksums);
    // Start order: the directory before the mail replicas that start after it.
    for (const vm of moving.filter((v) => v.startsWith('mail-'))) if (moving.includes('directory-1')) expect(startedAt(survivor, 'directory-1')).toBeLessThanOrEqual(startedAt(survivor, vm));
    // One shared decision record: exactly one controller fenced (one `off` to the switch), exactly one applied a change.
    await sleep(8_000); // the other controller's cycles after the failover
    const applied = readEvents().slice(from).filter(changed);
    expect(applied.length).toBe(1);
    expect(readEvents().slice(from).filter((e) => e.event === 'fenced')).toHaveLength(1);
    expect(theLab.powerRequests().filter((r) => r.request.startsWith(`off ${victim}`))).toHaveLength(1);
    expect(twice).toBeUndefined();
    const applyLog = path.join(work, 'cdktf.out.controller', applied[0].controller, 'stacks', 'mail-service', 'controller-apply.log');
    console.log(`the failover apply (${applied[0].controller}):\n${fs.readFileSync(applyLog, 'utf8').split('\n').filter((l) => /Creat|Apply complete/.test(l)).join('\n')}`);
    console.log(`event log of controller ${applied[0].controller} (verbatim):\n${verbatim(applied[0].controller, from)}`);
    console.log(`event log of controller ${applied[0].controller === 'a' ? 'b' : 'a'} (verbatim):\n${verbatim(applied[0].controller === 'a' ? 'b' : 'a', from)}`);
    expect(recovery).toBeLessThan(90_000);
    void a;
    void b;
  });

  drill('the dead host returns: back in service after answering for failureAfterSeconds; nothing moves, nothing runs twice', async () => {
    const before = where();
    const victim = HOSTS.find((h) => !host(h).isPoweredOn())!;
    const from = readEvents().length;
    const started = Date.now();
    await host(victim).restart();
    await waitForEvent(changed, `a controller to deploy ${victim}'s return`, 120_000, from);
    await sleep(8_000); // the other controller's cycles after it
    const returned = readEvents().slice(from);
    expect(returned.filter(changed).length).toBe(1);
    // Decided once, in the shared record: the other controller finds it decided and applied.
    expect(returned.filter((e) => e.event === 'decided' && /back in service/.test(e.detail))).toHaveLength(1);
    const back = returned.find((e) => e.event === 'decided' && /back in service/.test(e.detail))!;
    expect(Date.parse(back.time) - started).toBeGreaterThanOrEqual(10_000);
    expect(where()).toEqual(before);
    expect(host(victim).runningDomains()).toEqual([]);
    expect(twice).toBeUndefined();
    console.log(`${victim} back in service ${seconds(Date.parse(returned.find(changed)!.time) - started)} after it booted`);
    await stopController(controllers.find((c) => c.id === 'b')!);
  });

  drill('a host stops answering and cannot be fenced: nothing restarts, the log says why; once fencing works the failover completes', async () => {
    const before = where();
    const frozen = before['mail-1'];
    const other = HOSTS.find((h) => h !== frozen)!;
    const from = readEvents().length;
    theLab.setFenceFailure(frozen, true);
    const started = Date.now();
    host(frozen).freeze();
    const refused = await waitForEvent((e) => e.controller === 'a' && e.event === 'refused' && e.host === frozen, 'the refusal', 60_000, from);
    await sleep(8_000); // a few more cycles of failed fences
    const during = readEvents().slice(from);
    console.log(`while ${frozen} cannot be fenced (${seconds(Date.now() - started)} after the freeze):\n${during.filter((e) => ['observed', 'decided', 'fence-failed', 'refused'].includes(e.event)).slice(0, 8).map((e) => JSON.stringify(e)).join('\n')}`);
    expect(refused.detail).toMatch(new RegExp(`^${frozen} has not answered for [\\d.]+ s \\(.*\\) but is not confirmed off \\(fence action=off failed: exit 1: .*\\): nothing of it is restarted`));
    expect(during.filter((e) => e.event === 'fence-failed').length).toBeGreaterThanOrEqual(3);
    expect(during.some((e) => ['synth', 'reconcile', 'applied'].includes(e.event))).toBe(false);
    expect(host(other).runningDomains().filter((vm) => before[vm] === frozen)).toEqual([]);

    const allowed = Date.now();
    theLab.setFenceFailure(frozen, false);
    const moved = Object.keys(before).filter((vm) => before[vm] === frozen);
    await waitForEvent((e) => e.controller === 'a' && changed(e), 'the failover once fenced', 180_000, from);
    expect(host(frozen).isPoweredOn()).toBe(false);
    expect(Object.keys(where()).sort()).toEqual(Object.keys(before).sort());
    for (const vm of moved) expect(where()[vm]).toBe(other);
    console.log(`fence allowed → ${moved.join(', ')} running on ${other}: ${seconds(Date.now() - allowed)}`);
    expect(twice).toBeUndefined();

    const back = readEvents().length;
    await host(frozen).restart();
    await waitForEvent((e) => e.controller === 'a' && e.event === 'applied', `${frozen}'s return`, 120_000, back);
    await stopController(controllers.find((c) => c.id === 'a')!);
  });

  drill('schedule: the third mail replica appears within 30 s of 08:00 Europe/Zurich (controller clock), and goes at 20:00', async () => {
    for (const [local, boundary, expectMail3] of [['07:59:45', '08:00', true], ['19:59:45', '20:00', false]] as const) {
      const from = readEvents().length;
      // failover by the controller's configuration, schedule switches by the stack itself.
      const c = startController('s', local, { env: { DRILL_UNATTENDED: 'schedule' } });
      const enabled = await waitForEvent((e) => e.controller === 's' && e.event === 'enabled', 'the start of controller s', 120_000, from);
      expect(enabled.detail).toBe('failover: on (controller configuration); schedule: on (stack (cluster cluster)); standby-power: off');
      const applied = await waitForEvent((e) => e.controller === 's' && changed(e), `the switch at ${boundary}`, 120_000, from);
      const pinned = readEvents().slice(from).find((e) => e.controller === 's' && /window boundary/.test(e.detail))!;
      const at = Date.parse(`${DAY}T${boundary}:00+01:00`);
      expect(pinned.detail).toContain(`instant pinned to ${new Date(at).toISOString()}`);
      const late = Date.parse(applied.clock!) - at;
      console.log(`${boundary}: ${pinned.detail}; applied at controller clock ${applied.clock} (${seconds(late)} after ${boundary}): ${applied.detail}`);
      expect(late).toBeLessThan(30_000);
      expect(Object.keys(where()).includes('mail-3')).toBe(expectMail3);
      await stopController(c);
    }
    expect(twice).toBeUndefined();
  });

  drill('standby: a candidate is powered off, and woken when the other host dies', async () => {
    const from = readEvents().length;
    const c = startController('p', '20:05:00', { unattended: ['failover', 'standby-power'] });
    const fenced = await waitForEvent((e) => e.controller === 'p' && e.event === 'fenced' && /standby/.test(e.detail), 'a standby candidate powered off', 120_000, from);
    const sleeping = fenced.host!;
    const active = HOSTS.find((h) => h !== sleeping)!;
    expect(host(sleeping).isPoweredOn()).toBe(false);
    expect(Object.values(where()).every((h) => h === active)).toBe(true);
    console.log(`${sleeping} in standby and powered off ${seconds(Date.parse(fenced.time) - Date.parse(readEvents().slice(from).find((e) => e.controller === 'p')!.time))} after the controller started`);

    const before = where();
    const killed = Date.now();
    const kill = readEvents().length;
    await host(active).stopHard();
    await waitForEvent((e) => e.controller === 'p' && changed(e), `the failover to the woken ${sleeping}`, 240_000, kill);
    expect(where()).toEqual(Object.fromEntries(Object.keys(before).map((vm) => [vm, sleeping])));
    const woke = readEvents().slice(kill).find((e) => e.event === 'fenced' && e.host === sleeping)!;
    console.log(`kill of ${active} → ${sleeping} powered on ${seconds(Date.parse(woke.time) - killed)} → every VM running on ${sleeping}: ${seconds(Date.now() - killed)}`);
    console.log(`event log of controller p (verbatim):\n${verbatim('p', kill)}`);
    expect(twice).toBeUndefined();
    await stopController(c);
  });
}, why);
