/**
 * `cdktf-libvirt-cluster controller`: the long-running process that takes, unattended, the steps a
 * person takes when a host dies, a schedule window starts, or a host can sleep. The decisions are
 * `controller-core.ts`'s (pure); this file observes (probes), fences, synthesizes, reconciles and
 * applies, and writes the event log.
 *
 * A deploy of a stack is the person's sequence: synth with the decided host states and instant in
 * the context, then, holding the controllers' mutex of the stack, `reconcile` and
 * `<engine> apply -auto-approve -input=false -lock-timeout=0s`. The mutex (another workspace's
 * state lock in the stack's own backend, held by an `<engine> console` while the deploy runs; with
 * a local backend, a `flock` on a file beside the state) keeps two controllers from reconciling
 * while the other applies; the state lock keeps them, and everyone else, from applying at once.
 * A deploy that finds either lock taken logs `lost-lock` and tries again on a later cycle, after a
 * fresh synth and plan: never with a forced unlock.
 *
 * With a membership layer (`membership.corosync`), every observation also reads corosync's
 * votequorum status; the decisions then wait for a quorate partition. A fence `off` counts only
 * once the agent's `status` says off within `fenceTimeoutSeconds`. While a long step runs (a
 * deploy, a fence and its confirmation) the hosts and the membership are still observed every
 * `pollSeconds`, and SIGTERM stops reconcile between two steps and interrupts an apply the way the
 * engine expects (SIGINT: it finishes what it started and saves the state); the event log says what
 * was left undone. `dryRun` observes and logs each step it would take, and takes none.
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { CONTROLLER_FILE } from '../core/controller-file';
import { DecisionRecord, emptyRecord, heldElsewhere, interruptedStep, openIncident, revise, stepEnded, stepStarted } from '../core/decision-record';
import { ResolvedControllerConfig, UNATTENDED_NAMES } from './controller-config';
import {
  afterDeploy, afterFence, baseline, CycleFailures, Decisions, deployContext, emptyDecisions, enabledActions, HostTrack, parseStackFacts, StackFacts, Step,
} from './controller-core';
import { decideWithRecord, failoverApplied, incidentsOfDeploy, takeoverAfterMs } from './controller-record';
import { DecisionStore, decisionStoreFor } from './decision-record';
import { terraformEngine } from './engine';
import { describeView, MembershipView, parseQuorumStatus, quorumStatusArgv } from './membership';
import { formatAction, reconcile, ReconcileError } from './reconcile';

export type ControllerEventName =
  | 'start' | 'enabled' | 'observed' | 'membership' | 'decided' | 'would' | 'refused' | 'waiting' | 'fenced' | 'resumed' | 'fence-failed' | 'synth' | 'init' | 'reconcile' | 'applied' | 'lost-lock' | 'error' | 'stop';

/** One line of the event log. */
export interface ControllerEvent {
  /** Real time, ISO. */
  readonly time: string;
  /** The controller's clock when it runs with an offset (`--clock-offset-seconds`). */
  readonly clock?: string;
  readonly controller: string;
  readonly event: ControllerEventName;
  readonly host?: string;
  readonly stack?: string;
  readonly detail: string;
  /** How long the step took. */
  readonly ms?: number;
}

export interface ControllerOptions {
  readonly config: ResolvedControllerConfig;
  /**
   * Added to the real time to make the controller's clock (tests pretend it is 07:59:50).
   * @default 0
   */
  readonly clockOffsetMs?: number;
  /**
   * One cycle, then stop.
   * @default false
   */
  readonly once?: boolean;
  /**
   * Where the human lines go.
   * @default console.log
   */
  readonly print?: (line: string) => void;
  /**
   * Observe only: probes, membership and synth as usual; each step it would take is logged
   * (`would`) and none is taken (no fence, no reconcile, no apply, no decision saved).
   * @default false
   */
  readonly dryRun?: boolean;
}

/** The workspace whose state lock is the controllers' mutex for a stack. */
export const MUTEX_WORKSPACE = 'cdktf-libvirt-cluster-controller';

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
  readonly timedOut: boolean;
  /** Whether `signal` fired while it ran (it was sent SIGINT). */
  readonly interrupted: boolean;
}

/**
 * Runs a command to its end (killed after `timeoutMs`), with `input` on stdin. When `signal`
 * fires, the command gets SIGINT (OpenTofu's and Terraform's graceful stop: what is under way
 * finishes and the state is saved) and is waited for.
 */
