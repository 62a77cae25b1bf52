import {
  afterDeploy, afterFence, baseline, ClusterFacts, CycleFailures, decide, DecideConfig, DecideInput, Decisions, deployContext, emptyDecisions, enabledActions,
  HostTrack, parseStackFacts, StackFacts, Step,
} from '../../lib/ops/controller-core';
import { configProblems, resolveConfig } from '../../lib/ops/controller-config';
import { HostState, UnattendedAction } from '../../lib/core/model';

const T0 = Date.parse('2026-11-27T02:00:00Z'); // 03:00 in Zurich
const FENCE = { command: ['fence_ipmilan'], options: { ip: '10.0.0.1' } };

function config(over: Partial<DecideConfig> = {}): DecideConfig {
  // The rules on the probes alone (accepted by name); with corosync, in the membership tests.
  return { stacks: ['mail'], hosts: { h1: { fence: FENCE }, h2: { fence: FENCE } }, unattended: ['failover'], failureAfterMs: 10_000, wakeTimeoutMs: 300_000, probesOnly: true, ...over };
}

function cluster(over: Partial<ClusterFacts> = {}): ClusterFacts {
  return {
    id: 'cluster', timeZone: 'Europe/Zurich', instant: new Date(T0).toISOString(), unattended: [], windowStarts: ['08:00', '20:00'],
    nextWindowStart: '2026-11-27T07:00:00.000Z', hosts: [{ name: 'h1', state: HostState.ACTIVE, wakeSeconds: 60 }, { name: 'h2', state: HostState.ACTIVE, wakeSeconds: 60 }],
    standbyCandidates: [], recoverySeconds: 120, ...over,
  };
}
const facts = (over: Partial<ClusterFacts> = {}): StackFacts => ({ version: 1, stack: 'mail', clusters: [cluster(over)] });

const up = (since = T0 - 60_000): HostTrack => ({ answering: true, lastAnswer: T0, answeringSince: since });
const down = (lastAnswer: number): HostTrack => ({ answering: false, lastAnswer, error: 'Connection refused' });
const none: CycleFailures = { fence: {}, deploy: {}, synth: {} };

function input(over: Partial<DecideInput> = {}): DecideInput {
  const base = { now: T0, config: config(), tracks: { h1: up(), h2: up() }, decisions: emptyDecisions(), facts: { mail: facts() }, failures: none };
  const merged = { ...base, ...over };
  // Everything deployed as the controller found it, unless the test says otherwise.
  return over.decisions !== undefined ? merged : { ...merged, decisions: baseline(merged) };
}

