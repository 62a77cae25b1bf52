/**
 * Process and mount-namespace helpers for the lab. Every kill goes through `killInNamespace`, so a
 * pid read from a stale pid file (pids wrap at 32768 here) can never hit a process the lab did not start.
 */
import { readdirSync, readFileSync, readlinkSync } from 'fs';

/** A process as recorded by the lab: the pid plus its start time, which tells it apart from a later process reusing the pid. */
export interface LabProcess {
  readonly pid: number;
  /** clock ticks since boot (field 22 of /proc/<pid>/stat) */
  readonly startTime: number;
  /** what the process is, e.g. `h1 libvirtd`, `h1 qemu vm-a` */
  readonly role: string;
}

interface ProcStat {
  readonly state: string;
  readonly startTime: number;
}

function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0], startTime: Number(fields[19]) };
}

/** Whether the process runs (a zombie waiting for PID 1 to reap it counts as gone). */
export function isRunning(pid: number): boolean {
  const stat = procStat(pid);
  return stat !== undefined && stat.state !== 'Z' && stat.state !== 'X';
}

/** Whether this very process (same pid and start time) still runs. */
export function isStillRunning(proc: LabProcess): boolean {
  const stat = procStat(proc.pid);
  return stat !== undefined && stat.state !== 'Z' && stat.state !== 'X' && stat.startTime === proc.startTime;
}

/** Records a running process, or returns undefined when it is gone. */
export function recordProcess(pid: number, role: string): LabProcess | undefined {
  const stat = procStat(pid);
  if (stat === undefined || stat.state === 'Z') return undefined;
  return { pid, startTime: stat.startTime, role };
}

/** The mount namespace of a process, e.g. `mnt:[4026532177]`; undefined once it has exited. */
export function mountNamespaceOf(pid: number | 'self'): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}

/** Every live process in the given mount namespace. */
export function pidsInNamespace(namespace: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (mountNamespaceOf(pid) === namespace && isRunning(pid)) pids.push(pid);
  }
  return pids;
}

/** Reads a daemon's or QEMU's pid file. */
export function readPidFile(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Sends a signal to `pid` only if that process lives in `namespace` (one of the lab's private mount
 * namespaces, so the lab started it). Returns whether the signal was sent.
 */
export function killInNamespace(pid: number, namespace: string, signal: NodeJS.Signals = 'SIGKILL'): boolean {
  if (mountNamespaceOf(pid) !== namespace) return false;
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Blocks the thread: only for the process 'exit' safety net, where nothing asynchronous runs. */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Polls `condition` until it holds; throws `describe()` after `timeoutMs`. */
export async function waitFor(condition: () => boolean, timeoutMs: number, describe: () => string, intervalMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(describe());
    await sleep(intervalMs);
  }
}