export function runCommand(argv: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; timeoutMs: number; signal?: AbortSignal }): Promise<Run> {
  const started = Date.now();
  return new Promise((resolve) => {
    let child: ChildProcess;
    try {
      child = spawn(argv[0], argv.slice(1), { cwd: options.cwd, env: options.env, stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (err) {
      resolve({ code: null, signal: null, stdout: '', stderr: String((err as Error).message), ms: 0, timedOut: false, interrupted: false });
      return;
    }
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let interrupted = false;
    const interrupt = () => {
      interrupted = true;
      child.kill('SIGINT');
    };
    if (options.signal?.aborted) interrupt();
    else options.signal?.addEventListener('abort', interrupt, { once: true });
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    child.stdin!.on('error', () => undefined);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    child.on('error', (err) => {
      stderr += String(err.message);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', interrupt);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started, timedOut, interrupted });
    });
    child.stdin!.end(options.input ?? '');
  });
}

/** The last meaningful line of a command's error output. */
function lastLines(text: string, count = 3): string {
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !/^[╷│╵]$/.test(l)).map((l) => l.replace(/^[│╷╵]\s*/, '')).slice(-count).join(' ');
}

/** Cycles a stack waits after finding another applier's lock. */
const LOST_LOCK_BACKOFF_POLLS = 3;
/** Cycles a stack waits after a deploy that failed otherwise (synth, reconcile, apply). */
const ERROR_BACKOFF_POLLS = 5;

const LOCKED = /Error acquiring the state lock|state lock|resource temporarily unavailable|already locked/i;

/** {@link CycleFailures} as a cycle fills them in, step by step. */
type Failures = { -readonly [K in keyof CycleFailures]: Record<string, string> };

/**
 * Runs a fence agent with the fence-agents contract: options on stdin as `name=value` lines, then
 * `action=…`; exit 0 is success (for `status`, on; 2, off). A killed or timed-out agent has not
 * confirmed anything.
 */
export async function runFence(fence: { command: readonly string[]; options?: Readonly<Record<string, string>> }, action: 'off' | 'on' | 'status', timeoutMs: number, env?: NodeJS.ProcessEnv): Promise<{ ok: boolean; code: number | null; message: string; ms: number }> {
  const input = [...Object.entries(fence.options ?? {}).map(([k, v]) => `${k}=${v}`), `action=${action}`, ''].join('\n');
  const run = await runCommand(fence.command, { input, timeoutMs, env });
  const ok = run.code === 0 && !run.timedOut;
  const said = lastLines(run.stderr || run.stdout, 2);
  const why = run.timedOut ? `timed out after ${timeoutMs / 1000} s and was killed` : run.signal !== null ? `killed by ${run.signal}` : `exit ${run.code}${said ? `: ${said}` : ''}`;
  return { ok, code: run.code, message: ok ? 'exit 0' : why, ms: run.ms };
}

/** A step in words, for the dry run's log. */
function describeStep(step: Step): string {
  if (step.kind === 'fence') return `fence ${step.host} (action=${step.action}, ${step.purpose}): ${step.reason}`;
  if (step.kind === 'deploy') return `deploy ${step.stack} (synth, reconcile, apply): ${step.reason}`;
  return `decide: ${step.detail}`;
}

/** How often `status` is asked while a fence `off` is being confirmed. */
const CONFIRM_POLL_MS = 500;

/**
 * After an `off` that exited 0: asks the agent's `status` until it says off (exit 2), within
 * `timeoutMs` from now. Anything else (on, unknown, a hung agent) by then is not a confirmation.
 */
export async function confirmOff(fence: { command: readonly string[]; options?: Readonly<Record<string, string>> }, timeoutMs: number, env?: NodeJS.ProcessEnv): Promise<{ ok: boolean; message: string; ms: number }> {
  const started = Date.now();
  let last = 'no answer';
  for (;;) {
    const left = timeoutMs - (Date.now() - started);
    if (left <= 0) break;
    const status = await runFence(fence, 'status', left, env);
    if (status.code === 2 && !status.message.startsWith('timed out')) return { ok: true, message: `action=status says off after ${((Date.now() - started) / 1000).toFixed(1)} s`, ms: Date.now() - started };
    last = status.ok ? 'on (exit 0)' : status.message;
    await new Promise((r) => setTimeout(r, Math.min(CONFIRM_POLL_MS, Math.max(0, timeoutMs - (Date.now() - started)))));
  }
  return { ok: false, message: `action=off exited 0 but action=status did not say off within ${timeoutMs / 1000} s (fenceTimeoutSeconds; last status: ${last})`, ms: Date.now() - started };
}

export class Controller {
  private readonly config: ResolvedControllerConfig;
  private readonly offset: number;
  private readonly print: (line: string) => void;
  private readonly env: NodeJS.ProcessEnv;
  private readonly tracks: Record<string, HostTrack> = {};
  /** The decisions of the record as last read or written. */
  private decisions: Decisions = emptyDecisions();
  /** The stacks' decision record as last read or written (lib/core/decision-record.ts). */
  private record: DecisionRecord<Decisions> = emptyRecord(emptyDecisions());
  /** Where the record is kept: the first stack's backend, copied to the others'; known once the stacks are synthesized. */
  private stores?: DecisionStore[];
  private opened = false;
  private facts: Record<string, StackFacts | undefined> = {};
  private enabledLine: Record<string, string> = {};
  private readonly initialized = new Set<string>();
  private readonly warned = new Map<string, number>();
  /** When each stack may be tried again after a lost lock (real time, ms). */
  private readonly backoff: Record<string, number> = {};
  /** The last synth into the outdir: its context, deploy key and the controller clock then. */
  private synthesized?: { readonly context: string; readonly key: string; readonly at: number };
  private stopping = false;
  private wake?: () => void;
  /** Fires on stop(): reconcile stops between steps, an apply is interrupted gracefully. */
  private readonly stopSignal = new AbortController();
  /** The last reading of corosync (with a membership layer). */
  private membership?: { view?: MembershipView; error?: string };
  /** An observation under way: the background one and the cycle's never overlap. */
  private observing?: Promise<void>;

  constructor(private readonly options: ControllerOptions) {
    this.config = options.config;
    this.offset = options.clockOffsetMs ?? 0;
    this.print = options.print ?? ((line) => console.log(line));
    this.env = { ...process.env, ...this.config.env };
  }

  /** The controller's clock: real time plus the offset. */
  public now(): number {
    return Date.now() + this.offset;
  }

  /** Ends the loop after the current step. */
  public stop(): void {
    this.stopping = true;
    this.stopSignal.abort();
    this.wake?.();
  }

  /** Runs until stopped (or one cycle with `once`); resolves with the exit code. */
  public async run(): Promise<number> {
    const c = this.config;
    const fenced = Object.entries(c.hosts).map(([h, x]) => `${h}${x.fence ? ` (fence: ${x.fence.command.join(' ')}; options ${Object.keys(x.fence.options ?? {}).join(', ') || 'none'})` : ' (no fence agent)'}`);
    this.event({
      event: 'start',
      detail: `stacks ${c.stacks.join(', ')}; hosts ${fenced.join(', ')}; poll ${c.pollMs / 1000} s, failure after ${c.failureAfterMs / 1000} s, probe timeout ${c.probeTimeoutMs / 1000} s, fence timeout ${c.fenceTimeoutMs / 1000} s; membership ${c.membership ? `corosync (${quorumStatusArgv(c.membership).join(' ')}; nodes ${Object.entries(c.membership.nodes).map(([h, n]) => (h === n ? h : `${h}=${n}`)).join(', ')})` : 'none'}; app '${c.app}' into ${c.outdir}${this.offset !== 0 ? `; clock offset ${this.offset / 1000} s (controller clock ${new Date(this.now()).toISOString()})` : ''}; decisions in the decision record of each stack's state backend${this.options.dryRun ? '; DRY RUN: observes and logs what it would do, does nothing' : ''}`,
    });
    if (c.membership === undefined) {
      this.event({
        event: 'membership',
        detail: c.probesOnly
          ? 'none (membership: { probesOnly: true }): failover rests on this controller\'s probes alone, so a controller cut off from the hosts would fence hosts that are up; configure corosync (docs/controller.md, Topology)'
          : 'none configured (membership.corosync): no host is fenced for a failover until corosync is configured, or failover on the probes alone is accepted with membership: { probesOnly: true } (docs/controller.md, Topology)',
      });
    }
    // What the stacks enable comes from their synth: one synth before the first cycle.
    const first = c.stacks[0];
    const start = deployContext(first, this.decideInput());
    await this.synth(start.context, first, start.key).catch(() => undefined);
    this.logEnabled(true);
    try {
      this.openRecord();
    } catch (err) {
      this.event({ event: 'error', detail: `${(err as Error).message}: nothing is decided until the decision record can be read` });
    }
    for (;;) {
      const started = Date.now();
      try {
        await this.cycle();
      } catch (err) {
        this.event({ event: 'error', detail: `cycle failed: ${(err as Error).stack ?? err}` });
      }
      if (this.options.once || this.stopping) break;
      await this.sleep(Math.max(0, c.pollMs - (Date.now() - started)));
      if (this.stopping) break;
    }
    this.event({ event: 'stop', detail: 'stopped' });
    return 0;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** One cycle: probe every host, then take the steps decided, one after the other. */
  public async cycle(): Promise<void> {
    await this.observeOnce();
    try {
      this.openRecord();
    } catch (err) {
      this.warn('record', { event: 'error', detail: `${(err as Error).message}: nothing is decided until the decision record can be read` });
      return;
    }
    const failures: Failures = { fence: {}, deploy: {}, synth: {} };
    // A stack whose locks another applier held waits a few cycles: that applier is mid-deploy.
    for (const [stack, until] of Object.entries(this.backoff)) if (Date.now() < until) failures.deploy[stack] = 'lost the lock moments ago';
    for (let i = 0; i < 20 && !this.stopping; i++) {
      const { step, warnings } = decideWithRecord({ ...this.decideInput(), failures }, this.record, this.config.id);
      for (const w of warnings) this.warn(w.key, { event: w.event, host: w.host, stack: w.stack, detail: w.detail });
      if (step === undefined) return;
      if (this.options.dryRun) {
        const key = step.kind === 'fence' ? `${step.host}:${step.action}:${step.purpose}` : step.kind === 'deploy' ? `${step.stack}:${step.key}` : step.detail;
        this.warn(`would:${step.kind}:${key}`, { event: 'would', host: 'host' in step ? step.host : undefined, stack: 'stack' in step ? step.stack : undefined, detail: `would ${describeStep(step)} (dry run: nothing done)` });
        return;
      }
      await this.whileObserving(this.carryOut(step, failures));
    }
  }

  /** Keeps observing every pollSeconds while `work` runs (a deploy, a fence), then resolves with it. */
  private async whileObserving<T>(work: Promise<T>): Promise<T> {
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    let wake: (() => void) | undefined;
    const watch = (async () => {
      for (;;) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          timer = setTimeout(resolve, this.config.pollMs);
        });
        if (done || this.stopping) return;
        await this.observeOnce().catch((err) => this.event({ event: 'error', detail: `observation failed: ${(err as Error).message}` }));
      }
    })();
    try {
      return await work;
    } finally {
      // The step is done: the watch ends now, not after its pause (an observation under way finishes first).
      done = true;
      clearTimeout(timer);
      wake?.();
      await watch;
    }
  }

  /** One observation, or the one under way. */
  private observeOnce(): Promise<void> {
    if (this.observing === undefined) this.observing = this.observe().finally(() => (this.observing = undefined));
    return this.observing;
  }

  private decideInput() {
    const c = this.config;
    return {
      now: this.now(),
      config: { stacks: c.stacks, hosts: c.hosts, unattended: c.unattended, failureAfterMs: c.failureAfterMs, wakeTimeoutMs: c.wakeTimeoutMs, ...(c.membership ? { membership: { nodes: c.membership.nodes } } : {}), probesOnly: c.probesOnly },
      tracks: this.tracks,
      decisions: this.decisions,
      facts: this.facts,
      failures: { fence: {}, deploy: {}, synth: {} } as CycleFailures,
      membership: this.membership,
    };
  }

  private async observe(): Promise<void> {
    const hosts = Object.keys(this.config.hosts).sort();
    const [results] = await Promise.all([Promise.all(hosts.map((h) => this.probe(h))), this.readMembership()]);
    const now = this.now();
    for (const [i, h] of hosts.entries()) {
      const { ok, error } = results[i];
      const before = this.tracks[h];
      if (ok) {
        if (before !== undefined && !before.answering) this.event({ event: 'observed', host: h, detail: `${h} answers again, after ${((now - before.lastAnswer) / 1000).toFixed(1)} s without an answer` });
        this.tracks[h] = { answering: true, lastAnswer: now, answeringSince: before?.answering ? before.answeringSince : now };
      } else {
        if (before === undefined || before.answering) this.event({ event: 'observed', host: h, detail: `${h} does not answer: ${error}` });
        this.tracks[h] = { answering: false, lastAnswer: before?.lastAnswer ?? now, error };
      }
    }
  }

  /** Reads corosync's quorum status; logs `membership` whenever the view changes. */
  private async readMembership(): Promise<void> {
    const m = this.config.membership;
    if (m === undefined) return;
    const run = await runCommand(quorumStatusArgv(m), { timeoutMs: m.timeoutMs, env: this.env });
    let next: { view?: MembershipView; error?: string };
    try {
      next = { view: parseQuorumStatus(run.stdout) };
    } catch (err) {
      next = { error: run.timedOut ? `corosync-quorumtool gave no answer within ${m.timeoutMs / 1000} s` : lastLines(run.stderr || run.stdout, 1) || (err as Error).message };
    }
    const said = (r?: { view?: MembershipView; error?: string }) => (r?.view ? describeView(r.view) : r?.error ? `unknown: ${r.error}` : undefined);
    if (said(next) !== said(this.membership)) this.event({ event: 'membership', detail: `corosync: ${said(next)}` });
    this.membership = next;
  }

  private async probe(host: string): Promise<{ ok: boolean; error?: string }> {
    const run = await runCommand(['virsh', '-c', this.config.hosts[host].uri, 'version'], { timeoutMs: this.config.probeTimeoutMs, env: this.env });
    if (run.code === 0) return { ok: true };
    return { ok: false, error: run.timedOut ? `no answer within ${this.config.probeTimeoutMs / 1000} s` : lastLines(run.stderr, 1).replace(/^error: /, '') || `virsh exit ${run.code}` };
  }

  private async carryOut(step: Step, failures: Failures): Promise<void> {
    if (step.kind === 'decide') {
      // Decided from the record as read: when another controller wrote since, it is decided again.
      if (!this.commit((r) => ({ ...r, decisions: step.decisions }), step.detail, false)) return;
      this.event({ event: 'decided', host: step.host, stack: step.stack, detail: step.detail });
      return;
    }
    if (step.kind === 'fence') {
      const fence = this.config.hosts[step.host].fence!;
      const name = `fence ${step.action}`;
      const by = this.config.id;
      const close = step.purpose !== 'failover'; // a failover ends once its deploys are applied
      const ended = (state: 'done' | 'failed', detail: string) => (r: DecisionRecord<Decisions>) => ({
        ...stepEnded(r, { host: step.host, step: name, state, by, now: this.now(), detail, close: close && state === 'done' }),
        ...(state === 'done' ? { decisions: afterFence(r.decisions, step, this.now()) } : {}),
      });
      const interrupted = step.action === 'off' ? interruptedStep(openIncident(this.record, step.host), name) : undefined;
      if (interrupted !== undefined) {
        // Its controller stopped between starting this fence and recording its end: the agent says whether it happened.
        const status = await runFence(fence, 'status', this.config.fenceTimeoutMs, this.env);
        if (status.code === 2) {
          const detail = `${step.host} is off (action=status exit 2): the fence ${interrupted.by} started at ${interrupted.at} was carried out; not fenced again`;
          this.commit(ended('done', detail), detail);
          this.event({ event: 'resumed', host: step.host, detail, ms: status.ms });
          return;
        }
      }
      // Recorded before it is carried out; another controller that has the host's incident keeps it.
      const takeover = takeoverAfterMs(this.config.failureAfterMs);
      const mine = this.commit(
        (r) => (heldElsewhere(r, by, this.now(), takeover)[step.host] !== undefined || (step.purpose === 'failover' && r.decisions.hostStates[step.host] === 'failed') ? undefined : stepStarted(r, { host: step.host, purpose: step.purpose, step: name, by, now: this.now() })),
        `${name} of ${step.host} started`,
      );
      if (!mine) return;
      this.event({ event: 'decided', host: step.host, detail: step.reason });
      const result = await runFence(fence, step.action, this.config.fenceTimeoutMs, this.env);
      const what = `${fence.command.join(' ')} action=${step.action} (options ${Object.keys(fence.options ?? {}).join(', ') || 'none'})`;
      // An off counts once the agent's status says off: an exit code alone proves nothing.
      const confirmed = result.ok && step.action === 'off' ? await confirmOff(fence, this.config.fenceTimeoutMs, this.env) : undefined;
      if (result.ok && confirmed?.ok !== false) {
        this.commit(ended('done', `${what}: exit 0${confirmed ? `, ${confirmed.message}` : ''}`), `${name} of ${step.host} done`);
        const meaning = step.purpose === 'failover' ? `${step.host} is confirmed off: declared failed` : step.purpose === 'standby' ? `${step.host} is powered off (standby)` : `${step.host} is powering on`;
        this.event({ event: 'fenced', host: step.host, detail: `${what}: exit 0${confirmed ? `, ${confirmed.message}` : ''}; ${meaning}`, ms: result.ms + (confirmed?.ms ?? 0) });
      } else if (confirmed !== undefined) {
        failures.fence[step.host] = confirmed.message;
        this.commit(ended('failed', `${what}: ${confirmed.message}`), `${name} of ${step.host} not confirmed off`);
        this.event({ event: 'fence-failed', host: step.host, detail: `${what}: ${confirmed.message}: ${step.host} is not confirmed off, nothing of it is restarted`, ms: result.ms + confirmed.ms });
      } else {
        failures.fence[step.host] = result.message;
        this.commit(ended('failed', `${what}: ${result.message}`), `${name} of ${step.host} failed`);
        this.event({ event: 'fence-failed', host: step.host, detail: `${what}: ${result.message}`, ms: result.ms });
      }
      return;
    }
    // The deploy is a step of the failover incidents it carries forward: recorded before and after.
    const carried = incidentsOfDeploy(this.record, step).map((i) => i.host);
    const name = `deploy ${step.stack}`;
    if (carried.length > 0) this.commit((r) => carried.reduce((acc, host) => stepStarted(acc, { host, purpose: 'failover', step: name, by: this.config.id, now: this.now() }), r), `${name} started`);
    await this.deploy(step, failures);
    const failed = failures.deploy[step.stack];
    if (carried.length > 0 && failed !== undefined) {
      this.commit((r) => carried.reduce((acc, host) => stepEnded(acc, { host, step: name, state: 'failed', by: this.config.id, now: this.now(), detail: failed }), r), `${name} failed`);
    }
  }

  /** Synth, then under the controllers' mutex: reconcile, apply. */
  private async deploy(step: Extract<Step, { kind: 'deploy' }>, failures: Failures): Promise<void> {
    const { stack } = step;
    // A deploy that fails is not tried again for a while (a broken synth would otherwise run every cycle).
    this.backoff[stack] = Date.now() + ERROR_BACKOFF_POLLS * this.config.pollMs;
    const started = Date.now();
    this.event({ event: 'decided', stack, detail: `deploy ${stack}: ${step.reason}` });
    try {
      await this.synth(step.context, stack, step.key);
    } catch (err) {
      failures.synth[stack] = (err as Error).message;
      failures.deploy[stack] = (err as Error).message;
      return;
    }
    const stackDir = path.join(this.config.outdir, 'stacks', stack);
    const engine = terraformEngine(stackDir, this.config.engine, this.env).binary;
    if (!this.initialized.has(stackDir)) {
      const init = await runCommand([engine, 'init', '-input=false', '-no-color'], { cwd: stackDir, env: this.env, timeoutMs: 10 * 60_000 });
      if (init.code !== 0) {
        failures.deploy[stack] = 'init failed';
        this.event({ event: 'error', stack, detail: `${engine} init failed: ${lastLines(init.stderr)}`, ms: init.ms });
        return;
      }
      this.initialized.add(stackDir);
      this.event({ event: 'init', stack, detail: `${engine} init in ${stackDir}`, ms: init.ms });
    }
    const mutex = await this.acquireMutex(stackDir, engine);
    if (typeof mutex === 'string') {
      failures.deploy[stack] = mutex;
      if (mutex === 'locked') this.backOffAfterLostLock(stack);
      this.event({ event: mutex === 'locked' ? 'lost-lock' : 'error', stack, detail: mutex === 'locked' ? 'another controller is deploying this stack (its mutex is held): trying again in a few cycles, re-synthesized if anything changed' : mutex });
      return;
    }
    try {
      const reachable = this.reachableHosts();
      const reconcileStarted = Date.now();
      const lines: string[] = [];
      try {
        const actions = await reconcile({
          stackDir,
          hosts: Object.fromEntries(reachable.map((h) => [h, this.config.hosts[h].uri])),
          migrateUris: Object.fromEntries(reachable.filter((h) => this.config.hosts[h].migrateUri).map((h) => [h, this.config.hosts[h].migrateUri!])),
          terraformBinary: engine,
          env: this.env,
          signal: this.stopSignal.signal,
          log: (line) => lines.push(line),
        });
        for (const line of lines) this.print(`  ${line}`);
        this.event({ event: 'reconcile', stack, detail: actions.map((a) => formatAction(a, false)).join('; ') || 'nothing to reconcile', ms: Date.now() - reconcileStarted });
      } catch (err) {
        for (const line of lines) this.print(`  ${line}`);
        failures.deploy[stack] = 'reconcile failed';
        const message = err instanceof ReconcileError ? err.message : String((err as Error).message ?? err);
        this.event({ event: 'error', stack, detail: `reconcile failed: ${message.replace(/\s*\n\s*/g, '; ')}`, ms: Date.now() - reconcileStarted });
        return;
      }
      if (this.stopping) {
        failures.deploy[stack] = 'stopping';
        this.event({ event: 'error', stack, detail: `stopping (SIGTERM) after reconcile, before the apply: ${step.reason} is not applied; a controller deploys it on its next cycle` });
        return;
      }
      const apply = await runCommand([engine, 'apply', '-auto-approve', '-input=false', '-lock-timeout=0s', '-no-color'], { cwd: stackDir, env: this.env, timeoutMs: 30 * 60_000, signal: this.stopSignal.signal });
      fs.writeFileSync(path.join(stackDir, 'controller-apply.log'), `${apply.stdout}${apply.stderr}`);
      if (apply.interrupted) {
        failures.deploy[stack] = 'interrupted';
        this.event({ event: 'error', stack, detail: `stopping (SIGTERM) during the apply: ${engine} was interrupted (SIGINT) and ${apply.code === 0 ? 'finished' : `stopped (exit ${apply.code})`}, saving the state of what it did: ${lastLines(apply.stdout + apply.stderr, 2)}; ${step.reason} is ${apply.code === 0 ? 'applied, not recorded as such: the next cycle finds it applied' : 'not complete: a controller deploys it again on its next cycle'}`, ms: apply.ms });
        return;
      }
      if (apply.code !== 0) {
        failures.deploy[stack] = 'apply failed';
        if (LOCKED.test(apply.stderr)) {
          this.backOffAfterLostLock(stack);
          this.event({ event: 'lost-lock', stack, detail: `the state is locked by another applier: ${lastLines(apply.stderr.split('Lock Info:')[0], 2)}; trying again in a few cycles, re-synthesized if anything changed and re-planned by the apply`, ms: apply.ms });
        } else {
          this.event({ event: 'error', stack, detail: `${engine} apply failed: ${lastLines(apply.stderr, 4)}`, ms: apply.ms });
        }
        return;
      }
      const summary = /Apply complete! Resources: (\d+) added, (\d+) changed, (\d+) destroyed/.exec(apply.stdout);
      const changed = summary !== null && summary.slice(1).some((n) => n !== '0');
      const now = this.now();
      this.commit((r) => {
        const decisions = afterDeploy(r.decisions, step);
        const done = (acc: DecisionRecord<Decisions>, host: string) =>
          stepEnded(acc, { host, step: `deploy ${stack}`, state: 'done', by: this.config.id, now, detail: summary?.[0] ?? 'Apply complete', close: failoverApplied(this.decideInput(), decisions, host) });
        return incidentsOfDeploy(r, step).map((i) => i.host).reduce(done, { ...r, decisions });
      }, `deploy ${stack} applied`);
      delete this.backoff[stack];
      this.event({
        event: 'applied',
        stack,
        detail: `${summary ? summary[0] : 'Apply complete'}${changed ? '' : ' (nothing left to change: applied already)'}; ${step.reason}; whole deploy ${((Date.now() - started) / 1000).toFixed(1)} s`,
        ms: apply.ms,
      });
    } finally {
      await mutex.release();
    }
  }

  /** Another applier holds a lock of the stack: it is mid-deploy, so the stack waits a few cycles. */
  private backOffAfterLostLock(stack: string): void {
    this.backoff[stack] = Date.now() + LOST_LOCK_BACKOFF_POLLS * this.config.pollMs;
  }

  /** Hosts reconcile may contact: answering, and not failed or asleep by this controller's decision. */
  private reachableHosts(): string[] {
    return Object.keys(this.config.hosts)
      .sort()
      .filter((h) => this.tracks[h]?.answering && this.decisions.hostStates[h] !== 'failed' && !(this.decisions.hostStates[h] === 'standby' && this.decisions.poweredOff.includes(h)));
  }

  /**
   * Runs the app with the context, then reads every stack's controller.json; unless the last synth
   * had the same context, or differs only by an instant nobody pinned with no window boundary
   * since (a controller that lost the lock retries without a synth per cycle).
   */
  private async synth(context: Readonly<Record<string, string>>, stack: string, key: string): Promise<void> {
    const text = JSON.stringify(context);
    const last = this.synthesized;
    const unpinned = JSON.parse(key).instant === null;
    const boundaries = Object.values(this.facts).flatMap((f) => f?.clusters ?? []).map((c) => c.nextWindowStart);
    const noBoundary = this.facts[stack] !== undefined ? boundaries.every((b) => b === null || Date.parse(b) > this.now()) : last !== undefined && this.now() - last.at < 60_000;
    if (last !== undefined && (last.context === text || (unpinned && last.key === key && noBoundary))) return;
    this.synthesized = undefined;
    let base: Record<string, unknown> = {};
    try {
      base = JSON.parse(fs.readFileSync(path.join(this.config.cwd, 'cdktf.json'), 'utf8')).context ?? {};
    } catch {
      // no cdktf.json: the app's own defaults
    }
    fs.mkdirSync(this.config.outdir, { recursive: true });
    const run = await runCommand(['sh', '-c', this.config.app], {
      cwd: this.config.cwd,
      env: { ...this.env, CDKTF_OUTDIR: this.config.outdir, CDKTF_CONTEXT_JSON: JSON.stringify({ ...base, ...context }) },
      timeoutMs: 10 * 60_000,
    });
    const described = Object.entries(context).map(([k, v]) => `${k.replace(/^libvirt-cluster:/, '')}=${v}`).join(', ');
    if (run.code !== 0) {
      const message = `synth failed (${run.timedOut ? 'timed out' : `exit ${run.code}`}): ${lastLines(run.stderr || run.stdout, 6)}`;
      this.event({ event: 'error', stack, detail: `${message}; context ${described}`, ms: run.ms });
      throw new Error(message);
    }
    this.synthesized = { context: text, key, at: this.now() };
    this.readFacts();
    this.event({ event: 'synth', stack, detail: `context ${described}`, ms: run.ms });
    this.logEnabled(false);
  }

  private readFacts(): void {
    for (const stack of this.config.stacks) {
      const file = path.join(this.config.outdir, 'stacks', stack, CONTROLLER_FILE);
      try {
        this.facts[stack] = parseStackFacts(fs.readFileSync(file, 'utf8'), stack);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.event({ event: 'error', stack, detail: `cannot read ${file}: ${(err as Error).message}` });
        this.facts[stack] = undefined;
      }
    }
  }

  /** Per stack, which unattended actions are on and where they are enabled; logged at start and whenever it changes. */
  private logEnabled(always: boolean): void {
    for (const stack of this.config.stacks) {
      const enabled = enabledActions(this.config, this.facts[stack]);
      const line = UNATTENDED_NAMES.map((name) => (enabled.has(name) ? `${name}: on (${enabled.get(name)!.join(' and ')})` : `${name}: off`)).join('; ');
      const source = this.facts[stack] === undefined ? ' [no controller.json from the synth: only the controller configuration counts]' : '';
      if (this.enabledLine[stack] === line + source || (!always && this.enabledLine[stack] === undefined)) continue;
      this.enabledLine[stack] = line + source;
      this.event({ event: 'enabled', stack, detail: line + source });
    }
  }

  private acquireMutex(stackDir: string, engine: string): Promise<StackMutex | string> {
    return acquireMutex(stackDir, engine, this.env);
  }

  private warn(key: string, event: Omit<ControllerEvent, 'time' | 'controller'>): void {
    const last = this.warned.get(key);
    const now = Date.now();
    if (last !== undefined && now - last < this.config.repeatWarningMs) return;
    this.warned.set(key, now);
    this.event(event);
  }

  private event(e: Omit<ControllerEvent, 'time' | 'controller'>): void {
    const now = Date.now();
    const event: ControllerEvent = {
      time: new Date(now).toISOString(),
      ...(this.offset !== 0 ? { clock: new Date(now + this.offset).toISOString() } : {}),
      controller: this.config.id,
      event: e.event,
      ...(e.host !== undefined ? { host: e.host } : {}),
      ...(e.stack !== undefined ? { stack: e.stack } : {}),
      detail: e.detail,
      ...(e.ms !== undefined ? { ms: e.ms } : {}),
    };
    fs.mkdirSync(path.dirname(this.config.eventLog), { recursive: true });
    fs.appendFileSync(this.config.eventLog, `${JSON.stringify(event)}\n`);
    const loud = e.event === 'refused' || e.event === 'fence-failed' || e.event === 'error' || (e.event === 'membership' && /^none|unknown|NOT quorate/.test(e.detail.replace(/^corosync: /, ''))) ? 'WARNING ' : '';
    this.print(`${event.clock ?? event.time} ${this.config.id} ${loud}${e.event}${e.host ? ` ${e.host}` : e.stack ? ` ${e.stack}` : ''}: ${e.detail}${e.ms !== undefined ? ` (${e.ms} ms)` : ''}`);
  }

  /**
   * Reads the record; the first time, records what is deployed for stacks the record knows no
   * deploy of (the first controller's start: it deploys only what it decides) and logs where the
   * record is and the incidents in progress, which it resumes.
   */
  private openRecord(): void {
    this.loadRecord();
    if (this.opened && !this.options.dryRun) return;
    // A dry run writes nothing: its baseline is taken again, in memory, over every fresh read.
    this.commit((r) => ({ ...r, decisions: baseline({ ...this.decideInput(), decisions: r.decisions }) }), 'what was deployed when the controller started');
    if (this.opened) return;
    this.opened = true;
    const incidents = this.record.incidents.map((i) => `${i.purpose} of ${i.host} by ${i.owner}, last step ${i.steps[i.steps.length - 1]?.name ?? '-'} ${i.steps[i.steps.length - 1]?.state ?? ''}`.trim());
    this.event({ event: 'start', detail: `decision record: ${this.stores![0].where}, revision ${this.record.revision}; ${incidents.length > 0 ? `incidents in progress: ${incidents.join('; ')}` : 'no incident in progress'}` });
  }

  /** Reads the record from the first stack's store (the stores are known once the stacks are synthesized). */
  private loadRecord(): void {
    this.stores ??= this.config.stacks.map((stack) => decisionStoreFor(path.join(this.config.outdir, 'stacks', stack), this.env));
    const loaded = this.stores[0].load();
    this.record = loaded === undefined ? emptyRecord(emptyDecisions()) : { ...loaded, decisions: { ...emptyDecisions(), ...(loaded.decisions as Partial<Decisions>) } };
    this.decisions = this.record.decisions;
  }

  /**
   * Applies `change` to the record and writes it: a compare-and-set on the revision read, so a
   * write of another controller in between is never lost. On a conflict the record is read again
   * and, with `retry`, `change` applied to it again. False when `change` declines (undefined) or
   * the write lost the race without `retry`. Copied to the other stacks' stores after.
   */
  private commit(change: (r: DecisionRecord<Decisions>) => DecisionRecord<Decisions> | undefined, why: string, retry = true): boolean {
    for (let attempt = 0; attempt < 5; attempt++) {
      const base = this.record;
      const changed = change(base);
      if (changed === undefined) return false;
      const next = revise(base, changed, this.config.id, this.now(), why);
      if (this.options.dryRun) {
        // Observe-only: the decision is kept in memory, never written.
        this.record = next;
        this.decisions = next.decisions;
        return true;
      }
      const [primary, ...copies] = this.stores!;
      if (primary.write(next, base.revision)) {
        for (const copy of copies) copy.write(next, copy.load()?.revision ?? 0);
        this.record = next;
        this.decisions = next.decisions;
        return true;
      }
      this.loadRecord();
      if (!retry) return false;
    }
    throw new Error(`the decision record in ${this.stores![0].where} changed five times while this controller wrote it (${why})`);
  }
}

