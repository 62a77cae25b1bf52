/**
 * The controller's thin I/O: the fence-agents contract as it runs a real command, and a real
 * controller process loop against a host that never answers, whose fence agent is killed every
 * time: it never declares the host failed, never synthesizes or deploys for it, and says why.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { confirmOff, Controller, ControllerEvent, runFence } from '../../lib/ops/controller';
import { resolveConfig } from '../../lib/ops/controller-config';
import { parseControllerArguments } from '../../lib/ops/cli';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'controller-test-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('the fence-agents contract', () => {
  test('options on stdin as name=value lines, then action; exit 0 is success', async () => {
    const seen = path.join(dir, 'stdin');
    const result = await runFence({ command: ['sh', '-c', `cat > ${seen}`], options: { ip: '10.0.0.1', plug: 'h1' } }, 'off', 5_000);
    expect(result).toMatchObject({ ok: true, code: 0, message: 'exit 0' });
    expect(fs.readFileSync(seen, 'utf8')).toBe('ip=10.0.0.1\nplug=h1\naction=off\n');
  });

  test('a failing, killed or hung agent has confirmed nothing', async () => {
    expect(await runFence({ command: ['sh', '-c', 'echo "Failed: Unable to obtain correct plug status" >&2; exit 1'] }, 'off', 5_000)).toMatchObject({ ok: false, message: 'exit 1: Failed: Unable to obtain correct plug status' });
    expect(await runFence({ command: ['sh', '-c', 'kill -KILL $$'] }, 'off', 5_000)).toMatchObject({ ok: false, message: 'killed by SIGKILL' });
    expect(await runFence({ command: ['sleep', '10'] }, 'off', 300)).toMatchObject({ ok: false, message: 'timed out after 0.3 s and was killed' });
    expect(await runFence({ command: [path.join(dir, 'no-such-agent')] }, 'off', 5_000)).toMatchObject({ ok: false });
  });
});

test('no VM of a host that was not fenced is restarted: a controller whose fence agent is killed every time never deploys', async () => {
  const calls = path.join(dir, 'fence-calls');
  const config = resolveConfig(
    {
      // A stack folder with a local backend: the decision record is a file beside its state.
      app: `echo synth >> ${path.join(dir, 'synths')}; mkdir -p "$CDKTF_OUTDIR/stacks/mail"; echo '{"terraform":{"backend":{"local":{"path":"terraform.tfstate"}}}}' > "$CDKTF_OUTDIR/stacks/mail/cdk.tf.json"`,
      stacks: ['mail'],
      hosts: { h1: { uri: `qemu:///system?socket=${path.join(dir, 'no-such-socket')}`, fence: { command: ['sh', '-c', `cat >> ${calls}; kill -KILL $$`], options: { plug: 'h1' } } } },
      unattended: ['failover'],
      membership: { probesOnly: true },
      pollSeconds: 0.1,
      failureAfterSeconds: 0.3,
      probeTimeoutSeconds: 2,
      repeatWarningSeconds: 0.2,
    },
    { cwd: dir, id: 'test' },
  );
  const lines: string[] = [];
  const controller = new Controller({ config, print: (l) => lines.push(l) });
  const running = controller.run();
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline && (fs.existsSync(calls) ? fs.readFileSync(calls, 'utf8').split('action=off').length - 1 : 0) < 3) await new Promise((r) => setTimeout(r, 100));
  controller.stop();
  expect(await running).toBe(0);

  const events: ControllerEvent[] = fs.readFileSync(config.eventLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const kinds = events.map((e) => e.event);
  expect(kinds.filter((k) => k === 'fence-failed').length).toBeGreaterThanOrEqual(3);
  expect(kinds).toContain('refused');
  expect(events.find((e) => e.event === 'refused')!.detail).toMatch(/^h1 has not answered for [\d.]+ s .* but is not confirmed off \(fence action=off failed: killed by SIGKILL\): nothing of it is restarted/);
  // The synth at start (to read what the stacks enable) is the only one: no deploy was ever decided.
  expect(fs.readFileSync(path.join(dir, 'synths'), 'utf8')).toBe('synth\n');
  expect(events.filter((e) => e.event === 'decided' && /deploy/.test(e.detail))).toEqual([]);
  expect(kinds).not.toContain('applied');
  const record = JSON.parse(fs.readFileSync(path.join(config.outdir, 'stacks', 'mail', 'terraform.tfstate.decisions.json'), 'utf8'));
  expect(record.decisions.hostStates).toEqual({});
  // Every attempt was recorded before and after: the incident stays open, each fence started and failed.
  expect(record.incidents).toHaveLength(1);
  const steps = record.incidents[0].steps.map((s: { name: string; state: string }) => `${s.name} ${s.state}`);
  expect(steps.length).toBeGreaterThanOrEqual(6);
  expect(steps.every((s: string, i: number) => s === (i % 2 === 0 ? 'fence off started' : 'fence off failed'))).toBe(true);
  // The start-up log names what is on and where; the options' values never reach the log.
  expect(events.find((e) => e.event === 'enabled')!.detail).toBe('failover: on (controller configuration); schedule: off; standby-power: off [no controller.json from the synth: only the controller configuration counts]');
  expect(fs.readFileSync(config.eventLog, 'utf8')).not.toContain('plug=h1');
  expect(lines.some((l) => /WARNING refused h1: /.test(l))).toBe(true);
}, 30_000);

test('a schedule boundary on the controller clock: one synth pinned to exactly the boundary, reconciled and applied under the mutex, all in the event log', async () => {
  const boundary = new Date(Date.now() + 1_500).toISOString();
  const synths = path.join(dir, 'synths');
  // The app: writes the stack folder with a local backend and controller.json; records each context.
  const app = path.join(dir, 'app.js');
  fs.writeFileSync(app, `
    const fs = require('fs'); const path = require('path');
    const context = JSON.parse(process.env.CDKTF_CONTEXT_JSON);
    fs.appendFileSync(${JSON.stringify(synths)}, JSON.stringify(context) + '\\n');
    const dir = path.join(process.env.CDKTF_OUTDIR, 'stacks', 'mail');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'cdk.tf.json'), JSON.stringify({ terraform: { backend: { local: { path: 'terraform.tfstate' } } } }));
    const instant = Date.parse(context['libvirt-cluster:instant']);
    fs.writeFileSync(path.join(dir, 'controller.json'), JSON.stringify({ version: 1, stack: 'mail', clusters: [{ id: 'cluster', timeZone: 'Europe/Zurich', instant: new Date(instant).toISOString(),
      unattended: ['schedule'], windowStarts: ['08:00', '20:00'], nextWindowStart: instant < Date.parse(process.env.BOUNDARY) ? process.env.BOUNDARY : null,
      hosts: [{ name: 'h1', state: 'active' }], standbyCandidates: [], recoverySeconds: 120 }] }));
  `);
  // The engine: what reconcile and the apply need, recorded.
  const engine = path.join(dir, 'engine');
  fs.writeFileSync(engine, `#!/bin/sh\necho "$*" >> ${path.join(dir, 'engine-calls')}\ncase "$1" in show) echo '{}';; apply) echo 'Apply complete! Resources: 1 added, 0 changed, 0 destroyed.';; esac\n`, { mode: 0o755 });
  const config = resolveConfig(
    { app: `node ${app}`, stacks: ['mail'], hosts: { h1: { uri: `qemu:///system?socket=${path.join(dir, 'no-such-socket')}` } }, engine, env: { BOUNDARY: boundary }, pollSeconds: 0.2, probeTimeoutSeconds: 2 },
    { cwd: dir, id: 's' },
  );
  const controller = new Controller({ config, print: () => undefined });
  const running = controller.run();
  const read = (): ControllerEvent[] => (fs.existsSync(config.eventLog) ? fs.readFileSync(config.eventLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l)) : []);
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline && !read().some((e) => e.event === 'applied')) await new Promise((r) => setTimeout(r, 100));
  controller.stop();
  await running;

  const events = read();
  expect(events.find((e) => e.event === 'enabled')!.detail).toBe('failover: off; schedule: on (stack (cluster cluster)); standby-power: off');
  expect(events.find((e) => e.event === 'decided' && e.stack === 'mail')!.detail).toMatch(new RegExp(`^window boundary \\d\\d:\\d\\d Europe/Zurich passed \\(controller clock .*\\): instant pinned to ${boundary.replace(/[.]/g, '\\.')}$`));
  expect(events.filter((e) => ['synth', 'reconcile', 'applied'].includes(e.event)).map((e) => e.event)).toEqual(['synth', 'synth', 'reconcile', 'applied']);
  expect(events.find((e) => e.event === 'applied')!.detail).toMatch(/^Apply complete! Resources: 1 added, 0 changed, 0 destroyed; instant now → .*; whole deploy/);
  const contexts = fs.readFileSync(synths, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  expect(contexts[1]).toEqual({ 'libvirt-cluster:instant': boundary });
  const calls = fs.readFileSync(path.join(dir, 'engine-calls'), 'utf8').trim().split('\n');
  expect(calls).toEqual(['init -input=false -no-color', 'show -json -no-color', 'apply -auto-approve -input=false -lock-timeout=0s -no-color']);
  expect(JSON.parse(fs.readFileSync(path.join(config.outdir, 'stacks', 'mail', 'terraform.tfstate.decisions.json'), 'utf8')).decisions.instants).toEqual({ mail: boundary });
}, 30_000);

test('the command line of controller', () => {
  expect(parseControllerArguments(['--config', 'c.json', '--once', '--clock-offset-seconds', '-3600.5', '--id', 'a'])).toEqual({ config: 'c.json', once: true, clockOffsetSeconds: -3600.5, id: 'a', dryRun: false });
  expect(() => parseControllerArguments(['--once'])).toThrow('give --config FILE');
  expect(() => parseControllerArguments(['--config', 'c', '--clock-offset-seconds', 'soon'])).toThrow(/takes a number of seconds/);
});

describe('fencing confirmed by the agent status', () => {
  /** An agent that records each action and answers status with `statusExit` (0 on, 2 off). */
  const agent = (statusExit: number) => ['sh', '-c', `a=$(grep '^action=' | cut -d= -f2); echo "$a" >> ${path.join(dir, 'actions')}; if [ "$a" = status ]; then exit ${statusExit}; fi; exit 0`];

  test('status saying off confirms; a status that keeps saying on (the lie) does not, within the timeout', async () => {
    expect(await confirmOff({ command: agent(2) }, 2_000)).toMatchObject({ ok: true, message: expect.stringMatching(/^action=status says off after [\d.]+ s$/) });
    const lie = await confirmOff({ command: agent(0) }, 1_200);
    expect(lie).toMatchObject({ ok: false, message: 'action=off exited 0 but action=status did not say off within 1.2 s (fenceTimeoutSeconds; last status: on (exit 0))' });
    expect(lie.ms).toBeGreaterThanOrEqual(1_200);
    expect(fs.readFileSync(path.join(dir, 'actions'), 'utf8').split('\n').filter((a) => a === 'status').length).toBeGreaterThanOrEqual(3);
  });

  test('a controller whose agent lies (off exits 0, status says on) never declares the host failed nor deploys', async () => {
    const config = resolveConfig(
      {
        app: `echo synth >> ${path.join(dir, 'synths')}; mkdir -p "$CDKTF_OUTDIR/stacks/mail"; echo '{"terraform":{"backend":{"local":{"path":"terraform.tfstate"}}}}' > "$CDKTF_OUTDIR/stacks/mail/cdk.tf.json"`,
        stacks: ['mail'],
        hosts: { h1: { uri: `qemu:///system?socket=${path.join(dir, 'no-such-socket')}`, fence: { command: agent(0) } } },
        unattended: ['failover'],
        membership: { probesOnly: true },
        pollSeconds: 0.1,
        failureAfterSeconds: 0.3,
        fenceTimeoutSeconds: 0.5,
        repeatWarningSeconds: 0.2,
      },
      { cwd: dir, id: 'test' },
    );
    const controller = new Controller({ config, print: () => undefined });
    const running = controller.run();
    const offs = () => (fs.existsSync(path.join(dir, 'actions')) ? fs.readFileSync(path.join(dir, 'actions'), 'utf8').split('\n').filter((a) => a === 'off').length : 0);
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && offs() < 2) await new Promise((r) => setTimeout(r, 100));
    controller.stop();
    expect(await running).toBe(0);
    const events: ControllerEvent[] = fs.readFileSync(config.eventLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(events.filter((e) => e.event === 'fence-failed')[0].detail).toMatch(/action=off \(options none\): action=off exited 0 but action=status did not say off within 0\.5 s .*: h1 is not confirmed off, nothing of it is restarted$/);
    expect(events.map((e) => e.event)).not.toContain('fenced');
    expect(events.filter((e) => e.event === 'decided' && /deploy/.test(e.detail))).toEqual([]);
    expect(fs.readFileSync(path.join(dir, 'synths'), 'utf8')).toBe('synth\n');
    expect(JSON.parse(fs.readFileSync(path.join(config.outdir, 'stacks', 'mail', 'terraform.tfstate.decisions.json'), 'utf8')).decisions.hostStates).toEqual({});
  }, 30_000);
});

