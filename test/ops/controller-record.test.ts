/**
 * The controller and the shared record, pure: a host whose incident another controller carries
 * out is left to it (no second fence), taken over once that incident is stale; a deploy carries
 * the failover incidents of the hosts it applies as failed, which end once every stack applied it.
 */
import { emptyRecord, revise, stepEnded, stepStarted } from '../../lib/core/decision-record';
import { HostState } from '../../lib/core/model';
import { baseline, DecideInput, Decisions, emptyDecisions, Step } from '../../lib/ops/controller-core';
import { decideWithRecord, failoverApplied, incidentsOfDeploy, takeoverAfterMs } from '../../lib/ops/controller-record';

const T0 = Date.parse('2026-11-27T02:00:00Z');
const FENCE = { command: ['fence_lab'] };

function input(now: number, decisions: Decisions = emptyDecisions()): DecideInput {
  const base: DecideInput = {
    now,
    config: { stacks: ['mail'], hosts: { h1: { fence: FENCE }, h2: { fence: FENCE } }, unattended: ['failover'], failureAfterMs: 10_000, wakeTimeoutMs: 300_000, probesOnly: true },
    tracks: { h1: { answering: true, lastAnswer: now, answeringSince: T0 - 60_000 }, h2: { answering: false, lastAnswer: T0, error: 'Connection refused' } },
    decisions,
    facts: {
      mail: {
        version: 1, stack: 'mail',
        clusters: [{ id: 'cluster', timeZone: 'UTC', instant: null, unattended: [], windowStarts: [], nextWindowStart: null, hosts: [{ name: 'h1', state: HostState.ACTIVE }, { name: 'h2', state: HostState.ACTIVE }], standbyCandidates: [], recoverySeconds: 120 }],
      },
    },
    failures: { fence: {}, deploy: {}, synth: {} },
  };
  return { ...base, decisions: baseline(base) };
}

/** Controller a has started fencing h2 at `at`. */
const fencing = (at: number) => revise(stepStarted(emptyRecord(input(T0).decisions), { host: 'h2', purpose: 'failover', step: 'fence off', by: 'a', now: at }), {}, 'a', at);

test('with no incident elsewhere, the record changes nothing: h2 is fenced after failureAfterSeconds', () => {
  const { step } = decideWithRecord(input(T0 + 11_000), emptyRecord(input(T0).decisions), 'b');
  expect(step).toMatchObject({ kind: 'fence', host: 'h2', action: 'off', purpose: 'failover' });
});

test("a host another controller is fencing is left to it: no fence, a warning saying who has it; after the takeover time it is this controller's", () => {
  const record = fencing(T0 + 10_500);
  const during = decideWithRecord(input(T0 + 11_000), record, 'b');
  expect(during.step).toBeUndefined();
  expect(during.warnings).toEqual([expect.objectContaining({ event: 'waiting', host: 'h2', detail: expect.stringMatching(/^controller a is carrying out the failover of h2 .*: this controller leaves h2 to it$/) })]);
  // The owner itself, restarted with its id, resumes at once.
  expect(decideWithRecord(input(T0 + 11_000), record, 'a').step).toMatchObject({ kind: 'fence', host: 'h2' });
  const stale = T0 + 10_500 + takeoverAfterMs(10_000);
  expect(decideWithRecord(input(stale), record, 'b').step).toMatchObject({ kind: 'fence', host: 'h2' });
  expect(takeoverAfterMs(10_000)).toBe(60_000);
  expect(takeoverAfterMs(20_000)).toBe(120_000);
});

test('once the fence is recorded done and h2 failed, another controller deploys (it never fences again); the deploy carries the incident, which ends when applied', () => {
  let record = fencing(T0 + 10_500);
  record = stepEnded(record, { host: 'h2', step: 'fence off', state: 'done', by: 'a', now: T0 + 10_600 });
  record = revise(record, { decisions: { ...record.decisions, hostStates: { h2: 'failed' } } }, 'a', T0 + 10_600);
  const { step } = decideWithRecord(input(T0 + 12_000, record.decisions), record, 'c');
  expect(step).toMatchObject({ kind: 'deploy', stack: 'mail', context: { 'libvirt-cluster:host-state:h2': 'failed' } });
  const deploy = step as Extract<Step, { kind: 'deploy' }>;
  expect(incidentsOfDeploy(record, deploy).map((i) => i.host)).toEqual(['h2']);
  expect(failoverApplied(input(T0), record.decisions, 'h2')).toBe(false);
  const applied = { ...record.decisions, applied: { mail: deploy.key } };
  expect(failoverApplied(input(T0), applied, 'h2')).toBe(true);
  // A deploy that does not apply h2 as failed carries nothing.
  expect(incidentsOfDeploy(record, { ...deploy, key: JSON.stringify({ hostStates: {}, instant: null }) })).toEqual([]);
});
