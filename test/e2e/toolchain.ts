/**
 * What the real-libvirt tests need, found the way scripts/toolchain.sh leaves it, and the rule
 * for when it is missing: skip with a stated reason, or fail under REQUIRE_E2E=1.
 */
import { execFileSync, ExecFileSyncOptionsWithStringEncoding } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

export const CACHE = process.env.LIBVIRT_CLUSTER_CACHE ?? path.join(os.homedir(), '.cache', 'cdktf-libvirt-cluster');
export const TOFU = path.join(CACHE, 'bin', 'tofu');
export const TOFU_RC = path.join(CACHE, 'tofurc');

/**
 * Environment for tofu: offline provider mirror, no telemetry, and one operation at a time: the
 * 0.8.3 provider was seen to hang for good in a refresh with parallel calls on one libvirt
 * connection (once in three drill runs), as upstream reports for parallel operations.
 */
export function tofuEnv(): NodeJS.ProcessEnv {
  const serial = '-parallelism=1';
  return {
    ...process.env,
    TF_CLI_CONFIG_FILE: TOFU_RC,
    TF_IN_AUTOMATION: '1',
    CHECKPOINT_DISABLE: '1',
    TF_CLI_ARGS_plan: serial,
    TF_CLI_ARGS_apply: serial,
    TF_CLI_ARGS_destroy: serial,
  };
}

/** A hung tofu fails its test after this long instead of holding the suite. */
const TOFU_TIMEOUT_MS = 5 * 60 * 1000;

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
 * reason otherwise, and fails loudly instead of skipping when REQUIRE_E2E=1.
 */
export function describeE2e(name: string, body: () => void): void {
  const missing = missingPrerequisite();
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

function execOptions(dir: string): ExecFileSyncOptionsWithStringEncoding {
  return { cwd: dir, env: tofuEnv(), encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: TOFU_TIMEOUT_MS, killSignal: 'SIGKILL' };
}

/** Runs tofu in `dir`; returns stdout, throws with stderr on failure. */
export function tofu(dir: string, args: string[]): string {
  try {
    return execFileSync(TOFU, [...args, '-no-color'], execOptions(dir));
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; status?: number };
    throw new Error(`tofu ${args.join(' ')} failed (exit ${e.status}):\n${e.stderr ?? ''}\n${e.stdout ?? ''}`);
  }
}

/** `tofu plan -detailed-exitcode`: 0 no changes, 2 changes; returns the code and the text. */
export function tofuPlan(dir: string, extra: string[] = []): { code: number; output: string } {
  try {
    const output = execFileSync(TOFU, ['plan', '-input=false', '-detailed-exitcode', '-no-color', ...extra], execOptions(dir));
    return { code: 0, output };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; status?: number };
    if (e.status === 2) return { code: 2, output: e.stdout ?? '' };
    throw new Error(`tofu plan failed (exit ${e.status}):\n${e.stderr ?? ''}\n${e.stdout ?? ''}`);
  }
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
