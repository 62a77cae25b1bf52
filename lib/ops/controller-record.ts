/**
 * How the controller's pure decisions (controller-core.ts) meet the shared decision record
 * (core/decision-record.ts), as pure functions: a host whose incident another controller is
 * carrying out is left to it; a deploy is a step of the failover incidents it completes.
 */
import { DecisionRecord, heldElsewhere, Incident } from '../core/decision-record';
import { decide, DecideInput, Decisions, hostsOf, Step, Warning } from './controller-core';

/** An incident nobody recorded a step of for this long is taken over: its controller stopped. */
export function takeoverAfterMs(failureAfterMs: number): number {
  return Math.max(60_000, 6 * failureAfterMs);
}

/**
 * `decide`, leaving alone the hosts whose incident another controller is carrying out: when the
 * step would fence one, they count as not yet silent (no fence is decided for them) and a warning
 * says who has it.
 */
export function decideWithRecord(input: DecideInput, record: DecisionRecord<Decisions>, me: string): { step?: Step; warnings: Warning[] } {
  const plain = decide(input);
  const held = heldElsewhere(record, me, input.now, takeoverAfterMs(input.config.failureAfterMs));
  if (plain.step?.kind !== 'fence' || held[plain.step.host] === undefined) return plain;
  const host = plain.step.host;
  const tracks = { ...input.tracks };
  for (const h of Object.keys(held)) if (tracks[h] !== undefined && !tracks[h].answering) tracks[h] = { ...tracks[h], lastAnswer: input.now };
  const masked = decide({ ...input, tracks });
  const warnings: Warning[] = [...masked.warnings, { key: `held:${host}`, event: 'waiting', host, detail: `${held[host]}: this controller leaves ${host} to it` }];
  if (masked.step?.kind === 'fence' && held[masked.step.host] !== undefined) return { warnings };
  return { step: masked.step, warnings };
}

/** The open failover incidents a deploy of `stack` with this key carries forward: their host is failed in it. */
export function incidentsOfDeploy(record: Pick<DecisionRecord, 'incidents'>, step: Extract<Step, { kind: 'deploy' }>): Incident[] {
  const states = (JSON.parse(step.key) as { hostStates: Record<string, string> }).hostStates;
  return record.incidents.filter((i) => i.purpose === 'failover' && states[i.host] === 'failed');
}

/** Whether every watched stack that uses `host` has applied it as failed: its failover is over. */
export function failoverApplied(input: Pick<DecideInput, 'config' | 'facts'>, decisions: Decisions, host: string): boolean {
  return input.config.stacks
    .filter((s) => hostsOf(input.config, input.facts[s]).includes(host))
    .every((s) => decisions.applied[s] !== undefined && (JSON.parse(decisions.applied[s]) as { hostStates: Record<string, string> }).hostStates[host] === 'failed');
}
