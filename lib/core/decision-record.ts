/**
 * The decision record: what the controllers of a stack have decided about its hosts (host states,
 * hosts they powered off) and the incidents in progress with their steps, as plain data. One
 * record per stack, kept in the stack's own state backend (lib/ops/decision-record.ts), shared by
 * every controller of the stack and read by `reconcile` and, through a context key, by synth.
 *
 * Pure: records in, records (or problems, or overrides) out. Times are ISO strings so that the
 * record reads the same in the database, in a file and in a message.
 */
import { HostState } from './model';

/** Context key: a decision record file (`cdktf-libvirt-cluster record --out FILE`) whose host states the synth applies. */
export const DECISION_RECORD_CONTEXT = 'libvirt-cluster:decision-record';

/** The host states a controller decides: never `maintenance`, which only a person sets. */
export type DecidedHostState = HostState.ACTIVE | HostState.FAILED | HostState.STANDBY;

/** Who decided a host's state, when, and why: for the messages of reconcile and synth. */
export interface HostDecisionNote {
  readonly by: string;
  readonly at: string;
  readonly why: string;
}

/** The part of a controller's decisions that people and deploys must see; the rest of the document travels with it untouched. */
export interface HostDecisions {
  /** Host-state overrides the controller synthesizes with (`libvirt-cluster:host-state:<host>`). */
  readonly hostStates: Readonly<Record<string, `${DecidedHostState}`>>;
  /** Hosts the controller powered off and that stay off (in standby). */
  readonly poweredOff: readonly string[];
}

export type IncidentPurpose = 'failover' | 'standby' | 'wake';
export type StepState = 'started' | 'done' | 'failed';

/** One step of an incident, recorded when it starts and again when it ends. */
export interface IncidentStep {
  /** `fence off`, `fence on`, `deploy <stack>`. */
  readonly name: string;
  readonly state: StepState;
  readonly by: string;
  readonly at: string;
  readonly detail?: string;
}

/** Something a controller is doing about one host, from the first step to the last. */
export interface Incident {
  readonly host: string;
  readonly purpose: IncidentPurpose;
  readonly openedBy: string;
  readonly openedAt: string;
  /** The controller carrying it out now (another takes it over once it is stale). */
  readonly owner: string;
  /** The last time a step of it was recorded. */
  readonly touchedAt: string;
  readonly steps: readonly IncidentStep[];
  /** Set when it is over: it then moves to `closed`. */
  readonly closedAt?: string;
}

/** The record of one stack. */
export interface DecisionRecord<D extends HostDecisions = HostDecisions> {
  readonly version: 1;
  /** Raised by every write: a write that read an older revision is refused (compare-and-set). */
  readonly revision: number;
  readonly updatedAt: string;
  readonly updatedBy: string;
  /** The controllers' decisions (ops/controller-core.ts `Decisions`). */
  readonly decisions: D;
  /** Why each host in `decisions.hostStates` is there. */
  readonly notes: Readonly<Record<string, HostDecisionNote>>;
  /** Incidents in progress, at most one per host. */
  readonly incidents: readonly Incident[];
  /** The last incidents that ended, newest last (at most CLOSED_KEPT). */
  readonly closed: readonly Incident[];
}

/** How many closed incidents the record keeps. */
export const CLOSED_KEPT = 20;

export function emptyRecord<D extends HostDecisions>(decisions: D): DecisionRecord<D> {
  return { version: 1, revision: 0, updatedAt: new Date(0).toISOString(), updatedBy: '', decisions, notes: {}, incidents: [], closed: [] };
}

/** Reads a record's JSON; throws saying what is wrong (`where` names the store). */
export function parseRecord(text: string, where: string): DecisionRecord {
  let json: any;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`the decision record in ${where} is not JSON: ${(err as Error).message}`);
  }
  if (json?.version !== 1) throw new Error(`the decision record in ${where} has version ${JSON.stringify(json?.version)}; this version reads version 1`);
  const problems: string[] = [];
  if (!Number.isInteger(json.revision) || json.revision < 0) problems.push('revision is not a whole number');
  if (typeof json.decisions !== 'object' || json.decisions === null) problems.push('decisions is missing');
  else {
    const states = Object.values(HostState) as string[];
    for (const [host, state] of Object.entries(json.decisions.hostStates ?? {})) if (!states.includes(state as string)) problems.push(`host ${host} has state ${JSON.stringify(state)}`);
    if (!Array.isArray(json.decisions.poweredOff ?? [])) problems.push('decisions.poweredOff is not a list');
  }
  if (!Array.isArray(json.incidents ?? [])) problems.push('incidents is not a list');
  if (problems.length > 0) throw new Error(`the decision record in ${where} is damaged: ${problems.join('; ')}`);
  return {
    ...json,
    decisions: { ...json.decisions, hostStates: json.decisions.hostStates ?? {}, poweredOff: json.decisions.poweredOff ?? [] },
    notes: json.notes ?? {},
    incidents: json.incidents ?? [],
    closed: json.closed ?? [],
  } as DecisionRecord;
}

