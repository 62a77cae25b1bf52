/**
 * What the controller decides, as pure functions: what it has observed of the hosts, the stacks'
 * controller.json facts from the last synth, its own decisions so far, the time and its
 * configuration in; the next step out (fence a host, change a decision, deploy a stack) and the
 * warnings it must repeat. `controller.ts` gathers the observations and carries the steps out.
 *
 * With a membership layer (corosync, `membership.ts`) nothing at all is done while the controller's
 * partition is not quorate or its membership is unknown: it says so and waits. Then the rules, in
 * the order they are tried:
 * 1. a host being woken that answers again is back in service (override `active`); one that does
 *    not answer within the wake timeout is powered on again;
 * 2. a host that has not answered for `failureAfterSeconds`, where failover is enabled for a stack
 *    that uses it, is fenced (`action=off`); only a fence confirmed by the agent's `status` marks
 *    it `failed`. With a membership layer the host must also be lost by corosync: a host corosync
 *    still counts (libvirtd down or hung, guests running) is never fenced. No cluster has more of
 *    its hosts fenced than its `failuresToTolerate` without a person. Without a fence agent, or
 *    while the fence fails, nothing is restarted and it says why;
 * 3. a host this controller put to sleep is woken (`action=on`) when another host of its cluster
 *    failed, or when a synth without it failed (admission needs it);
 * 4. a host the controller declared failed that has answered for `failureAfterSeconds` is put
 *    back in service (override removed);
 * 5. a schedule window boundary that the controller's clock has passed pins the stack's instant
 *    to exactly that boundary;
 * 6. a host that every stack using it names as a standby candidate, where all of them enable
 *    standby power, goes to `standby`, and once that is applied is powered off (`action=off`);
 * 7. a stack whose wanted host states or instant differ from what the controller last applied is
 *    deployed: synth, reconcile, apply.
 */
import type { ControllerCluster, ControllerFile } from '../core/controller-file';
import { HOST_STATE_CONTEXT, INSTANT_CONTEXT } from '../core/model';
import { UnattendedName, UNATTENDED_NAMES } from './controller-config';
import { describeView, MembershipView } from './membership';

/** One cluster of a stack, as the synth describes it in `stacks/<stack>/controller.json` (written by lib/core/controller-file.ts). */
export type ClusterFacts = ControllerCluster;

/** `stacks/<stack>/controller.json`. */
export type StackFacts = ControllerFile;

/** Reads controller.json; throws saying what is wrong. */
export function parseStackFacts(text: string, stack: string): StackFacts {
  const json = JSON.parse(text);
  if (json?.version !== 1) throw new Error(`controller.json of ${stack} has version ${JSON.stringify(json?.version)}; this controller reads version 1`);
  if (!Array.isArray(json.clusters)) throw new Error(`controller.json of ${stack} has no clusters list`);
  for (const c of json.clusters) {
    if (typeof c?.id !== 'string' || !Array.isArray(c.hosts) || !Array.isArray(c.standbyCandidates) || !Array.isArray(c.unattended)) {
      throw new Error(`controller.json of ${stack}: a cluster lacks id, hosts, standbyCandidates or unattended`);
    }
  }
  return json as StackFacts;
}

export type OverrideState = 'failed' | 'standby' | 'active';

/** What the controllers have decided, kept in the stack's decision record so that a restart keeps it. */
export interface Decisions {
  readonly version: 1;
  /** Host-state overrides the controller synthesizes with (`libvirt-cluster:host-state:<host>`). */
  readonly hostStates: Readonly<Record<string, OverrideState>>;
  /** Hosts in standby this controller powered off. */
  readonly poweredOff: readonly string[];
  /** Hosts this controller powered on, not yet answering: when the power-on succeeded (controller clock, ms). */
  readonly waking: Readonly<Record<string, number>>;
  /** When each host was last woken (ms): it is not put to sleep again for a while. */
  readonly wokenAt: Readonly<Record<string, number>>;
  /** The window boundary each stack's instant is pinned to (ISO). */
  readonly instants: Readonly<Record<string, string>>;
  /** What was last deployed for each stack: the deploy key (host states and pinned instant). */
  readonly applied: Readonly<Record<string, string>>;
}