describe('failover: fenced first, failed only once the fence succeeded', () => {
  test('without a membership layer, and without probesOnly accepted by name, a silent host is not fenced: refused, saying how to configure it', () => {
    const { step, warnings } = decide(input({ config: config({ probesOnly: undefined }), now: T0 + 60_000, tracks: { h1: down(T0), h2: up() } }));
    expect(step).toBeUndefined();
    expect(warnings).toContainEqual(expect.objectContaining({ event: 'refused', host: 'h1', detail: expect.stringMatching(/without a membership layer .* nothing is fenced or restarted\. Configure membership\.corosync .* "membership": \{ "probesOnly": true \}$/) }));
    // Accepted by name, the same silence is fenced.
    expect(decide(input({ now: T0 + 60_000, tracks: { h1: down(T0), h2: up() } })).step).toMatchObject({ kind: 'fence', host: 'h1', action: 'off' });
  });

  test('a host silent for less than failureAfterSeconds is left alone', () => {
    expect(decide(input({ now: T0 + 9_000, tracks: { h1: down(T0), h2: up() } })).step).toBeUndefined();
  });

  test('after failureAfterSeconds the step is the fence (action=off), never a deploy', () => {
    const { step } = decide(input({ now: T0 + 10_500, tracks: { h1: down(T0 + 500), h2: up() } }));
    expect(step).toMatchObject({ kind: 'fence', host: 'h1', action: 'off', purpose: 'failover' });
    expect((step as { reason: string }).reason).toMatch(/h1 has not answered for 10\.0 s \(Connection refused\): fencing it/);
  });

  test('while the fence fails nothing is deployed, whatever the number of cycles, and it says why every time', () => {
    let state = input({ now: T0 + 12_000, tracks: { h1: down(T0), h2: up() } });
    for (let cycle = 0; cycle < 50; cycle++) {
      const failures = { fence: {} as Record<string, string>, deploy: {}, synth: {} };
      for (let i = 0; i < 10; i++) {
        const { step, warnings } = decide({ ...state, failures });
        if (step === undefined) {
          expect(warnings).toEqual([expect.objectContaining({ event: 'refused', host: 'h1', detail: expect.stringMatching(/not confirmed off \(fence action=off failed: killed by SIGKILL\): nothing of it is restarted/) })]);
          break;
        }
        expect(step.kind).toBe('fence'); // the only step: never a decision, never a deploy
        failures.fence[(step as { host: string }).host] = 'killed by SIGKILL';
      }
      state = { ...state, now: state.now + 2_000 };
    }
    expect(state.decisions.hostStates).toEqual({});
  });

  test('once fenced, h1 is failed and the stack is deployed with the override', () => {
    const before = input({ now: T0 + 12_000, tracks: { h1: down(T0), h2: up() } });
    const fenceStep = decide(before).step as Extract<Step, { kind: 'fence' }>;
    const decisions = afterFence(before.decisions, fenceStep, before.now);
    expect(decisions.hostStates).toEqual({ h1: 'failed' });
    const { step } = decide({ ...before, decisions });
    expect(step).toMatchObject({ kind: 'deploy', stack: 'mail', reason: 'h1 as in code → failed' });
    expect((step as Extract<Step, { kind: 'deploy' }>).context).toEqual({ 'libvirt-cluster:host-state:h1': 'failed', 'libvirt-cluster:instant': new Date(T0 + 12_000).toISOString() });
    // Applied: nothing more to do, and the silent failed host is expected to be silent.
    const applied = afterDeploy(decisions, step as Extract<Step, { kind: 'deploy' }>);
    expect(decide({ ...before, now: T0 + 60_000, decisions: applied }).step).toBeUndefined();
  });

  test('not enabled by name, or no fence agent: nothing is fenced or restarted, and it says so', () => {
    const off = decide(input({ now: T0 + 20_000, config: config({ unattended: [] }), tracks: { h1: down(T0), h2: up() } }));
    expect(off.step).toBeUndefined();
    expect(off.warnings[0].detail).toMatch(/failover is not enabled for mail: nothing is restarted/);
    const unfenced = decide(input({ now: T0 + 20_000, config: config({ hosts: { h1: {}, h2: { fence: FENCE } } }), tracks: { h1: down(T0), h2: up() } }));
    expect(unfenced.step).toBeUndefined();
    expect(unfenced.warnings[0].detail).toMatch(/no fence agent configured/);
  });

  test('a stack can enable failover itself (controller.json), and the source is named', () => {
    const mine = facts({ unattended: [UnattendedAction.FAILOVER, UnattendedAction.SCHEDULE] });
    expect([...enabledActions({ unattended: [] }, mine)]).toEqual([['failover', ['stack (cluster cluster)']], ['schedule', ['stack (cluster cluster)']]]);
    expect(enabledActions({ unattended: ['failover'] }, mine).get('failover')).toEqual(['controller configuration', 'stack (cluster cluster)']);
    const { step } = decide(input({ now: T0 + 20_000, config: config({ unattended: [] }), facts: { mail: mine }, tracks: { h1: down(T0), h2: up() } }));
    expect(step).toMatchObject({ kind: 'fence', host: 'h1' });
  });

  test('a host failed or in standby in code is expected to be silent', () => {
    const inCode = facts({ hosts: [{ name: 'h1', state: HostState.FAILED }, { name: 'h2', state: HostState.ACTIVE }] });
    expect(decide(input({ now: T0 + 60_000, facts: { mail: inCode }, tracks: { h1: down(T0), h2: up() } })).step).toBeUndefined();
  });

  test('a failed host comes back only after answering for failureAfterSeconds: override removed, deployed', () => {
    const decisions = baseline({ now: T0, config: config(), decisions: { ...emptyDecisions(), hostStates: { h1: 'failed' } }, facts: { mail: facts() } });
    expect(decide(input({ decisions, now: T0 + 5_000, tracks: { h1: up(T0), h2: up() } })).step).toBeUndefined();
    const { step } = decide(input({ decisions, now: T0 + 10_000, tracks: { h1: up(T0), h2: up() } }));
    expect(step).toMatchObject({ kind: 'decide', host: 'h1', detail: expect.stringMatching(/answered for 10\.0 s .* back in service/) });
    const next = decide(input({ decisions: (step as Extract<Step, { kind: 'decide' }>).decisions, now: T0 + 10_000, tracks: { h1: up(T0), h2: up() } })).step;
    expect(next).toMatchObject({ kind: 'deploy', reason: 'h1 failed → as in code' });
    expect(Object.keys((next as Extract<Step, { kind: 'deploy' }>).context)).toEqual(['libvirt-cluster:instant']);
  });
});

