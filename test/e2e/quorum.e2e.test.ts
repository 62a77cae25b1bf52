/**
 * Quorum drills: controllers whose membership and quorum come from Corosync, on a three-host lab
 * with the real test guest. One corosync node per lab host and one per controller (c1, c2), each in
 * a network namespace this test made (test/lab/corosync.ts): 5 votes, quorum 3. Each controller
 * runs in its node's namespace and probes the hosts over that network (libvirt relayed to the
 * hosts' sockets), so a cut link cuts both its corosync and its probes. The drills, in order, on
 * one deployment (three replicas of `web`, one per host, state in a local file):
 *
 * 1. the controller's own link is cut: its partition is not quorate, nothing is fenced;
 * 2. a 1-of-3 partition ({h1, h2, c1} | {h3, c2}): the majority's controller fences h3 (confirmed
 *    by status) and restarts its VM on the survivors; the minority's controller does nothing;
 * 3. libvirtd killed on a healthy host while its guest runs: corosync still counts the host, so it
 *    is not fenced, the guest runs on with the same boot id;
 * 4. a fence agent that lies (off exits 0, status says on): nothing restarts, the log says why.
 *
 * Each prints its time, and the event log lines the docs quote.
 */
import { ChildProcess, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import type { ControllerEvent } from '../../lib/ops/controller';
import { RESOURCE_LOCK_CONTEXT } from '../../lib/constructs/stack-placement';
import { CorosyncCluster } from '../lab/corosync';
import { Lab, labPrerequisites } from '../lab/lab';
import { guestDomainType, guestReports, testGuestImage, waitForGuestReport } from './test-guest';
import { describeE2e, drillTest, TOFU, TOFU_RC, tofu } from './toolchain';

const REPO = path.join(__dirname, '..', '..');
const TSX = path.join(REPO, 'node_modules', '.bin', 'tsx');
const HOSTS = ['h1', 'h2', 'h3'];
const lab = labPrerequisites();
const guest = testGuestImage();
const corosync = spawnSync('corosync', ['-v'], { encoding: 'utf8' }).status === 0 ? undefined : 'corosync is not installed (scripts/toolchain.sh installs it)';
const why = !lab.ok ? `lab unavailable: ${lab.reason}` : !guest.ok ? `no test guest: ${guest.reason}` : corosync;

/** Detection: the timings every controller of this file runs with. */
const TIMING = { pollSeconds: 1, failureAfterSeconds: 6, probeTimeoutSeconds: 2, fenceTimeoutSeconds: 6, repeatWarningSeconds: 5 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Three hosts, one failure tolerated, three replicas of web (one per host while all are up). */
const APP = (repo: string) => `
import { App, LocalBackend, TerraformStack } from '${repo}/node_modules/cdktf';
import { AntiAffinity, Cluster, Duration, FailoverGroup, Host, HostState, Image, RestartPriority, Size } from '${repo}/lib';

const app = new App();
const stack = new TerraformStack(app, 'quorum');
new LocalBackend(stack, { path: process.env.DRILL_STATE! });
const uris = Object.fromEntries(process.env.LIBVIRT_HOSTS!.split(',').map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]));
const capacity = { cores: 4, memory: Size.gibibytes(2), reservedMemory: Size.mebibytes(256) };
const hosts = ['h1', 'h2', 'h3'].map((h) => new Host(stack, h, { uri: uris[h], domainType: process.env.LIBVIRT_DOMAIN_TYPE as any, capacity, state: HostState.ACTIVE, wakeTime: Duration.seconds(60) }));
const cluster = new Cluster(stack, 'cluster', {
  hosts,
  sharedStorage: { poolName: 'shared', path: process.env.LIBVIRT_SHARED_PATH! },
  failuresToTolerate: 1,
  lockFile: process.env.DRILL_LOCK_FILE,
  frozenLock: false,
});
new FailoverGroup(stack, 'web', {
  cluster,
  replicas: 3,
  antiAffinity: AntiAffinity.soft(),
  priority: RestartPriority.HIGH,
  template: { vcpus: 1, memory: Size.mebibytes(128), image: Image.fromFile('guest', process.env.LIBVIRT_IMAGE!), console: { logToFile: true } },
});
app.synth();
`;

interface RunningController {
  readonly id: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  output: string;
}

describeE2e('quorum drills: corosync membership on a three-host lab', () => {
  let theLab: Lab;
  let cluster: CorosyncCluster;
  let work: string;
  let events: string;
  const durations: string[] = [];
  const controllers: RunningController[] = [];
  const drill = drillTest(durations);
  const host = (name: string) => theLab.host(name);

  /** Where each VM runs; throws when one runs twice. */
  const where = (): Record<string, string> => theLab.whereRunning(HOSTS);

  const appEnv = (): Record<string, string> => ({
    LIBVIRT_HOSTS: HOSTS.map((h) => `${h}=${host(h).uri}`).join(','),
    LIBVIRT_DOMAIN_TYPE: guestDomainType().type,
    LIBVIRT_IMAGE: guest.ok ? guest.path : '',
    LIBVIRT_SHARED_PATH: path.join(theLab.sharedDir, 'pool'),
    DRILL_LOCK_FILE: path.join(work, 'quorum.placement-lock.json'),
    DRILL_STATE: path.join(work, 'terraform.quorum.tfstate'),
    TF_CLI_CONFIG_FILE: TOFU_RC,
  });

  /** A controller in node `id`'s network namespace, its membership read from that node's corosync. */
  function startController(id: string): RunningController {
    const config = {
      stacks: ['quorum'],
      hosts: Object.fromEntries(HOSTS.map((h) => [h, { uri: cluster.libvirtUri(h), fence: theLab.fenceConfig(h) }])),
      membership: { corosync: { command: cluster.membershipCommand(id) } },
      unattended: ['failover'],
      ...TIMING,
      eventLog: events,
      engine: TOFU,
      env: appEnv(),
    };
    const file = path.join(work, `controller-${id}.json`);
    fs.writeFileSync(file, JSON.stringify(config, null, 2));
    const [command, ...args] = [...cluster.inNode(id), TSX, path.join(REPO, 'lib', 'ops', 'cli.ts'), 'controller', '--config', file, '--id', id];
    const child = spawn(command, args, { cwd: work, env: { ...process.env, CHECKPOINT_DISABLE: '1', TF_IN_AUTOMATION: '1' } });
    const running: RunningController = { id, child, exited: new Promise((r) => child.on('exit', (code) => r(code))), output: '' };
    const log = fs.createWriteStream(path.join(work, `controller-${id}.out`));
    for (const stream of [child.stdout!, child.stderr!]) {
      stream.on('data', (d) => {
        running.output += d;
        log.write(d);
      });
    }
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

  const readEvents = (): ControllerEvent[] =>
    fs.existsSync(events) ? fs.readFileSync(events, 'utf8').trim().split('\n').filter((l) => l).map((l) => JSON.parse(l) as ControllerEvent) : [];
  async function waitForEvent(match: (e: ControllerEvent) => boolean, what: string, ms: number, since = 0): Promise<ControllerEvent> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = readEvents().slice(since).find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}; controllers said:\n${controllers.map((c) => `--- ${c.id}\n${c.output.split('\n').slice(-30).join('\n')}`).join('\n')}`);
      await sleep(250);
    }
  }
  const changed = (e: ControllerEvent) => e.event === 'applied' && !/Resources: 0 added, 0 changed, 0 destroyed/.test(e.detail);
  /** Anything but watching: a decision, a fence tried, a deploy. */
  const acted = (e: ControllerEvent) => ['decided', 'fenced', 'fence-failed', 'synth', 'reconcile', 'applied'].includes(e.event);
  const verbatim = (list: ControllerEvent[]) => list.map((e) => JSON.stringify(e)).join('\n');
  /** Waits until a controller has logged a quorate view with every node. */
  const waitForFullView = (id: string, since: number) =>
    waitForEvent((e) => e.controller === id && e.event === 'membership' && e.detail === `corosync: quorate (5 of 5 votes, quorum 3): ${[...cluster.names].sort().join(', ')}`, `${id} to see every node`, 90_000, since);

  beforeAll(async () => {
    theLab = await Lab.start({ hosts: 3 });
    work = path.join(theLab.root, 'site');
    fs.mkdirSync(work);
    events = path.join(work, 'controller-events.jsonl');
    fs.writeFileSync(path.join(work, 'main.ts'), APP(REPO));
    fs.writeFileSync(path.join(work, 'cdktf.json'), JSON.stringify({ language: 'typescript', app: `${TSX} main.ts`, context: { [RESOURCE_LOCK_CONTEXT.frozen]: false } }));
    const shared = path.join(theLab.sharedDir, 'pool');
    fs.mkdirSync(shared);
    theLab.defineSharedPool('shared', shared, { autostart: true });
    cluster = await CorosyncCluster.start(theLab, { controllers: ['c1', 'c2'] });
  });

  afterAll(async () => {
    for (const c of [...controllers]) await stopController(c);
    await cluster?.stop();
    await theLab?.teardown();
    console.log(durations.join('\n'));
  });

  drill('deploy by hand: web-1..3, one per host, each guest reports; corosync counts all five nodes', async () => {
    const out = path.join(work, 'cdktf.out');
    const synth = spawnSync(TSX, ['main.ts'], { cwd: work, env: { ...process.env, ...appEnv(), CDKTF_OUTDIR: out, CDKTF_CONTEXT_JSON: JSON.stringify({ [RESOURCE_LOCK_CONTEXT.frozen]: false }) }, encoding: 'utf8' });
    expect(synth.status).toBe(0);
    const stackDir = path.join(out, 'stacks', 'quorum');
    tofu(stackDir, ['init', '-input=false']);
    // One resource at a time: the lab's hosts share one network namespace for their bridges, so two libvirtd
    // creating the cluster's isolated network at once can both pick the same virbrN (real hosts cannot collide).
    tofu(stackDir, ['apply', '-auto-approve', '-input=false', '-parallelism=1']);
    const placed = where();
    expect(Object.keys(placed).sort()).toEqual(['web-1', 'web-2', 'web-3']);
    expect(new Set(Object.values(placed)).size).toBe(3);
    for (const [vm, h] of Object.entries(placed)) await waitForGuestReport(host(h).consoleLog(vm), (r) => r.instanceId === vm, 180_000);
    expect(cluster.view('h1')).toEqual({ quorate: true, members: ['c1', 'c2', 'h1', 'h2', 'h3'] });
  });

  drill("the controller's own link is cut: its partition is not quorate, nothing is fenced, nothing deployed", async () => {
    startController('c1');
    await waitForFullView('c1', 0);
    await waitForEvent((e) => e.controller === 'c1' && e.event === 'enabled', 'c1 to start', 120_000);
    const before = where();
    const requests = theLab.powerRequests().length;
    const from = readEvents().length;
    const cut = Date.now();
    cluster.cut('c1');
    try {
      const lost = await waitForEvent((e) => e.controller === 'c1' && e.event === 'membership' && /NOT quorate/.test(e.detail), 'c1 to lose quorum', 60_000, from);
      // Every host silent on c1's probes for well past failureAfterSeconds.
      await waitForEvent((e) => e.controller === 'c1' && e.event === 'refused' && /partition is NOT quorate \(1 of 5 votes, quorum 3\): c1: it takes no action/.test(e.detail), 'the refusal', 60_000, from);
      await sleep((TIMING.failureAfterSeconds + 10) * 1000);
      const during = readEvents().slice(from).filter((e) => e.controller === 'c1');
      console.log(`c1 cut off: quorum lost after ${seconds(Date.parse(lost.time) - cut)}; ${seconds(Date.now() - cut)} later, events (verbatim):\n${verbatim(during)}`);
      expect(during.filter((e) => e.event === 'observed').map((e) => e.host).sort()).toEqual(HOSTS);
      expect(during.filter(acted)).toEqual([]);
      expect(theLab.powerRequests().length).toBe(requests);
      expect(where()).toEqual(before);
    } finally {
      cluster.mend();
    }
    await waitForFullView('c1', from); // after the cut, a full view comes only with the mend
    await sleep(3_000);
    expect(readEvents().slice(from).filter(acted)).toEqual([]);
  });

  drill('a 1-of-3 partition: the majority fences the lost host (status confirms off) and restarts its VM; the minority does nothing', async () => {
    const c2 = startController('c2');
    await waitForEvent((e) => e.controller === 'c2' && e.event === 'enabled', 'c2 to start', 120_000);
    await waitForFullView('c2', 0);
    const before = where();
    const lostVm = Object.keys(before).find((vm) => before[vm] === 'h3')!;
    const boot = guestReports(host('h3').consoleLog(lostVm)).pop()!.bootId;
    const from = readEvents().length;
    const cut = Date.now();
    cluster.partition([['h3', 'c2']]);
    let movedTo: string | undefined;
    try {
      const applied = await waitForEvent((e) => e.controller === 'c1' && changed(e), 'the failover by c1', 240_000, from);
      const after = where();
      movedTo = after[lostVm];
      expect(host('h3').isPoweredOn()).toBe(false);
      expect(['h1', 'h2']).toContain(after[lostVm]);
      const report = await waitForGuestReport(host(after[lostVm]).consoleLog(lostVm), (r) => r.instanceId === lostVm && r.bootId !== boot, 180_000);
      const running = Date.now();
      await sleep(5_000); // c2 keeps deciding nothing
      const mine = readEvents().slice(from);
      const c1 = mine.filter((e) => e.controller === 'c1');
      const minority = mine.filter((e) => e.controller === 'c2');
      const fenced = c1.filter((e) => e.event === 'fenced');
      expect(fenced.map((e) => e.host)).toEqual(['h3']);
      expect(fenced[0].detail).toMatch(/action=off \(options plug, socket\): exit 0, action=status says off after [\d.]+ s; h3 is confirmed off: declared failed$/);
      expect(c1.find((e) => e.event === 'decided' && e.host === 'h3')!.detail).toMatch(/^h3 has not answered for [\d.]+ s \(.*\) and corosync has lost node h3 \(quorate \(3 of 5 votes, quorum 3\): c1, h1, h2\): fencing it/);
      expect(minority.filter(acted)).toEqual([]);
      expect(minority.some((e) => e.event === 'refused' && /partition is NOT quorate \(2 of 5 votes, quorum 3\): c2, h3: it takes no action/.test(e.detail))).toBe(true);
      console.log(
        `1-of-3 partition: c1 fenced h3 ${seconds(Date.parse(fenced[0].time) - cut)} after the cut, applied ${seconds(Date.parse(applied.time) - cut)}, ${lostVm}'s guest reports on ${after[lostVm]} ${seconds(running - cut)} after the cut (boot ${report.bootId.slice(0, 8)})\n` +
          `c1 (majority, verbatim):\n${verbatim(c1.filter((e) => e.event !== 'observed'))}\nc2 (minority, verbatim):\n${verbatim(minority)}`,
      );
    } finally {
      // Back to all five nodes and h3 in service, whatever happened above.
      await stopController(c2);
      const back = readEvents().length;
      cluster.mend();
      if (!host('h3').isPoweredOn()) await host('h3').restart();
      await waitForFullView('c1', back);
      if (readEvents().some((e) => e.controller === 'c1' && e.event === 'fenced' && e.host === 'h3')) {
        await waitForEvent((e) => e.controller === 'c1' && e.event === 'applied' && /h3 failed → as in code/.test(e.detail), "h3's return", 180_000, back);
      }
    }
    // h3 back in service: nothing moved back, nothing runs twice.
    expect(Object.keys(where()).sort()).toEqual(['web-1', 'web-2', 'web-3']);
    expect(where()[lostVm]).toBe(movedTo);
    expect(host('h3').runningDomains()).toEqual([]);
  });

  drill('libvirtd killed on a healthy host while its guest runs: corosync still counts it, no fence, the guest runs on with the same boot id', async () => {
    const before = where();
    const vm = Object.keys(before).find((v) => before[v] === 'h1')!;
    const qemu = host('h1').qemuPid(vm)!;
    const boot = guestReports(host('h1').consoleLog(vm)).pop()!;
    const requests = theLab.powerRequests().length;
    const from = readEvents().length;
    const killed = Date.now();
    host('h1').killLibvirtd();
    try {
      const refused = await waitForEvent((e) => e.controller === 'c1' && e.event === 'refused' && e.host === 'h1', 'the refusal to fence h1', 60_000, from);
      await sleep(8_000);
      const during = readEvents().slice(from).filter((e) => e.controller === 'c1');
      expect(refused.detail).toMatch(/^h1 has not answered for [\d.]+ s \(.*\), but corosync still counts node h1 a member of this partition: the host is up and its libvirtd down or hung \(its guests may be running\); it is not fenced and nothing of it is restarted$/);
      expect(during.filter(acted)).toEqual([]);
      expect(theLab.powerRequests().length).toBe(requests);
      expect(fs.existsSync(`/proc/${qemu}`)).toBe(true);
      console.log(`libvirtd of h1 killed: refused after ${seconds(Date.parse(refused.time) - killed)}; c1 (verbatim):\n${verbatim(during)}`);
    } finally {
      await host('h1').startLibvirtd();
    }
    expect(host('h1').domainState(vm)).toBe('running');
    expect(host('h1').qemuPid(vm)).toBe(qemu);
    const later = await waitForGuestReport(host('h1').consoleLog(vm), (r) => r.seq > boot.seq, 60_000, boot);
    expect(later.bootId).toBe(boot.bootId);
    await waitForEvent((e) => e.controller === 'c1' && e.event === 'observed' && e.host === 'h1' && /answers again/.test(e.detail), 'h1 to answer again', 60_000, from);
    expect(readEvents().slice(from).filter(acted)).toEqual([]);
  });

  drill('a fence agent that lies (off exits 0, status says on): nothing restarts, the log says why', async () => {
    const before = where();
    const vm = Object.keys(before).find((v) => before[v] === 'h2')!;
    const qemu = host('h2').qemuPid(vm)!;
    const from = readEvents().length;
    theLab.setFenceFailure('h2', 'lie');
    const cut = Date.now();
    cluster.cut('h2');
    try {
      const first = await waitForEvent((e) => e.controller === 'c1' && e.event === 'fence-failed' && e.host === 'h2', 'the unconfirmed fence', 90_000, from);
      // (Before corosync has formed its new membership, h2 is still a member: those refusals say so.)
      await waitForEvent((e) => e.controller === 'c1' && e.event === 'refused' && e.host === 'h2' && /not confirmed off/.test(e.detail), 'the refusal', 60_000, from);
      await sleep((TIMING.fenceTimeoutSeconds + 4) * 1000); // another try, unconfirmed again
      const during = readEvents().slice(from).filter((e) => e.controller === 'c1');
      expect(first.detail).toMatch(/action=off \(options plug, socket\): action=off exited 0 but action=status did not say off within 6 s \(fenceTimeoutSeconds; last status: .*\): h2 is not confirmed off, nothing of it is restarted$/);
      // The switch was asked: off answered ok (the lie), status answered on.
      const asked = theLab.powerRequests().filter((r) => / h2$/.test(r.request));
      expect(asked.some((r) => r.request === 'off h2' && r.answer === 'ok')).toBe(true);
      expect(asked.some((r) => r.request === 'status h2' && r.answer === 'on')).toBe(true);
      expect(during.find((e) => e.event === 'refused' && e.host === 'h2' && /not confirmed off/.test(e.detail))!.detail).toMatch(/but is not confirmed off \(fence action=off failed: action=off exited 0 but action=status did not say off/);
      expect(during.filter((e) => ['fenced', 'synth', 'reconcile', 'applied'].includes(e.event))).toEqual([]);
      expect(host('h2').isPoweredOn()).toBe(true);
      expect(fs.existsSync(`/proc/${qemu}`)).toBe(true);
      expect(where()).toEqual(before);
      console.log(`lying fence on h2: first unconfirmed ${seconds(Date.parse(first.time) - cut)} after the cut; c1 (verbatim):\n${verbatim(during.filter((e) => e.event !== 'observed'))}`);
    } finally {
      const mended = readEvents().length;
      cluster.mend();
      await waitForFullView('c1', mended).catch(() => undefined);
      await waitForEvent((e) => e.controller === 'c1' && e.event === 'observed' && e.host === 'h2' && /answers again/.test(e.detail), 'h2 to answer again', 60_000, from).catch(() => undefined);
      theLab.setFenceFailure('h2', false);
    }
    expect(where()).toEqual(before);
  });
}, why);