export function emptyDecisions(): Decisions {
  return { version: 1, hostStates: {}, poweredOff: [], waking: {}, wokenAt: {}, instants: {}, applied: {} };
}

/** What the probes have seen of one host. */
export interface HostTrack {
  readonly answering: boolean;
  /** The last time it answered (or when watching began), controller clock, ms. */
  readonly lastAnswer: number;
  /** Since when it has answered without a miss (when answering). */
  readonly answeringSince?: number;
  /** Why the last probe failed. */
  readonly error?: string;
}

/** Failures within the current cycle: a failed step is not tried again before the next cycle. */
export interface CycleFailures {
  readonly fence: Readonly<Record<string, string>>;
  readonly deploy: Readonly<Record<string, string>>;
  /** Stacks whose synth failed this cycle (admission control, ...). */
  readonly synth: Readonly<Record<string, string>>;
}

/** The part of the configuration decisions depend on. */
export interface DecideConfig {
  readonly stacks: readonly string[];
  readonly hosts: Readonly<Record<string, { readonly fence?: unknown }>>;
  readonly unattended: readonly UnattendedName[];
  readonly failureAfterMs: number;
  readonly wakeTimeoutMs: number;
  /**
   * With a membership layer: the corosync node name of each host.
   * @default - none: decisions rest on the probes alone
   */
  readonly membership?: { readonly nodes: Readonly<Record<string, string>> };
  /**
   * Without a membership layer, failover on the probes alone was accepted by name.
   * @default false: without a membership layer no host is fenced for a failover
   */
  readonly probesOnly?: boolean;
}

/** The last reading of the membership layer. */
export interface MembershipReading {
  /** Undefined while unknown (corosync not answering, not read yet). */
  readonly view?: MembershipView;
  /** Why it is unknown. */
  readonly error?: string;
}

export interface DecideInput {
  /** The controller's clock (real time + offset), ms. */
  readonly now: number;
  readonly config: DecideConfig;
  readonly tracks: Readonly<Record<string, HostTrack>>;
  readonly decisions: Decisions;
  /** Each stack's controller.json from the last synth; undefined until one was read. */
  readonly facts: Readonly<Record<string, StackFacts | undefined>>;
  readonly failures: CycleFailures;
  /** What corosync said last; only read with `config.membership`. */
  readonly membership?: MembershipReading;
}

export type Step =
  | { readonly kind: 'fence'; readonly host: string; readonly action: 'off' | 'on'; readonly purpose: 'failover' | 'standby' | 'wake'; readonly reason: string }
  | { readonly kind: 'decide'; readonly decisions: Decisions; readonly host?: string; readonly stack?: string; readonly detail: string }
  | { readonly kind: 'deploy'; readonly stack: string; readonly context: Readonly<Record<string, string>>; readonly key: string; readonly reason: string };

/** A warning the controller repeats (rate-limited by `key`) for as long as it holds. */
export interface Warning {
  readonly key: string;
  readonly event: 'refused' | 'waiting';
  readonly host?: string;
  readonly stack?: string;
  readonly detail: string;
}

/** A host that stays asleep after being woken for this long at least. */
const STANDBY_COOLDOWN_MS = 5 * 60_000;


/** Where each unattended action of a stack is enabled: 'controller configuration' and/or 'stack (cluster <id>)'. */
export function enabledActions(config: Pick<DecideConfig, 'unattended'>, facts: StackFacts | undefined): Map<UnattendedName, string[]> {
  const enabled = new Map<UnattendedName, string[]>();
  const add = (name: UnattendedName, where: string) => enabled.set(name, [...(enabled.get(name) ?? []), where]);
  for (const name of config.unattended) add(name, 'controller configuration');
  for (const cluster of facts?.clusters ?? []) {
    for (const name of cluster.unattended) {
      if ((UNATTENDED_NAMES as readonly string[]).includes(name)) add(name as UnattendedName, `stack (cluster ${cluster.id})`);
    }
  }
  return enabled;
}

