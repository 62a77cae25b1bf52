/**
 * Where the record is kept, and the person's `reconcile` against it through the real command
 * line: it takes the controllers' mutex, stops when the code contradicts a live decision, and
 * goes on only with --override-decision, which removes the decision; and a controller restarted
 * in the middle of a fence, which asks the agent before it fences again. (The PostgreSQL store is
 * proven against a real server in test/e2e/decision-record.e2e.test.ts.)
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { emptyRecord, revise, stepStarted } from '../../lib/core/decision-record';
import { main } from '../../lib/ops/cli';
import { Controller } from '../../lib/ops/controller';
import { resolveConfig } from '../../lib/ops/controller-config';
import { decisionStoreFor, FileDecisionStore, PostgresDecisionStore } from '../../lib/ops/decision-record';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'decision-record-test-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const failedH2 = (by = 'a') => revise(emptyRecord({ hostStates: {}, poweredOff: [] as string[] }), { decisions: { hostStates: { h2: 'failed' }, poweredOff: [] } }, by, Date.parse('2026-11-26T02:00:15Z'), 'fenced: h2 is confirmed off');

/** A synthesized, initialized stack folder with a local backend; controller.json says both hosts are active. */
function stackDir(): string {
  const stack = path.join(dir, 'cdktf.out', 'stacks', 'mail');
  fs.mkdirSync(path.join(stack, '.terraform'), { recursive: true });
  fs.writeFileSync(path.join(stack, 'cdk.tf.json'), JSON.stringify({ terraform: { backend: { local: { path: 'terraform.mail.tfstate' } } } }));
  fs.writeFileSync(path.join(stack, 'controller.json'), JSON.stringify({ version: 1, stack: 'mail', clusters: [{ id: 'cluster', timeZone: 'UTC', instant: null, unattended: ['failover'], windowStarts: [], nextWindowStart: null, hosts: [{ name: 'h1', state: 'active' }, { name: 'h2', state: 'active' }], standbyCandidates: [], recoverySeconds: 120 }] }));
  return stack;
}

describe('the stores', () => {
  test('the local backend keeps the record beside its state file; a write succeeds only at the revision read', () => {
    const stack = stackDir();
    const store = decisionStoreFor(stack);
    expect(store).toBeInstanceOf(FileDecisionStore);
    expect(store.where).toBe(path.join(stack, 'terraform.mail.tfstate.decisions.json'));
    expect(store.load()).toBeUndefined();
    const first = failedH2();
    expect(store.write(first, 0)).toBe(true);
    expect(store.load()).toEqual(first);
    // A second writer that read nothing (revision 0) loses; one that read revision 1 wins.
    const other = revise(first, { decisions: { hostStates: {}, poweredOff: [] } }, 'b', Date.now());
    expect(store.write({ ...other, revision: 1 }, 0)).toBe(false);
    expect(store.write(other, 1)).toBe(true);
    expect(store.load()!.revision).toBe(2);
    expect(fs.readdirSync(stack).filter((f) => f.includes('decisions'))).toEqual(['terraform.mail.tfstate.decisions.json']);
  });

  test('the pg backend keeps it in the stack schema; other backends have no record', () => {
    const stack = stackDir();
    fs.writeFileSync(path.join(stack, 'cdk.tf.json'), JSON.stringify({ terraform: { backend: { pg: { schema_name: 'cdktf_mail' } } } }));
    const store = decisionStoreFor(stack, {});
    expect(store).toBeInstanceOf(PostgresDecisionStore);
    expect(store.where).toBe('PostgreSQL table cdktf_mail.cdktf_libvirt_cluster_decisions');
    fs.writeFileSync(path.join(stack, 'cdk.tf.json'), JSON.stringify({ terraform: { backend: { s3: { bucket: 'b' } } } }));
    expect(() => decisionStoreFor(stack)).toThrow("keeps its state in a 's3' backend: the decision record is kept only with the pg backend (PostgresBackend) or the local backend");
    expect(() => decisionStoreFor(path.join(dir, 'none'))).toThrow('has no cdk.tf.json: synthesize the stack first');
  });
});

