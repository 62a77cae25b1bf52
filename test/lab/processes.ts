/**
 * Process and namespace helpers for the lab. Each lab host runs in its own PID namespace, so the pids
 * in its pid files are the namespace's own; `outerPid` translates them. Every signal goes through
 * `killInNamespace`, so a pid that was reused (pids wrap at 32768 here) can never hit a process the
 * lab did not start: the process must live in a namespace the lab made (a host's PID namespace, or
 * the lab's network namespace for the process that holds it).
 *
 * The kernel gives a new namespace the lowest free id, so the id of a namespace that is gone comes
 * back at once for the next one made, by this lab or by a lab of the other e2e stream. A lab therefore
 * holds its PID and network namespaces open (`holdNamespace`) until this process exits: their ids stay
 * theirs, and "no process left in it" cannot be answered by another lab's processes.
 */
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync } from 'fs';

/** A process as recorded by the lab: the pid plus its start time, which tells it apart from a later process reusing the pid. */
export interface LabProcess {
  readonly pid: number;
  /** clock ticks since boot (field 22 of /proc/<pid>/stat) */
  readonly startTime: number;
  /** what the process is, e.g. `h1 libvirtd`, `h1 qemu vm-a` */
  readonly role: string;
}

export type NamespaceKind = 'mnt' | 'pid' | 'net';

interface ProcStat {
  readonly state: string;
  /** the parent's pid (field 4) */
  readonly parent: number;
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
  return { state: fields[0], parent: Number(fields[1]), startTime: Number(fields[19]) };
}

function alive(stat: ProcStat | undefined): stat is ProcStat {
  // A zombie waiting to be reaped counts as gone.
  return stat !== undefined && stat.state !== 'Z' && stat.state !== 'X';
}

/** Whether the process runs. */
export function isRunning(pid: number): boolean {
  return alive(procStat(pid));
}

/** Whether this very process (same pid and start time) still runs. */
export function isStillRunning(proc: LabProcess): boolean {
  const stat = procStat(proc.pid);
  return alive(stat) && stat.startTime === proc.startTime;
}

/** Records a running process, or returns undefined when it is gone. */
export function recordProcess(pid: number, role: string): LabProcess | undefined {
  const stat = procStat(pid);
  return alive(stat) ? { pid, startTime: stat.startTime, role } : undefined;
}

/** A namespace of a process, e.g. `mnt:[4026532177]`; undefined once it has exited. */
export function namespaceOf(pid: number | 'self', kind: NamespaceKind): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/${kind}`);
  } catch {
    return undefined;
  }
}

/** Open files on namespaces held by `holdNamespace`, by namespace; closed only when this process exits. */
const held = new Map<string, number>();

/**
 * Holds the `kind` namespace of `pid` open until this process exits, so its id is never given to
 * another namespace meanwhile (an empty PID or network namespace costs the kernel little; a mount
 * namespace is not held: it would keep a host's mounts). Returns the namespace, or undefined when
 * the process is gone.
 */
export function holdNamespace(pid: number, kind: 'pid' | 'net'): string | undefined {
  let fd: number;
  try {
    fd = openSync(`/proc/${pid}/ns/${kind}`, 'r');
  } catch {
    return undefined;
  }
  // The namespace of the open file, which can no longer change under us.
  const namespace = readlinkSync(`/proc/self/fd/${fd}`);
  if (held.has(namespace)) closeSync(fd);
  else held.set(namespace, fd);
  return namespace;
}

/**
 * Every live process in the given namespace. Exact for a namespace held here (`holdNamespace`). A
 * mount namespace is not held, and its id may since belong to a namespace someone else made: only
 * processes in a PID namespace held here, or children of this process (a host's holder), count.
 */
export function pidsInNamespace(namespace: string): number[] {
  const kind = namespace.slice(0, namespace.indexOf(':')) as NamespaceKind;
  const ours = (pid: number) => held.has(namespace) || held.has(namespaceOf(pid, 'pid') ?? '') || procStat(pid)?.parent === process.pid;
  return allPids().filter((pid) => namespaceOf(pid, kind) === namespace && isRunning(pid) && ours(pid));
}

/** The pid, as seen from here, of the process that has pid `inner` inside the PID namespace `pidNamespace`. */
export function outerPid(inner: number, pidNamespace: string): number | undefined {
  for (const pid of pidsInNamespace(pidNamespace)) {
    try {
      // "NSpid:\t26397\t1": the pid in each namespace, outermost first.
      const nspid = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      const pids = nspid?.[1].trim().split(/\s+/).map(Number) ?? [];
      if (pids[pids.length - 1] === inner) return pid;
    } catch {
      // exited meanwhile
    }
  }
  return undefined;
}

/** The live children of a process. */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Reads a daemon's or QEMU's pid file. */
export function readPidFile(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Sends a signal to `pid` only if that process lives in `namespace` (a lab host's own PID namespace,
 * or the lab's own network namespace, so the lab started it). Returns whether the signal was sent.
 */
export function killInNamespace(pid: number, namespace: string, signal: NodeJS.Signals = 'SIGKILL'): boolean {
  const kind = namespace.slice(0, namespace.indexOf(':')) as NamespaceKind;
  if (namespaceOf(pid, kind) !== namespace) return false;
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

function allPids(): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number);
}