/** The hosts a stack uses: its clusters' (from controller.json), else every host of the configuration. */
export function hostsOf(config: Pick<DecideConfig, 'hosts'>, facts: StackFacts | undefined): string[] {
  if (facts === undefined) return Object.keys(config.hosts).sort();
  return [...new Set(facts.clusters.flatMap((c) => c.hosts.map((h) => h.name)))].filter((h) => h in config.hosts).sort();
}

/**
 * The context a stack is synthesized with, and the key that says whether it was deployed: the
 * host states the controller decided that the stack enables (failed: failover; standby: standby
 * power; active: always), and the pinned instant when the stack enables schedule switches (else the
 * controller's clock, which is not part of the key: a person deploying now would get the same).
 */
export function deployContext(stack: string, input: Pick<DecideInput, 'now' | 'config' | 'decisions' | 'facts'>): { context: Record<string, string>; key: string } {
  const facts = input.facts[stack];
  const enabled = enabledActions(input.config, facts);
  const states: [string, OverrideState][] = [];
  for (const host of hostsOf(input.config, facts)) {
    const state = input.decisions.hostStates[host];
    if (state === undefined) continue;
    if (state === 'failed' && !enabled.has('failover')) continue;
    if (state === 'standby' && !enabled.has('standby-power')) continue;
    states.push([host, state]);
  }
  const pinned = enabled.has('schedule') ? input.decisions.instants[stack] : undefined;
  const context: Record<string, string> = { [INSTANT_CONTEXT]: pinned ?? new Date(input.now).toISOString() };
  for (const [host, state] of states) context[`${HOST_STATE_CONTEXT}${host}`] = state;
  return { context, key: JSON.stringify({ hostStates: Object.fromEntries(states), instant: pinned ?? null }) };
}

/** Records what was deployed when a stack has no deploy on record (the controller's first start): it deploys only what it decides. */
export function baseline(input: Pick<DecideInput, 'now' | 'config' | 'decisions' | 'facts'>): Decisions {
  const applied = { ...input.decisions.applied };
  for (const stack of input.config.stacks) if (applied[stack] === undefined) applied[stack] = deployContext(stack, input).key;
  return { ...input.decisions, applied };
}

/** The decisions after a fence action succeeded. */
export function afterFence(decisions: Decisions, step: Extract<Step, { kind: 'fence' }>, now: number): Decisions {
  const { host } = step;
  if (step.purpose === 'failover') {
    const waking = { ...decisions.waking };
    delete waking[host];
    return { ...decisions, hostStates: { ...decisions.hostStates, [host]: 'failed' }, poweredOff: decisions.poweredOff.filter((h) => h !== host), waking };
  }
  if (step.purpose === 'standby') return { ...decisions, poweredOff: [...new Set([...decisions.poweredOff, host])].sort() };
  return { ...decisions, waking: { ...decisions.waking, [host]: now } };
}