describe('membership and quorum from corosync', () => {
  const THREE = { h1: { fence: FENCE }, h2: { fence: FENCE }, h3: { fence: FENCE } };
  const trio = (over: Partial<ClusterFacts> = {}) =>
    facts({ hosts: ['h1', 'h2', 'h3'].map((name) => ({ name, state: HostState.ACTIVE })), failuresToTolerate: 1, ...over });
  const withCorosync = (over: Partial<DecideConfig> = {}) => config({ hosts: THREE, membership: { nodes: { h1: 'h1', h2: 'h2', h3: 'h3' } }, ...over });
  const view = (members: string[], quorate = true) => ({ view: { quorate, members, totalVotes: members.length, expectedVotes: 5, quorum: 3 } });
  const lostH3 = { h1: up(), h2: up(), h3: down(T0) };

  test('outside a quorate partition nothing is done, whatever the probes say', () => {
    for (const membership of [view(['c2', 'h3'], false), { error: 'Cannot initialize QUORUM service' }, undefined]) {
      const { step, warnings } = decide(input({ now: T0 + 60_000, config: withCorosync(), facts: { mail: trio() }, tracks: { h1: down(T0), h2: down(T0), h3: down(T0) }, membership }));
      expect(step).toBeUndefined();
      expect(warnings).toEqual([expect.objectContaining({ key: 'quorum', event: 'refused', detail: expect.stringMatching(/(partition is NOT quorate \(2 of 5 votes, quorum 3\): c2, h3|membership is unknown \(.*\)): it takes no action, fences nothing and deploys nothing/) })]);
    }
  });

  test('a host is fenced only when corosync has lost it and the probe agrees', () => {
    const lost = decide(input({ now: T0 + 12_000, config: withCorosync(), facts: { mail: trio() }, tracks: lostH3, membership: view(['c1', 'h1', 'h2']) }));
    expect(lost.step).toMatchObject({ kind: 'fence', host: 'h3', action: 'off', purpose: 'failover' });
    expect((lost.step as { reason: string }).reason).toMatch(/^h3 has not answered for 12\.0 s \(Connection refused\) and corosync has lost node h3 \(quorate \(3 of 5 votes, quorum 3\): c1, h1, h2\): fencing it/);
    // Corosync lost it but the probe still answers: not a candidate.
    expect(decide(input({ now: T0 + 12_000, config: withCorosync(), facts: { mail: trio() }, tracks: { h1: up(), h2: up(), h3: up() }, membership: view(['c1', 'h1', 'h2']) })).step).toBeUndefined();
  });

  test('libvirtd down on a host corosync still counts: never fenced, and it says which case it is', () => {
    const { step, warnings } = decide(input({ now: T0 + 60_000, config: withCorosync(), facts: { mail: trio() }, tracks: lostH3, membership: view(['c1', 'h1', 'h2', 'h3']) }));
    expect(step).toBeUndefined();
    expect(warnings).toEqual([expect.objectContaining({ key: 'member:h3', host: 'h3', detail: expect.stringMatching(/^h3 has not answered for 60\.0 s \(Connection refused\), but corosync still counts node h3 a member of this partition: the host is up and its libvirtd down or hung .* it is not fenced/) })]);
  });

  test('corosync node names may differ from host names', () => {
    const named = withCorosync({ membership: { nodes: { h1: 'kvm1', h2: 'kvm2', h3: 'kvm3' } } });
    expect(decide(input({ now: T0 + 12_000, config: named, facts: { mail: trio() }, tracks: lostH3, membership: view(['c1', 'kvm1', 'kvm2', 'kvm3']) })).step).toBeUndefined();
    expect(decide(input({ now: T0 + 12_000, config: named, facts: { mail: trio() }, tracks: lostH3, membership: view(['c1', 'kvm1', 'kvm2']) })).step).toMatchObject({ kind: 'fence', host: 'h3' });
  });

  test('never more fences in a cluster than its failuresToTolerate without a person', () => {
    const decisions = baseline({ now: T0, config: withCorosync(), decisions: { ...emptyDecisions(), hostStates: { h2: 'failed' } }, facts: { mail: trio() } });
    const { step, warnings } = decide(input({ now: T0 + 12_000, config: withCorosync(), decisions, facts: { mail: trio() }, tracks: { h1: up(), h2: down(T0), h3: down(T0) }, membership: view(['c1', 'h1']) }));
    expect(step?.kind).not.toBe('fence');
    expect(warnings).toContainEqual(expect.objectContaining({ key: 'tolerate:h3', detail: expect.stringMatching(/cluster cluster tolerates 1 host failure \(failuresToTolerate\) and this controller has fenced h2 already: fencing h3 as well needs a person/) }));
    // A cluster sized for two failures lets the second through (files without the field read as 1).
    const two = decide(input({ now: T0 + 12_000, config: withCorosync(), decisions, facts: { mail: trio({ failuresToTolerate: 2 }) }, tracks: { h1: up(), h2: down(T0), h3: down(T0) }, membership: view(['c1', 'h1']) }));
    expect(two.step).toMatchObject({ kind: 'fence', host: 'h3' });
  });
});

