/**
 * The controller's thin I/O: the fence-agents contract as it runs a real command, and a real
 * controller process loop against a host that never answers, whose fence agent is killed every
 * time: it never declares the host failed, never synthesizes or deploys for it, and says why.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Controller, ControllerEvent, runFence } from '../../lib/ops/controller';
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
      app: `echo synth >> ${path.join(dir, 'synths')}`,
      stacks: ['mail'],
      hosts: { h1: { uri: `qemu:///system?socket=${path.join(dir, 'no-such-socket')}`, fence: { command: ['sh', '-c', `cat >> ${calls}; kill -KILL $$`], options: { plug: 'h1' } } } },
      unattended: ['failover'],
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
  expect(JSON.parse(fs.readFileSync(config.decisionFile, 'utf8')).hostStates).toEqual({});
  // The start-up log names what is on and where; the options' values never reach the log.
  expect(events.find((e) => e.event === 'enabled')!.detail).toBe('failover: on (controller configuration); schedule: off; standby-power: off [no controller.json from the synth: only the controller configuration counts]');
  expect(fs.readFileSync(config.eventLog, 'utf8')).not.toContain('plug=h1');
  expect(lines.some((l) => /WARNING refused h1: /.test(l))).toBe(true);
}, 30_000);

test('the command line of controller', () => {
  expect(parseControllerArguments(['--config', 'c.json', '--once', '--clock-offset-seconds', '-3600.5', '--id', 'a'])).toEqual({ config: 'c.json', once: true, clockOffsetSeconds: -3600.5, id: 'a' });
  expect(() => parseControllerArguments(['--once'])).toThrow('give --config FILE');
  expect(() => parseControllerArguments(['--config', 'c', '--clock-offset-seconds', 'soon'])).toThrow(/takes a number of seconds/);
});