test('--dry-run: logs the fence it would take, runs no agent, saves no decision', async () => {
  const calls = path.join(dir, 'fence-calls');
  const config = resolveConfig(
    {
      app: `echo synth >> ${path.join(dir, 'synths')}; mkdir -p "$CDKTF_OUTDIR/stacks/mail"; echo '{"terraform":{"backend":{"local":{"path":"terraform.tfstate"}}}}' > "$CDKTF_OUTDIR/stacks/mail/cdk.tf.json"`,
      stacks: ['mail'],
      hosts: { h1: { uri: `qemu:///system?socket=${path.join(dir, 'no-such-socket')}`, fence: { command: ['sh', '-c', `cat >> ${calls}`] } } },
      unattended: ['failover'],
      membership: { probesOnly: true },
      pollSeconds: 0.1,
      failureAfterSeconds: 0.3,
      repeatWarningSeconds: 0.2,
    },
    { cwd: dir, id: 'test' },
  );
  const controller = new Controller({ config, print: () => undefined, dryRun: true });
  const running = controller.run();
  const deadline = Date.now() + 20_000;
  const would = () => (fs.existsSync(config.eventLog) ? fs.readFileSync(config.eventLog, 'utf8').split('"event":"would"').length - 1 : 0);
  while (Date.now() < deadline && would() < 2) await new Promise((r) => setTimeout(r, 100));
  controller.stop();
  expect(await running).toBe(0);
  const events: ControllerEvent[] = fs.readFileSync(config.eventLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  expect(events[0].detail).toContain('DRY RUN: observes and logs what it would do, does nothing');
  expect(events.find((e) => e.event === 'would')).toMatchObject({ host: 'h1', detail: expect.stringMatching(/^would fence h1 \(action=off, failover\): h1 has not answered for [\d.]+ s .* \(dry run: nothing done\)$/) });
  expect(fs.existsSync(calls)).toBe(false);
  expect(fs.existsSync(path.join(config.outdir, 'stacks', 'mail', 'terraform.tfstate.decisions.json'))).toBe(false);
}, 30_000);

test('while an apply runs, the membership is still read every poll; SIGTERM interrupts the apply gracefully (SIGINT) and the log says what is left undone', async () => {
  const boundary = new Date(Date.now() + 1_000).toISOString();
  const app = path.join(dir, 'app.js');
  fs.writeFileSync(app, `
    const fs = require('fs'); const path = require('path');
    const context = JSON.parse(process.env.CDKTF_CONTEXT_JSON);
    const dir = path.join(process.env.CDKTF_OUTDIR, 'stacks', 'mail');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'cdk.tf.json'), JSON.stringify({ terraform: { backend: { local: { path: 'terraform.tfstate' } } } }));
    const instant = Date.parse(context['libvirt-cluster:instant']);
    fs.writeFileSync(path.join(dir, 'controller.json'), JSON.stringify({ version: 1, stack: 'mail', clusters: [{ id: 'cluster', timeZone: 'UTC', instant: new Date(instant).toISOString(),
      unattended: ['schedule'], windowStarts: ['08:00', '20:00'], nextWindowStart: instant < Date.parse(process.env.BOUNDARY) ? process.env.BOUNDARY : null,
      hosts: [{ name: 'h1', state: 'active' }], standbyCandidates: [], recoverySeconds: 120 }] }));
  `);
  const applies = path.join(dir, 'applies');
  const engine = path.join(dir, 'engine');
  fs.writeFileSync(engine, `#!/bin/sh\ncase "$1" in show) echo '{}';; apply) trap 'kill $!; echo interrupted >> ${applies}; echo "Interrupt received."; exit 1' INT; echo started >> ${applies}; sleep 30 & wait $!;; esac\n`, { mode: 0o755 });
  const reads = path.join(dir, 'membership-reads');
  const status = path.join(dir, 'status');
  fs.writeFileSync(status, 'Quorate:          Yes\nTotal votes:      2\nExpected votes:   3\nQuorum:           2\n\nMembership information\n----------------------\n    Nodeid      Votes    Qdevice Name\n         1          1         NR c1 (local)\n         2          1         NR h1\n');
  const config = resolveConfig(
    {
      app: `node ${app}`, stacks: ['mail'], hosts: { h1: { uri: `qemu:///system?socket=${path.join(dir, 'no-such-socket')}` } }, engine, env: { BOUNDARY: boundary }, pollSeconds: 0.2, probeTimeoutSeconds: 2,
      membership: { corosync: { command: ['sh', '-c', `echo read >> ${reads}; cat ${status}`] } },
    },
    { cwd: dir, id: 's' },
  );
  const controller = new Controller({ config, print: () => undefined });
  const running = controller.run();
  const count = (file: string, word: string) => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter((l) => l === word).length : 0);
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline && count(applies, 'started') === 0) await new Promise((r) => setTimeout(r, 50));
  const before = count(reads, 'read');
  await new Promise((r) => setTimeout(r, 3_000));
  const during = count(reads, 'read') - before;
  controller.stop();
  expect(await running).toBe(0);

  // Read every 0.2 s while the apply ran (15 in 3 s on a quiet machine; a blocked loop reads none).
  expect(during).toBeGreaterThanOrEqual(4);
  expect(count(applies, 'interrupted')).toBe(1);
  const events: ControllerEvent[] = fs.readFileSync(config.eventLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  expect(events.find((e) => e.event === 'membership')!.detail).toBe('corosync: quorate (2 of 3 votes, quorum 2): c1, h1');
  expect(events.find((e) => e.event === 'error' && e.stack === 'mail')!.detail).toMatch(/^stopping \(SIGTERM\) during the apply: .*engine was interrupted \(SIGINT\) and stopped \(exit 1\), saving the state of what it did: Interrupt received\.; instant now → .* is not complete: a controller deploys it again on its next cycle$/);
  expect(events.map((e) => e.event)).not.toContain('applied');
  expect(events[events.length - 1].event).toBe('stop');
}, 30_000);