describe('schedule switches', () => {
  const boundary = '2026-11-27T07:00:00.000Z'; // 08:00 in Zurich
  const scheduled = { mail: facts({ unattended: [UnattendedAction.SCHEDULE] }) };

  test('before the boundary nothing; once the clock passes it, the instant is pinned to exactly the boundary and deployed', () => {
    expect(decide(input({ now: Date.parse(boundary) - 1, facts: scheduled })).step).toBeUndefined();
    const { step } = decide(input({ now: Date.parse(boundary) + 1_500, facts: scheduled }));
    expect(step).toMatchObject({ kind: 'decide', stack: 'mail', detail: `window boundary 08:00 Europe/Zurich passed (controller clock 2026-11-27T07:00:01.500Z): instant pinned to ${boundary}` });
    const pinned = (step as Extract<Step, { kind: 'decide' }>).decisions;
    const deploy = decide(input({ now: Date.parse(boundary) + 1_500, facts: scheduled, decisions: pinned })).step as Extract<Step, { kind: 'deploy' }>;
    expect(deploy.context['libvirt-cluster:instant']).toBe(boundary);
    // Until the next synth tells the next boundary, the same one is not pinned again.
    const done = afterDeploy(pinned, deploy);
    expect(decide(input({ now: Date.parse(boundary) + 3_000, facts: scheduled, decisions: done })).step).toBeUndefined();
  });

  test('not enabled: a passed boundary changes nothing', () => {
    expect(decide(input({ now: Date.parse(boundary) + 1_500 })).step).toBeUndefined();
  });

  test('without schedule switches the instant is the clock, and it is not part of what was deployed', () => {
    const a = deployContext('mail', input({ now: T0 }));
    const b = deployContext('mail', input({ now: T0 + 3_600_000 }));
    expect(a.key).toBe(b.key);
    expect(a.context['libvirt-cluster:instant']).not.toBe(b.context['libvirt-cluster:instant']);
  });
});