/** The decisions after a stack's deploy succeeded (or was found applied already). */
export function afterDeploy(decisions: Decisions, step: Extract<Step, { kind: 'deploy' }>): Decisions {
  return { ...decisions, applied: { ...decisions.applied, [step.stack]: step.key } };
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** The next step, and the warnings that hold now. */
export function decide(input: DecideInput): { step?: Step; warnings: Warning[] } {
  const { now, config, tracks, decisions, facts, failures } = input;
  const warnings: Warning[] = [];
  const hosts = Object.keys(config.hosts).sort();
  const answering = (h: string) => tracks[h]?.answering === true;
  const silentFor = (h: string) => (tracks[h] !== undefined && !tracks[h].answering ? now - tracks[h].lastAnswer : 0);
  const answeringFor = (h: string) => (answering(h) ? now - (tracks[h].answeringSince ?? now) : 0);
  const stacksOf = (h: string) => config.stacks.filter((s) => hostsOf(config, facts[s]).includes(h));
  const enabled = (s: string) => enabledActions(config, facts[s]);
  const clustersWith = (h: string) => config.stacks.flatMap((s) => (facts[s]?.clusters ?? []).filter((c) => c.hosts.some((x) => x.name === h)).map((c) => ({ stack: s, cluster: c })));
  const isFailed = (h: string, state?: string) => decisions.hostStates[h] === 'failed' || (decisions.hostStates[h] === undefined && state === 'failed');
  const change = (next: Partial<Decisions>, detail: string, where: { host?: string; stack?: string } = {}): { step: Step; warnings: Warning[] } => ({
    step: { kind: 'decide', decisions: { ...decisions, ...next }, detail, ...where },
    warnings,
  });
  const fence = (host: string, action: 'off' | 'on', purpose: 'failover' | 'standby' | 'wake', reason: string) => ({ step: { kind: 'fence' as const, host, action, purpose, reason }, warnings });

  // 0. Quorum: with a membership layer, nothing is done outside a quorate partition.
  const view = input.membership?.view;
  if (config.membership !== undefined && (view === undefined || !view.quorate)) {
    const why = view === undefined ? `corosync's membership is unknown (${input.membership?.error ?? 'not read yet'})` : `this controller's corosync partition is ${describeView(view)}`;
    warnings.push({ key: 'quorum', event: 'refused', detail: `${why}: it takes no action, fences nothing and deploys nothing until its partition is quorate` });
    return { warnings };
  }
  const member = (h: string) => config.membership !== undefined && view!.members.includes(config.membership.nodes[h] ?? h);

  // 1. Hosts being woken.
  for (const h of Object.keys(decisions.waking).sort()) {
    if (answering(h)) {
      const waking = { ...decisions.waking };
      delete waking[h];
      return change(
        { waking, poweredOff: decisions.poweredOff.filter((x) => x !== h), hostStates: { ...decisions.hostStates, [h]: 'active' }, wokenAt: { ...decisions.wokenAt, [h]: now } },
        `${h} answers ${seconds(now - decisions.waking[h])} after it was powered on: back in service (state active)`,
        { host: h },
      );
    }
    if (now - decisions.waking[h] > config.wakeTimeoutMs) {
      if (failures.fence[h] !== undefined) warnings.push({ key: `wake:${h}`, event: 'refused', host: h, detail: `${h} was powered on ${seconds(now - decisions.waking[h])} ago and does not answer; powering it on again failed: ${failures.fence[h]}` });
      else return fence(h, 'on', 'wake', `${h} was powered on ${seconds(now - decisions.waking[h])} ago and does not answer: powering it on again`);
    }
  }

  // 2. Hosts that stopped answering: fenced first, failed only once the fence succeeded.
  for (const h of hosts) {
    const state = decisions.hostStates[h];
    // Failed or in standby in code (every cluster that has it says so): nobody expects an answer.
    const byCode = state === undefined && clustersWith(h).length > 0 && clustersWith(h).every(({ cluster }) => cluster.hosts.some((x) => x.name === h && (x.state === 'failed' || x.state === 'standby')));
    const expectedSilent = byCode || state === 'failed' || (state === 'standby' && decisions.poweredOff.includes(h)) || decisions.waking[h] !== undefined;
    const silent = silentFor(h);
    if (expectedSilent || silent < config.failureAfterMs) continue;
    const stacks = stacksOf(h);
    const node = config.membership?.nodes[h] ?? h;
    const lost = config.membership !== undefined && !member(h) ? ` and corosync has lost node ${node} (${describeView(view!)})` : '';
    const why = `${h} has not answered for ${seconds(silent)}${tracks[h]?.error ? ` (${tracks[h].error})` : ''}${lost}`;
    if (member(h)) {
      warnings.push({
        key: `member:${h}`,
        event: 'refused',
        host: h,
        detail: `${why}, but corosync still counts node ${node} a member of this partition: the host is up and its libvirtd down or hung (its guests may be running); it is not fenced and nothing of it is restarted`,
      });
      continue;
    }
    const failover = stacks.filter((s) => enabled(s).has('failover'));
    if (failover.length === 0) {
      warnings.push({ key: `no-failover:${h}`, event: 'refused', host: h, detail: `${why}; failover is not enabled for ${stacks.join(', ') || 'any watched stack'}: nothing is restarted (enable "failover" by name, or mark ${h} failed and deploy by hand)` });
      continue;
    }
    if (config.membership === undefined && config.probesOnly !== true) {
      warnings.push({
        key: `no-membership:${h}`,
        event: 'refused',
        host: h,
        detail: `${why}; without a membership layer this controller cannot tell a dead host from its own isolation or a hung libvirtd: nothing is fenced or restarted. Configure membership.corosync (docs/controller.md, Topology), or accept failover on the probes alone by name with "membership": { "probesOnly": true }`,
      });
      continue;
    }
    if (config.hosts[h]?.fence === undefined) {
      warnings.push({ key: `no-fence:${h}`, event: 'refused', host: h, detail: `${why}; it has no fence agent configured, so it cannot be confirmed off: nothing of it is restarted` });
      continue;
    }
    const overBudget = clustersWith(h)
      .map(({ cluster }) => ({ cluster, tolerate: cluster.failuresToTolerate ?? 1, failed: cluster.hosts.filter((x) => x.name !== h && decisions.hostStates[x.name] === 'failed').map((x) => x.name) }))
      .find((c) => c.failed.length >= c.tolerate);
    if (overBudget !== undefined) {
      const { cluster, tolerate, failed } = overBudget;
      warnings.push({
        key: `tolerate:${h}`,
        event: 'refused',
        host: h,
        detail: `${why}; cluster ${cluster.id} tolerates ${tolerate} host failure${tolerate === 1 ? '' : 's'} (failuresToTolerate) and this controller has fenced ${failed.join(', ')} already: fencing ${h} as well needs a person (check it, fence it by hand and mark it failed in code, then deploy)`,
      });
      continue;
    }
    if (failures.fence[h] !== undefined) {
      warnings.push({ key: `fence:${h}`, event: 'refused', host: h, detail: `${why} but is not confirmed off (fence action=off failed: ${failures.fence[h]}): nothing of it is restarted; the fence is retried every cycle` });
      continue;
    }
    return fence(h, 'off', 'failover', `${why}: fencing it before anything of it restarts elsewhere (failover enabled for ${failover.join(', ')})`);
  }

  // 3. Sleeping hosts whose capacity is needed.
  for (const h of decisions.poweredOff) {
    if (decisions.hostStates[h] !== 'standby' || decisions.waking[h] !== undefined) continue;
    const failed = clustersWith(h).flatMap(({ cluster }) => cluster.hosts.filter((x) => x.name !== h && isFailed(x.name, x.state)).map((x) => x.name));
    const synthFailed = stacksOf(h).filter((s) => failures.synth[s] !== undefined);
    const need = failed.length > 0 ? `${[...new Set(failed)].join(', ')} failed` : synthFailed.length > 0 ? `the synth of ${synthFailed.join(', ')} fails without it (${failures.synth[synthFailed[0]]})` : undefined;
    if (need === undefined) continue;
    if (failures.fence[h] !== undefined) {
      warnings.push({ key: `wake:${h}`, event: 'refused', host: h, detail: `${need}: ${h} is needed, but powering it on failed: ${failures.fence[h]}` });
      continue;
    }
    return fence(h, 'on', 'wake', `${need}: waking ${h} from standby for its capacity`);
  }

  // 4. Failed hosts that answer again, steadily.
  for (const h of hosts) {
    if (decisions.hostStates[h] !== 'failed' || !answering(h) || answeringFor(h) < config.failureAfterMs) continue;
    const hostStates = { ...decisions.hostStates };
    delete hostStates[h];
    return change({ hostStates }, `${h} has answered for ${seconds(answeringFor(h))} since it was declared failed: back in service (override removed)`, { host: h });
  }

  // 5. Schedule window boundaries.
  for (const s of config.stacks) {
    if (!enabled(s).has('schedule')) continue;
    const pinned = decisions.instants[s] !== undefined ? Date.parse(decisions.instants[s]) : -Infinity;
    const passed = (facts[s]?.clusters ?? [])
      .filter((c) => c.nextWindowStart !== null)
      .map((c) => ({ at: Date.parse(c.nextWindowStart!), cluster: c }))
      .filter(({ at }) => at <= now && at > pinned)
      .sort((a, b) => a.at - b.at)[0];
    if (passed === undefined) continue;
    const iso = new Date(passed.at).toISOString();
    return change(
      { instants: { ...decisions.instants, [s]: iso } },
      `window boundary ${localTime(passed.at, passed.cluster.timeZone)} ${passed.cluster.timeZone} passed (controller clock ${new Date(now).toISOString()}): instant pinned to ${iso}`,
      { stack: s },
    );
  }

  // 6. Standby: to sleep once no stack needs the host, powered off once that is applied.
  for (const h of hosts) {
    if (decisions.hostStates[h] !== undefined && decisions.hostStates[h] !== 'active') continue;
    if (decisions.waking[h] !== undefined || !answering(h) || answeringFor(h) < config.failureAfterMs) continue;
    if (decisions.wokenAt[h] !== undefined && now - decisions.wokenAt[h] < STANDBY_COOLDOWN_MS) continue;
    const stacks = stacksOf(h);
    if (stacks.length === 0) continue;
    if (!stacks.every((s) => enabled(s).has('standby-power') && (facts[s]?.clusters ?? []).some((c) => c.standbyCandidates.includes(h)))) continue;
    const peers = clustersWith(h).flatMap(({ cluster }) => cluster.hosts.map((x) => x.name)).filter((x) => x !== h);
    if (peers.some((p) => isFailed(p) || (config.hosts[p] !== undefined && !answering(p)))) continue; // no capacity taken away while a peer is in trouble
    if (stacks.some((s) => decisions.applied[s] !== deployContext(s, input).key)) continue;
    if (config.hosts[h]?.fence === undefined) {
      warnings.push({ key: `standby-no-fence:${h}`, event: 'refused', host: h, detail: `${h} runs nothing in ${stacks.join(', ')} but has no fence agent to power it off: it stays on` });
      continue;
    }
    return change({ hostStates: { ...decisions.hostStates, [h]: 'standby' } }, `${h} runs nothing in ${stacks.join(', ')} (a standby candidate): standby, then powered off`, { host: h });
  }
  for (const h of hosts) {
    if (decisions.hostStates[h] !== 'standby' || decisions.poweredOff.includes(h)) continue;
    const pending = stacksOf(h).filter((s) => enabled(s).has('standby-power') && decisions.applied[s] !== deployContext(s, input).key);
    if (pending.length > 0) continue;
    if (failures.fence[h] !== undefined) {
      warnings.push({ key: `standby-off:${h}`, event: 'refused', host: h, detail: `${h} is in standby but powering it off failed: ${failures.fence[h]}` });
      continue;
    }
    return fence(h, 'off', 'standby', `${h} is in standby and its stacks no longer use it: powering it off`);
  }

  // 7. Deploys.
  for (const s of config.stacks) {
    if (failures.deploy[s] !== undefined) continue;
    const { context, key } = deployContext(s, input);
    if (decisions.applied[s] === key) continue;
    const waiting = hostsOf(config, facts[s]).filter((h) => decisions.waking[h] !== undefined);
    if (waiting.length > 0) {
      warnings.push({ key: `wait:${s}`, event: 'waiting', stack: s, detail: `${s} waits for ${waiting.join(', ')} to answer after power-on before it deploys` });
      continue;
    }
    return { step: { kind: 'deploy', stack: s, context, key, reason: describeKey(key, decisions.applied[s]) }, warnings };
  }
  return { warnings };
}

/** What changed between two deploy keys, in words. */
function describeKey(key: string, before: string | undefined): string {
  const next = JSON.parse(key) as { hostStates: Record<string, string>; instant: string | null };
  const prev = before !== undefined ? (JSON.parse(before) as typeof next) : { hostStates: {}, instant: null };
  const parts: string[] = [];
  for (const h of [...new Set([...Object.keys(next.hostStates), ...Object.keys(prev.hostStates)])].sort()) {
    if (next.hostStates[h] !== prev.hostStates[h]) parts.push(`${h} ${prev.hostStates[h] ?? 'as in code'} → ${next.hostStates[h] ?? 'as in code'}`);
  }
  if (next.instant !== prev.instant) parts.push(`instant ${prev.instant ?? 'now'} → ${next.instant ?? 'now'}`);
  return parts.join(', ') || 'deploy';
}

/** 'HH:MM' of an instant in a time zone. */
export function localTime(ms: number, timeZone: string): string {
  try {
    return new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(new Date(ms));
  } catch {
    return new Date(ms).toISOString();
  }
}
