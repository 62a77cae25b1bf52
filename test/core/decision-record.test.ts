import {
  contradictions, DecisionRecord, emptyRecord, heldElsewhere, interruptedStep, openIncident, parseRecord, recordedOverride, revise, stepEnded, stepStarted, withoutHostDecision,
} from '../../lib/core/decision-record';

const T0 = Date.parse('2026-11-26T02:00:00Z');
const empty = () => emptyRecord({ hostStates: {}, poweredOff: [] as string[] });

/** h2 fenced and failed by controller a: one incident, its fence done, its deploy not yet. */
function failedOver(): DecisionRecord {
  let r = stepStarted(empty(), { host: 'h2', purpose: 'failover', step: 'fence off', by: 'a', now: T0 });
  r = revise(r, {}, 'a', T0);
  r = stepEnded(r, { host: 'h2', step: 'fence off', state: 'done', by: 'a', now: T0 + 100, detail: 'exit 0' });
  return revise(r, { decisions: { hostStates: { h2: 'failed' }, poweredOff: [] } }, 'a', T0 + 100, 'fenced: h2 is confirmed off');
}

describe('revisions and notes', () => {
  test('every write raises the revision and names its writer; a host state keeps the note of who set it until it changes', () => {
    const r = failedOver();
    expect(r.revision).toBe(2);
    expect(r.updatedBy).toBe('a');
    expect(r.notes.h2).toEqual({ by: 'a', at: new Date(T0 + 100).toISOString(), why: 'fenced: h2 is confirmed off' });
    const later = revise(r, { decisions: { hostStates: { h2: 'failed', h3: 'standby' }, poweredOff: ['h3'] } }, 'b', T0 + 5000, 'standby');
    expect(later.notes.h2.by).toBe('a');
    expect(later.notes.h3).toEqual({ by: 'b', at: new Date(T0 + 5000).toISOString(), why: 'standby' });
    expect(revise(later, { decisions: { hostStates: {}, poweredOff: [] } }, 'b', T0 + 6000).notes).toEqual({});
  });

  test('a record reads back as written; a damaged one is refused saying what is wrong', () => {
    const r = failedOver();
    expect(parseRecord(JSON.stringify(r), 'db')).toEqual(r);
    expect(() => parseRecord('{"version":2}', 'db')).toThrow('the decision record in db has version 2; this version reads version 1');
    expect(() => parseRecord('{"version":1,"revision":-1,"decisions":{"hostStates":{"h1":"gone"}}}', 'db')).toThrow('the decision record in db is damaged: revision is not a whole number; host h1 has state "gone"');
    expect(() => parseRecord('nope', 'db')).toThrow(/the decision record in db is not JSON/);
  });
});

describe('incidents', () => {
  test('a step is recorded started, then ended; closing moves the incident to the closed list', () => {
    let r = failedOver();
    const open = openIncident(r, 'h2')!;
    expect(open.steps.map((s) => `${s.name} ${s.state} ${s.by}`)).toEqual(['fence off started a', 'fence off done a']);
    r = stepStarted(r, { host: 'h2', purpose: 'failover', step: 'deploy mail', by: 'c', now: T0 + 9000 });
    expect(openIncident(r, 'h2')!.owner).toBe('c');
    expect(openIncident(r, 'h2')!.openedBy).toBe('a');
    r = stepEnded(r, { host: 'h2', step: 'deploy mail', state: 'done', by: 'c', now: T0 + 20_000, close: true });
    expect(r.incidents).toEqual([]);
    expect(r.closed).toHaveLength(1);
    expect(r.closed[0].closedAt).toBe(new Date(T0 + 20_000).toISOString());
    expect(r.closed[0].steps.map((s) => `${s.name} ${s.state}`)).toEqual(['fence off started', 'fence off done', 'deploy mail started', 'deploy mail done']);
    // Ending a step of a host with no incident changes nothing.
    expect(stepEnded(r, { host: 'h9', step: 'fence off', state: 'done', by: 'c', now: T0 })).toBe(r);
  });

  test('a step started and never ended is interrupted; one that ended, or was started again after ending, is not', () => {
    const started = stepStarted(empty(), { host: 'h1', purpose: 'failover', step: 'fence off', by: 'a', now: T0 });
    expect(interruptedStep(openIncident(started, 'h1'), 'fence off')).toMatchObject({ by: 'a', state: 'started' });
    expect(interruptedStep(openIncident(started, 'h1'), 'fence on')).toBeUndefined();
    const failed = stepEnded(started, { host: 'h1', step: 'fence off', state: 'failed', by: 'a', now: T0 + 1 });
    expect(interruptedStep(openIncident(failed, 'h1'), 'fence off')).toBeUndefined();
    const again = stepStarted(failed, { host: 'h1', purpose: 'failover', step: 'fence off', by: 'a', now: T0 + 2 });
    expect(interruptedStep(openIncident(again, 'h1'), 'fence off')?.at).toBe(new Date(T0 + 2).toISOString());
    expect(interruptedStep(undefined, 'fence off')).toBeUndefined();
  });

  test("another controller's incident is held until it is stale; one's own (a restart with the same id) never", () => {
    const r = failedOver(); // last step at T0 + 100 by a
    expect(heldElsewhere(r, 'a', T0 + 1000, 60_000)).toEqual({});
    const held = heldElsewhere(r, 'b', T0 + 1100, 60_000);
    expect(Object.keys(held)).toEqual(['h2']);
    expect(held.h2).toBe('controller a is carrying out the failover of h2 (opened 2026-11-26T02:00:00.000Z; last step fence off done 1.0 s ago; taken over after 60 s without a step)');
    expect(heldElsewhere(r, 'b', T0 + 100 + 60_000, 60_000)).toEqual({});
  });
});