describe('standby power', () => {
  const sleepy = (over: Partial<ClusterFacts> = {}) => ({ mail: facts({ unattended: [UnattendedAction.STANDBY_POWER, UnattendedAction.FAILOVER], standbyCandidates: ['h2'], ...over }) });

  /** Runs decide → step until nothing is left, with every fence and deploy succeeding; returns the steps. */
  function settle(start: DecideInput, max = 10): { steps: Step[]; decisions: Decisions } {
    let decisions = start.decisions;
    const steps: Step[] = [];
    for (let i = 0; i < max; i++) {
      const { step } = decide({ ...start, decisions });
      if (step === undefined) break;
      steps.push(step);
      if (step.kind === 'decide') decisions = step.decisions;
      if (step.kind === 'fence') decisions = afterFence(decisions, step, start.now);
      if (step.kind === 'deploy') decisions = afterDeploy(decisions, step);
    }
    return { steps, decisions };
  }
  const brief = (s: Step) => (s.kind === 'fence' ? `fence ${s.action} ${s.host}` : s.kind === 'deploy' ? `deploy ${s.reason}` : `decide ${s.detail.split(':')[0]}`);

  test('a candidate goes to standby, is deployed so, then powered off; only where enabled', () => {
    const { steps, decisions } = settle(input({ facts: sleepy() }));
    expect(steps.map(brief)).toEqual(['decide h2 runs nothing in mail (a standby candidate)', 'deploy h2 as in code → standby', 'fence off h2']);
    expect(decisions.poweredOff).toEqual(['h2']);
    expect(settle(input({ facts: { mail: facts({ standbyCandidates: ['h2'] }) } })).steps).toEqual([]);
  });

  test('a host that only just answered, or a peer in trouble, keeps it awake', () => {
    expect(settle(input({ facts: sleepy(), tracks: { h1: up(), h2: up(T0 - 5_000) } })).steps).toEqual([]);
    expect(settle(input({ facts: sleepy(), tracks: { h1: down(T0 - 3_000), h2: up() } })).steps).toEqual([]);
  });

  test('a sleeping host is silent by design; when its peer fails it is woken, and the stack deploys once it answers', () => {
    const asleep = settle(input({ facts: sleepy() })).decisions;
    const now = T0 + 60_000;
    expect(decide(input({ now, facts: sleepy(), decisions: asleep, tracks: { h1: up(), h2: down(T0) } })).step).toBeUndefined();
    // h1 dies: fenced, failed, then h2 powered on; the deploy waits for h2.
    const dead = { h1: down(now - 11_000), h2: down(T0) };
    const { steps, decisions } = settle(input({ now, facts: sleepy(), decisions: asleep, tracks: dead }));
    expect(steps.map(brief)).toEqual(['fence off h1', 'fence on h2']);
    expect(decide(input({ now, facts: sleepy(), decisions, tracks: dead })).warnings).toEqual([expect.objectContaining({ event: 'waiting', detail: 'mail waits for h2 to answer after power-on before it deploys' })]);
    const woken = settle(input({ now: now + 20_000, facts: sleepy(), decisions, tracks: { h1: down(now - 11_000), h2: up(now + 19_000) } }));
    expect(woken.steps.map(brief)).toEqual(['decide h2 answers 20.0 s after it was powered on', 'deploy h1 as in code → failed, h2 standby → active']);
  });

  test('a synth that fails without the sleeping host (admission) wakes it', () => {
    const asleep = settle(input({ facts: sleepy() })).decisions;
    const { step } = decide({ ...input({ facts: sleepy(), decisions: asleep, tracks: { h1: up(), h2: down(T0) } }), failures: { fence: {}, deploy: { mail: 'x' }, synth: { mail: 'admission control fails' } } });
    expect(step).toMatchObject({ kind: 'fence', action: 'on', host: 'h2', reason: expect.stringMatching(/the synth of mail fails without it/) });
  });
});

