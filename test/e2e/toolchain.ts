/**
 * What the real-libvirt tests need, found the way scripts/toolchain.sh leaves it, and the rule
 * for when it is missing: skip with a stated reason, or fail under REQUIRE_E2E=1.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { waitFor as poll } from '../lab/processes';

export const CACHE = process.env.LIBVIRT_CLUSTER_CACHE ?? path.join(os.homedir(), '.cache', 'cdktf-libvirt-cluster');
export const TOFU = path.join(CACHE, 'bin', 'tofu');
export const TOFU_RC = path.join(CACHE, 'tofurc');

/** Environment for tofu: the offline provider mirror, no telemetry, default parallelism. */
export function tofuEnv(): NodeJS.ProcessEnv {
  return { ...process.env, TF_CLI_CONFIG_FILE: TOFU_RC, TF_IN_AUTOMATION: '1', CHECKPOINT_DISABLE: '1' };
}

/** A tofu command here takes seconds; one still running after this long is hung. */
const TOFU_TIMEOUT_MS = 2 * 60 * 1000;

function onPath(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Why the real-libvirt tests cannot run here, or undefined when they can. */
export function missingPrerequisite(): string | undefined {
  if (!fs.existsSync(TOFU)) return `no OpenTofu at ${TOFU}: run scripts/toolchain.sh`;
  if (!fs.existsSync(TOFU_RC)) return `no provider mirror config at ${TOFU_RC}: run scripts/toolchain.sh`;
  for (const cmd of ['virsh', 'libvirtd', 'virtlogd', 'qemu-img']) {
    if (!onPath(cmd)) return `${cmd} is not installed: run scripts/toolchain.sh`;
  }
  if (process.getuid && process.getuid() !== 0) return 'not root: the tests start their own libvirt daemons';
  return undefined;
}

/**
 * `describe` for real-libvirt tests: runs them when the toolchain is there, skips them with the
 * reason otherwise, and fails loudly instead of skipping when REQUIRE_E2E=1. `more` are what else
 * the file needs (a lab, PostgreSQL, sshd, the test guest): each undefined when present, else why
 * not; the first missing one counts like a missing toolchain.
 */
export function describeE2e(name: string, body: () => void, ...more: (string | undefined)[]): void {
  const missing = missingPrerequisite() ?? more.find((reason) => reason !== undefined);
  if (!missing) {
    describe(name, body);
  } else if (process.env.REQUIRE_E2E === '1') {
    describe(name, () => {
      test('prerequisites (REQUIRE_E2E=1)', () => {
        throw new Error(`REQUIRE_E2E=1 but ${missing}`);
      });
    });
  } else {
    describe.skip(`${name} [skipped: ${missing}]`, body);
  }
}

interface TofuRun {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * One tofu command in its own process group. A hung one is killed with its provider plugins
 * (the whole group, all started here) after the timeout, and reported as hung.
 */
function runTofu(dir: string, args: string[], binary = TOFU): TofuRun {
  // setsid: tofu leads a new process group (it is exec'd, so the group id is its pid).
  const result = spawnSync('setsid', [binary, ...args, '-no-color'], {
    cwd: dir,
    env: tofuEnv(),
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    timeout: TOFU_TIMEOUT_MS,
    killSignal: 'SIGKILL',
  });
  if (result.pid) {
    try {
      process.kill(-result.pid, 'SIGKILL'); // plugins left behind by a killed tofu
    } catch {
      // the group is gone: the usual case
    }
  }
  if (result.signal !== null || result.error) {
    throw new Error(`tofu hung: ${path.basename(binary)} ${args.join(' ')} killed after ${TOFU_TIMEOUT_MS / 1000} s (${result.error ?? result.signal}):\n${result.stdout}`);
  }
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A Terraform engine the tests drive: OpenTofu from the toolchain, or Terraform where installed. */
export interface Engine {
  readonly name: 'OpenTofu' | 'Terraform';
  readonly binary: string;
}

export const OPENTOFU: Engine = { name: 'OpenTofu', binary: TOFU };

/** Terraform, where the machine has it (`terraform` on PATH), else undefined. */
export function terraformEngine(): Engine | undefined {
  try {
    const binary = execFileSync('sh', ['-c', 'command -v terraform'], { encoding: 'utf8' }).trim();
    return binary ? { name: 'Terraform', binary } : undefined;
  } catch {
    return undefined;
  }
}

/** Runs tofu (or another engine) in `dir`; returns stdout, throws with stderr on failure. */
export function tofu(dir: string, args: string[], engine: Engine = OPENTOFU): string {
  const r = runTofu(dir, args, engine.binary);
  if (r.status !== 0) throw new Error(`tofu ${args.join(' ')} failed (exit ${r.status}):\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

/** `tofu plan -detailed-exitcode`: 0 no changes, 2 changes; returns the code and the text. */
export function tofuPlan(dir: string, extra: string[] = [], engine: Engine = OPENTOFU): { code: number; output: string } {
  const r = runTofu(dir, ['plan', '-input=false', '-detailed-exitcode', ...extra], engine.binary);
  if (r.status === 0 || r.status === 2) return { code: r.status, output: r.stdout };
  throw new Error(`tofu plan failed (exit ${r.status}):\n${r.stderr}\n${r.stdout}`);
}

/** virsh against one connection URI. */
export function virsh(uri: string, ...args: string[]): string {
  try {
    return execFileSync('virsh', ['-q', '-c', uri, ...args], { encoding: 'utf8' });
  } catch (err) {
    const e = err as { stderr?: string };
    throw new Error(`virsh -c ${uri} ${args.join(' ')}: ${e.stderr ?? err}`);
  }
}

/** Polls `check` every 100 ms until it holds; throws `timed out waiting for <what>` after `ms`. */
export function waitFor(check: () => boolean, what: string, ms = 30_000): Promise<void> {
  return poll(check, ms, () => `timed out waiting for ${what}`, 100);
}

/**
 * A `test` that prints how long it took, as `drill '<name>': 12.3 s`, and adds that line to
 * `durations` (printed together at the end of a drill file).
 */
export function drillTest(durations: string[]): (name: string, body: () => Promise<void> | void) => void {
  return (name, body) =>
    test(name, async () => {
      const started = Date.now();
      try {
        await body();
      } finally {
        const line = `drill '${name}': ${((Date.now() - started) / 1000).toFixed(1)} s`;
        durations.push(line);
        console.log(line);
      }
    });
}

/** Destroys what a drill applied in `stackDir`, if it applied anything; a failure is only printed (the lab's teardown removes it all anyway). */
export function destroyAfterDrills(stackDir: string, applied: boolean, engine: Engine = OPENTOFU): void {
  if (!applied) return;
  try {
    tofu(stackDir, ['destroy', '-auto-approve', '-input=false'], engine);
  } catch (err) {
    console.log(`cleanup destroy failed (the lab teardown removes everything anyway): ${err}`);
  }
}