/** The next revision of `record` as written by `by` at `now`, with its notes following the host states. */
export function revise<D extends HostDecisions>(record: DecisionRecord<D>, next: Partial<Omit<DecisionRecord<D>, 'version' | 'revision' | 'updatedAt' | 'updatedBy'>>, by: string, now: number, why?: string): DecisionRecord<D> {
  const at = new Date(now).toISOString();
  const decisions = next.decisions ?? record.decisions;
  const notes: Record<string, HostDecisionNote> = {};
  for (const [host, state] of Object.entries(decisions.hostStates)) {
    const before = (next.notes ?? record.notes)[host];
    notes[host] = before !== undefined && record.decisions.hostStates[host] === state ? before : { by, at, why: why ?? `set to ${state}` };
  }
  return { ...record, ...next, decisions, notes, revision: record.revision + 1, updatedAt: at, updatedBy: by };
}

const iso = (ms: number) => new Date(ms).toISOString();

/** The open incident of a host, if any. */
export function openIncident(record: Pick<DecisionRecord, 'incidents'>, host: string): Incident | undefined {
  return record.incidents.find((i) => i.host === host);
}

/**
 * Records a step as started (opening the host's incident for `purpose` when none is open; the
 * controller that records a step owns the incident from then on).
 */
export function stepStarted<D extends HostDecisions>(record: DecisionRecord<D>, s: { host: string; purpose: IncidentPurpose; step: string; by: string; now: number; detail?: string }): DecisionRecord<D> {
  const at = iso(s.now);
  const step: IncidentStep = { name: s.step, state: 'started', by: s.by, at, ...(s.detail !== undefined ? { detail: s.detail } : {}) };
  const open = openIncident(record, s.host);
  const incident: Incident = open !== undefined
    ? { ...open, owner: s.by, touchedAt: at, steps: [...open.steps, step] }
    : { host: s.host, purpose: s.purpose, openedBy: s.by, openedAt: at, owner: s.by, touchedAt: at, steps: [step] };
  return { ...record, incidents: [...record.incidents.filter((i) => i.host !== s.host), incident].sort((a, b) => a.host.localeCompare(b.host)) };
}

/** Records how a step ended; `close` ends the incident (it moves to `closed`). */
export function stepEnded<D extends HostDecisions>(record: DecisionRecord<D>, s: { host: string; step: string; state: 'done' | 'failed'; by: string; now: number; detail?: string; close?: boolean }): DecisionRecord<D> {
  const open = openIncident(record, s.host);
  if (open === undefined) return record;
  const at = iso(s.now);
  const step: IncidentStep = { name: s.step, state: s.state, by: s.by, at, ...(s.detail !== undefined ? { detail: s.detail } : {}) };
  const incident: Incident = { ...open, owner: s.by, touchedAt: at, steps: [...open.steps, step], ...(s.close ? { closedAt: at } : {}) };
  const others = record.incidents.filter((i) => i.host !== s.host);
  if (!s.close) return { ...record, incidents: [...others, incident].sort((a, b) => a.host.localeCompare(b.host)) };
  return { ...record, incidents: others, closed: [...record.closed, incident].slice(-CLOSED_KEPT) };
}

/** A step that was recorded as started and never as ended: the controller that ran it stopped in between. */
export function interruptedStep(incident: Incident | undefined, step: string): IncidentStep | undefined {
  if (incident === undefined) return undefined;
  const last = [...incident.steps].reverse().find((s) => s.name === step);
  return last?.state === 'started' ? last : undefined;
}

/**
 * Hosts whose incident another controller is carrying out, with why: this controller leaves them
 * alone. An incident nobody has touched for `staleMs` is taken over (its owner stopped); one owned
 * by this controller's own id is its own, resumed after a restart.
 */