describe('configuration', () => {
  test('every problem at once; passwords are refused in the options', () => {
    expect(configProblems({ stacks: [], hosts: { h1: { fence: { command: 'fence_ipmilan', options: { password: 'x', action: 'off' } } } }, unattended: ['failover', 'autopilot'], pollSeconds: 0, colour: 1 })).toEqual([
      "unknown field 'colour'; the fields are id, app, outdir, stacks, hosts, unattended, pollSeconds, failureAfterSeconds, probeTimeoutSeconds, fenceTimeoutSeconds, wakeTimeoutSeconds, repeatWarningSeconds, membership, eventLog, engine, env",
      'stacks must list at least one stack name',
      'hosts.h1.uri must be a libvirt URI',
      'hosts.h1.fence.command must be the agent\'s argv, e.g. ["fence_ipmilan"]',
      'hosts.h1.fence.options.password: give the password through password_script (a command that prints it), not in the configuration',
      'hosts.h1.fence.options must not set action: the controller sets it',
      "unattended: 'autopilot' is not one of failover, schedule, standby-power",
      'pollSeconds must be a number of seconds above 0',
    ]);
  });

  test('defaults: app from cdktf.json, outdir per controller id, timings, event log in the working directory', () => {
    const resolved = resolveConfig({ stacks: ['mail'], hosts: { h1: { uri: 'qemu:///system' } } }, { cwd: '/srv/site', id: 'c1', readFile: () => '{"app":"npx tsx main.ts"}' });
    expect(resolved).toMatchObject({
      id: 'c1', app: 'npx tsx main.ts', outdir: '/srv/site/cdktf.out.controller/c1', unattended: [], pollMs: 2000, failureAfterMs: 10_000, probeTimeoutMs: 3000,
      eventLog: '/srv/site/controller-events.jsonl',
    });
  });

  test('membership: corosync with its node names and timeout, every problem listed; without it, none', () => {
    const hosts = { h1: { uri: 'qemu:///system' }, h2: { uri: 'qemu:///system' } };
    const resolved = resolveConfig({ stacks: ['mail'], hosts, membership: { corosync: { nodes: { h2: 'kvm2' } } } }, { cwd: '/srv/site', id: 'c1', readFile: () => '{"app":"x"}' });
    expect(resolved.membership).toEqual({ command: [], nodes: { h1: 'h1', h2: 'kvm2' }, timeoutMs: 3000 });
    expect(resolveConfig({ stacks: ['mail'], hosts }, { cwd: '/srv/site', id: 'c1', readFile: () => '{"app":"x"}' }).membership).toBeUndefined();
    expect(configProblems({ stacks: ['mail'], hosts, membership: { corosync: { command: 'nsenter', nodes: { h9: 'x' }, timeoutSeconds: 0, ring: 1 } } })).toEqual([
      "unknown field 'membership.corosync.ring'; the fields are command, nodes, timeoutSeconds",
      'membership.corosync.command must be a list of arguments',
      'membership.corosync.timeoutSeconds must be a number of seconds above 0',
      'membership.corosync.nodes names h9, which is not one of the hosts',
    ]);
    expect(configProblems({ stacks: ['mail'], hosts, membership: { pacemaker: {} } })).toEqual(['membership must be { "corosync": { … } } (docs/controller.md, Topology), or { "probesOnly": true } to accept failover on the probes alone']);
    // The probes alone, only by name.
    const probes = resolveConfig({ stacks: ['mail'], hosts, membership: { probesOnly: true } }, { cwd: '/srv/site', id: 'c1', readFile: () => '{"app":"x"}' });
    expect([probes.membership, probes.probesOnly]).toEqual([undefined, true]);
    expect(resolveConfig({ stacks: ['mail'], hosts }, { cwd: '/srv/site', id: 'c1', readFile: () => '{"app":"x"}' }).probesOnly).toBe(false);
    expect(configProblems({ stacks: ['mail'], hosts, membership: { probesOnly: 'yes' } })).toEqual(['membership.probesOnly must be true, alone: { "probesOnly": true } (or configure { "corosync": { … } })']);
  });

  test('controller.json is read as version 1 only', () => {
    expect(parseStackFacts(JSON.stringify(facts()), 'mail').clusters[0].id).toBe('cluster');
    expect(() => parseStackFacts('{"version":2,"clusters":[]}', 'mail')).toThrow(/version 2; this controller reads version 1/);
  });
});