/** A held mutex of a stack (see {@link acquireMutex}). */
export interface StackMutex {
  release(): Promise<void>;
}

/**
 * Takes the controllers' mutex of a stack: the state lock of workspace MUTEX_WORKSPACE of the
 * stack's backend, held by an `<engine> console` that lives until release; with a local backend
 * (one machine), a flock on a file beside the state. 'locked' when another holds it. A person's
 * `reconcile` takes it too.
 */
export async function acquireMutex(stackDir: string, engine: string, baseEnv: NodeJS.ProcessEnv): Promise<StackMutex | string> {
  let backend: Record<string, any> = {};
  try {
    backend = JSON.parse(fs.readFileSync(path.join(stackDir, 'cdk.tf.json'), 'utf8')).terraform?.backend ?? {};
  } catch {
    // no configuration: treated as local
  }
  const kind = Object.keys(backend)[0] ?? 'local';
  let argv: string[];
  let env = baseEnv;
  let ready: RegExp;
  let input: string;
  if (kind === 'local') {
    const state = path.resolve(stackDir, backend.local?.path ?? 'terraform.tfstate');
    argv = ['flock', '-n', '-E', '75', `${state}.controller-lock`, 'sh', '-c', 'echo held; exec cat >/dev/null'];
    ready = /^held$/m;
    input = '';
  } else {
    const list = await runCommand([engine, 'workspace', 'list', '-no-color'], { cwd: stackDir, env: baseEnv, timeoutMs: 60_000 });
    if (list.code !== 0) return `${engine} workspace list failed: ${lastLines(list.stderr)}`;
    if (!list.stdout.split('\n').some((l) => l.replace(/^\*?\s*/, '').trim() === MUTEX_WORKSPACE)) {
      const created = await runCommand([engine, 'workspace', 'new', '-no-color', MUTEX_WORKSPACE], { cwd: stackDir, env: baseEnv, timeoutMs: 60_000 });
      const selected = await runCommand([engine, 'workspace', 'select', '-no-color', 'default'], { cwd: stackDir, env: baseEnv, timeoutMs: 60_000 });
      if (created.code !== 0 && !/already exists/.test(created.stderr)) return `${engine} workspace new ${MUTEX_WORKSPACE} failed: ${lastLines(created.stderr)}`;
      if (selected.code !== 0) return `${engine} workspace select default failed: ${lastLines(selected.stderr)}`;
    }
    argv = [engine, 'console', '-lock-timeout=0s', '-no-color'];
    env = { ...baseEnv, TF_WORKSPACE: MUTEX_WORKSPACE };
    ready = /^"held"$/m;
    input = '"held"\n';
  }
  const child = spawn(argv[0], argv.slice(1), { cwd: stackDir, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdin!.on('error', () => undefined);
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const held = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 60_000);
    child.stdout!.on('data', (d) => {
      out += d;
      if (ready.test(out)) {
        clearTimeout(timer);
        resolve(true);
      }
    });
    child.stderr!.on('data', (d) => (err += d));
    void exited.then(() => {
      clearTimeout(timer);
      resolve(ready.test(out));
    });
    if (input) child.stdin!.write(input);
  });
  if (!held) {
    child.kill('SIGKILL');
    const code = await exited;
    if (code === 75 || LOCKED.test(err)) return 'locked';
    return `the controllers' mutex could not be taken (${argv.slice(0, 2).join(' ')}, exit ${code}): ${lastLines(err)}`;
  }
  return {
    release: async () => {
      child.stdin!.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