export function heldElsewhere(record: Pick<DecisionRecord, 'incidents'>, me: string, now: number, staleMs: number): Record<string, string> {
  const held: Record<string, string> = {};
  for (const i of record.incidents) {
    if (i.owner === me) continue;
    const quiet = now - Date.parse(i.touchedAt);
    if (quiet >= staleMs) continue;
    const last = i.steps[i.steps.length - 1];
    held[i.host] = `controller ${i.owner} is carrying out the ${i.purpose} of ${i.host} (opened ${i.openedAt}; last step ${last ? `${last.name} ${last.state}` : 'none'} ${(quiet / 1000).toFixed(1)} s ago; taken over after ${(staleMs / 1000).toFixed(0)} s without a step)`;
  }
  return held;
}

/** A live decision the code contradicts: the synthesized stack gives a host another state than the controllers decided. */
export interface Contradiction {
  readonly host: string;
  readonly decided: `${DecidedHostState}`;
  readonly inCode: `${HostState}`;
  readonly message: string;
}

/** What each decided state means, in a message. */
function meaning(record: DecisionRecord, host: string, state: string): string {
  const off = record.decisions.poweredOff.includes(host);
  if (state === HostState.FAILED) return 'fenced (powered off) and declared failed: its VMs were restarted elsewhere';
  if (state === HostState.STANDBY) return off ? 'put in standby and powered off' : 'put in standby';
  return 'woken from standby and put back in service (active)';
}

const ENUM: Record<string, string> = { active: 'ACTIVE', failed: 'FAILED', standby: 'STANDBY', maintenance: 'MAINTENANCE' };

/**
 * The live decisions that the synthesized host states contradict. `inCode` is each host's state
 * as the synth had it (controller.json), for the hosts of the stack; hosts the record names that
 * the stack does not have are not this stack's concern.
 */
export function contradictions(record: DecisionRecord, inCode: Readonly<Record<string, `${HostState}`>>): Contradiction[] {
  const found: Contradiction[] = [];
  for (const [host, decided] of Object.entries(record.decisions.hostStates).sort(([a], [b]) => a.localeCompare(b))) {
    const code = inCode[host];
    if (code === undefined || code === decided) continue;
    const note = record.notes[host];
    const who = note ? `controller ${note.by} at ${note.at} (${note.why})` : `a controller (record revision ${record.revision})`;
    found.push({
      host,
      decided,
      inCode: code,
      message:
        `${host} was ${meaning(record, host, decided)} by ${who}, and the synthesized code says ${host} is ${code}: reconciling and applying it would undo that decision. ` +
        `To accept the decision: mark ${host} ${decided} in code (state: HostState.${ENUM[decided]}) or synthesize with the record (context ${DECISION_RECORD_CONTEXT}=<file of \`cdktf-libvirt-cluster record --out\`>), then reconcile again. ` +
        `To override it (${host} is fit and should be ${code}): reconcile --override-decision ${host}, which removes the decision from the record.`,
    });
  }
  return found;
}

/** The record without the controllers' decision about `host` (a person overrode it), as written by `by`. */
export function withoutHostDecision<D extends HostDecisions>(record: DecisionRecord<D>, host: string, by: string, now: number): DecisionRecord<D> {
  const hostStates = { ...record.decisions.hostStates };
  delete hostStates[host];
  const decisions = { ...record.decisions, hostStates, poweredOff: record.decisions.poweredOff.filter((h) => h !== host) };
  return revise(record, { decisions }, by, now);
}

/** A host-state override the synth takes from a record, and the warning it gives. */
export interface RecordedOverride {
  readonly state: `${DecidedHostState}`;
  readonly warning: string;
}

/**
 * What the synth takes from a record for one host: the decided state when the code says
 * otherwise, with a warning that says how to catch the code up. Undefined when the record has
 * nothing to say about the host, or agrees with the code.
 */
export function recordedOverride(record: DecisionRecord, host: string, declared: `${HostState}`, file: string): RecordedOverride | undefined {
  const state = record.decisions.hostStates[host];
  if (state === undefined || state === declared) return undefined;
  const note = record.notes[host];
  return {
    state,
    warning:
      `host ${host} is ${state}, not ${declared} as in code: ${meaning(record, host, state)} by ${note ? `controller ${note.by} at ${note.at}` : 'a controller'} (decision record ${file}, revision ${record.revision}). ` +
      `Commit state: HostState.${ENUM[state]} for ${host} to catch the code up, or reconcile --override-decision ${host} to undo the decision.`,
  };
}