describe("a person's reconcile and the record", () => {
  const run = async (args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(args, undefined, { out: (t) => out.push(t), err: (t) => err.push(t) });
    return { code, out: out.join(''), err: err.join('') };
  };
  const host = () => `h1=qemu:///system?socket=${path.join(dir, 'no-such-socket')}`;
  let engine: string | undefined;
  beforeEach(() => {
    // The engine reconcile reads the state with: an empty state.
    const fake = path.join(dir, 'engine');
    fs.writeFileSync(fake, "#!/bin/sh\ncase \"$1\" in show) echo '{}';; esac\n", { mode: 0o755 });
    engine = process.env.TERRAFORM_BINARY_NAME;
    process.env.TERRAFORM_BINARY_NAME = fake;
  });
  afterEach(() => {
    if (engine === undefined) delete process.env.TERRAFORM_BINARY_NAME;
    else process.env.TERRAFORM_BINARY_NAME = engine;
  });

  test('the code says active what a controller fenced: reconcile stops, saying so and how to accept or override; --override-decision removes the decision and goes on', async () => {
    const stack = stackDir();
    const store = decisionStoreFor(stack);
    store.write(failedH2(), 0);
    const refused = await run(['reconcile', '--stack-dir', stack, '--host', host()]);
    expect(refused.code).toBe(1);
    expect(refused.err).toContain(`reconcile failed: the code contradicts a live decision of the controllers (${store.where}); nothing done, do not apply:\nh2 was fenced (powered off) and declared failed`);
    expect(refused.err).toContain('To accept the decision: mark h2 failed in code (state: HostState.FAILED)');
    expect(refused.err).toContain('reconcile --override-decision h2');
    expect(refused.out).not.toContain('host-unreachable'); // nothing was looked at, nothing done
    expect(store.load()!.decisions.hostStates).toEqual({ h2: 'failed' });

    const unknown = await run(['reconcile', '--stack-dir', stack, '--host', host(), '--override-decision', 'h1']);
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain('--override-decision h1: the decision record');

    const overridden = await run(['reconcile', '--stack-dir', stack, '--host', host(), '--override-decision', 'h2']);
    expect(overridden.err).toBe('');
    expect(overridden.out).toContain("removed the controllers' decision about h2 (failed) from the record: the controllers now go by the code");
    expect(overridden.code).toBe(0);
    expect(store.load()!.decisions.hostStates).toEqual({});
    expect(store.load()!.updatedBy).toMatch(/^reconcile \(/);
  });

  test('reconcile takes the controllers\' mutex: while another holds it, reconcile does nothing and says why', async () => {
    const stack = stackDir();
    // A controller's deploy holds the flock beside the local state.
    const holder = spawn('flock', ['-n', path.join(stack, 'terraform.mail.tfstate.controller-lock'), 'sh', '-c', 'echo held; exec cat >/dev/null']);
    const released = new Promise((resolve) => holder.on('exit', resolve));
    await new Promise<void>((resolve) => holder.stdout.on('data', () => resolve()));
    try {
      const locked = await run(['reconcile', '--stack-dir', stack, '--host', host()]);
      expect(locked.code).toBe(1);
      expect(locked.err).toBe("reconcile failed: the controllers' mutex of this stack is held: a controller (or another reconcile) is deploying it; run reconcile again once it is done\n");
    } finally {
      holder.stdin.end(); // as a controller's deploy ends: the holder exits and the lock goes with it
      await released;
    }
    const free = await run(['reconcile', '--stack-dir', stack, '--host', host()]);
    expect(free.code).toBe(0);
  });

  test('record prints the decisions and incidents and writes the file a synth reads', async () => {
    const stack = stackDir();
    decisionStoreFor(stack).write(failedH2('b'), 0);
    const file = path.join(dir, 'decisions.json');
    const shown = await run(['record', '--stack-dir', stack, '--out', file]);
    expect(shown.code).toBe(0);
    expect(shown.out).toContain('revision 1, written 2026-11-26T02:00:15.000Z by b\n  host h2: failed (b at 2026-11-26T02:00:15.000Z: fenced: h2 is confirmed off)\n  no incident in progress\n');
    expect(JSON.parse(fs.readFileSync(file, 'utf8')).decisions.hostStates).toEqual({ h2: 'failed' });
  });
});

test('a controller restarted in the middle of a fence asks the agent for status and, the host being off, does not fence again', async () => {
  const calls = path.join(dir, 'fence-calls');
  const stdin = path.join(dir, 'fence-stdin');
  // The agent: status says off (exit 2); any other action is recorded.
  const agent = ['sh', '-c', `cat > ${stdin}; if grep -q action=status ${stdin}; then echo status >> ${calls}; exit 2; fi; grep action= ${stdin} >> ${calls}`];
  const app = path.join(dir, 'app.js');
  fs.writeFileSync(app, `
    const fs = require('fs'); const path = require('path');
    const dir = path.join(process.env.CDKTF_OUTDIR, 'stacks', 'mail');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'cdk.tf.json'), JSON.stringify({ terraform: { backend: { local: { path: 'terraform.tfstate' } } } }));
    fs.writeFileSync(path.join(dir, 'controller.json'), JSON.stringify({ version: 1, stack: 'mail', clusters: [{ id: 'cluster', timeZone: 'UTC', instant: null, unattended: [],
      windowStarts: [], nextWindowStart: null, hosts: [{ name: 'h1', state: 'active' }], standbyCandidates: [], recoverySeconds: 120 }] }));
  `);
  const engine = path.join(dir, 'engine');
  fs.writeFileSync(engine, "#!/bin/sh\ncase \"$1\" in show) echo '{}';; apply) echo 'Apply complete! Resources: 0 added, 0 changed, 0 destroyed.';; esac\n", { mode: 0o755 });
  const config = resolveConfig(
    { app: `node ${app}`, stacks: ['mail'], hosts: { h1: { uri: `qemu:///system?socket=${path.join(dir, 'no-such-socket')}`, fence: { command: agent } } }, unattended: ['failover'], membership: { probesOnly: true }, engine, pollSeconds: 0.2, failureAfterSeconds: 0.3, probeTimeoutSeconds: 2 },
    { cwd: dir, id: 'a' },
  );
  // What controller a left when it was killed: the fence recorded as started, never as ended.
  const store = new FileDecisionStore(path.join(config.outdir, 'stacks', 'mail', 'terraform.tfstate.decisions.json'));
  const left = revise(stepStarted(emptyRecord({ hostStates: {}, poweredOff: [] as string[] }), { host: 'h1', purpose: 'failover', step: 'fence off', by: 'a', now: Date.now() }), {}, 'a', Date.now());
  expect(store.write(left, 0)).toBe(true);

  const controller = new Controller({ config, print: () => undefined });
  const running = controller.run();
  const read = () => (fs.existsSync(config.eventLog) ? fs.readFileSync(config.eventLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l)) : []);
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline && !read().some((e) => e.event === 'applied')) await new Promise((r) => setTimeout(r, 100));
  controller.stop();
  await running;

  const events = read();
  expect(events.find((e) => e.event === 'start' && /^decision record/.test(e.detail)).detail).toMatch(/incidents in progress: failover of h1 by a, last step fence off started$/);
  expect(events.find((e) => e.event === 'resumed').detail).toMatch(/^h1 is off \(action=status exit 2\): the fence a started at .* was carried out; not fenced again$/);
  expect(events.filter((e) => e.event === 'fenced')).toEqual([]);
  expect(fs.readFileSync(calls, 'utf8')).toBe('status\n'); // asked once, never powered off again
  const record = store.load()!;
  expect(record.decisions.hostStates).toEqual({ h1: 'failed' });
  expect(record.incidents).toEqual([]);
  expect(record.closed[0].steps.map((s) => `${s.name} ${s.state} ${s.by}`)).toEqual(['fence off started a', 'fence off done a', 'deploy mail started a', 'deploy mail done a']);
}, 30_000);