describe('what people and deploys see', () => {
  test('the code contradicts a live decision when it gives a decided host another state; each message says how to accept or override', () => {
    const r = failedOver();
    expect(contradictions(r, { h1: 'active', h2: 'failed' })).toEqual([]);
    expect(contradictions(r, { h1: 'active' })).toEqual([]); // not a host of this stack
    const [c] = contradictions(r, { h1: 'active', h2: 'active' });
    expect(c).toMatchObject({ host: 'h2', decided: 'failed', inCode: 'active' });
    expect(c.message).toBe(
      'h2 was fenced (powered off) and declared failed: its VMs were restarted elsewhere by controller a at 2026-11-26T02:00:00.100Z (fenced: h2 is confirmed off), and the synthesized code says h2 is active: ' +
        'reconciling and applying it would undo that decision. To accept the decision: mark h2 failed in code (state: HostState.FAILED) or synthesize with the record ' +
        '(context libvirt-cluster:decision-record=<file of `cdktf-libvirt-cluster record --out`>), then reconcile again. ' +
        'To override it (h2 is fit and should be active): reconcile --override-decision h2, which removes the decision from the record.',
    );
    const standby = revise(empty(), { decisions: { hostStates: { h3: 'standby' }, poweredOff: ['h3'] } }, 'p', T0);
    expect(contradictions(standby, { h3: 'active' })[0].message).toMatch(/^h3 was put in standby and powered off by controller p/);
  });

  test('an override removes the decision and the host from the powered-off list, as a new revision', () => {
    const r = revise(failedOver(), { decisions: { hostStates: { h2: 'failed', h3: 'standby' }, poweredOff: ['h3'] } }, 'a', T0 + 200);
    const next = withoutHostDecision(r, 'h3', 'reconcile (ops)', T0 + 300);
    expect(next.decisions).toEqual({ hostStates: { h2: 'failed' }, poweredOff: [] });
    expect(next.revision).toBe(r.revision + 1);
    expect(next.updatedBy).toBe('reconcile (ops)');
    expect(contradictions(next, { h3: 'active' })).toEqual([]);
  });

  test('the synth takes the decided state when the code says otherwise, with a warning that says how to catch up', () => {
    const r = failedOver();
    expect(recordedOverride(r, 'h1', 'active', 'd.json')).toBeUndefined();
    expect(recordedOverride(r, 'h2', 'failed', 'd.json')).toBeUndefined();
    expect(recordedOverride(r, 'h2', 'active', 'd.json')).toEqual({
      state: 'failed',
      warning:
        'host h2 is failed, not active as in code: fenced (powered off) and declared failed: its VMs were restarted elsewhere by controller a at 2026-11-26T02:00:00.100Z (decision record d.json, revision 2). ' +
        'Commit state: HostState.FAILED for h2 to catch the code up, or reconcile --override-decision h2 to undo the decision.',
    });
  });
});
