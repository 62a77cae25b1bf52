import fc from 'fast-check';
import {
  ClusterSpec,
  FailureDomainSpec,
  HOST_DOMAIN,
  HostState,
  PlacementPolicy,
  PlacementResult,
  RestartPriority,
  VmSpec,
  labelDomain,
  place,
} from '../../lib/core';
import { capacityOf, cluster, domainOf, hardDomains, host, scenarioArb, shuffle, toVm, vm } from './arbitraries';

const rack = (r: string) => ({ labels: { rack: r } });

function hostsUsed(result: PlacementResult): Set<string> {
  return new Set(Object.values(result.placements));
}

function rules(result: PlacementResult): string[] {
  return result.problems.map((p) => p.rule);
}

describe('place: capacity', () => {
  test('a host gives (cores − reserved) × overcommit vCPUs and the same for memory', () => {
    const c = cluster([host('h1', { cores: 8, reservedCores: 2, memoryMiB: 10240, reservedMemoryMiB: 1024 })], { cpuOvercommit: 4 });
    const fits = place(c, [vm('a', { vcpus: 24, memoryMiB: 9216 })]);
    expect(fits.placements).toEqual({ a: 'h1' });
    expect(fits.problems).toEqual([]);

    const tooManyCpus = place(c, [vm('a', { vcpus: 20, memoryMiB: 1024 }), vm('b', { vcpus: 5, memoryMiB: 1024 })]);
    expect(tooManyCpus.placements).toEqual({ a: 'h1' });
    expect(tooManyCpus.problems.find((p) => p.subject === 'b')?.rule).toBe('capacity');

    const tooMuchMemory = place(c, [vm('a', { memoryMiB: 9217 })]);
    expect(tooMuchMemory.placements).toEqual({});
  });

  test('memory overcommit scales what a host offers', () => {
    const c = cluster([host('h1', { memoryMiB: 4096 })], { memoryOvercommit: 1.5 });
    expect(place(c, [vm('a', { memoryMiB: 6144 })]).placements).toEqual({ a: 'h1' });
    expect(place(c, [vm('a', { memoryMiB: 6145 })]).placements).toEqual({});
  });

  test('off-window replicas keep their reservation', () => {
    const c = cluster([host('h1', { cores: 4 })]);
    const result = place(c, [vm('on', { vcpus: 2 }), vm('off', { vcpus: 2, active: false }), vm('late', { vcpus: 1 })]);
    expect(result.placements).toEqual({ off: 'h1', on: 'h1' });
    expect(result.problems.map((p) => [p.subject, p.rule])).toEqual([
      ['cluster', 'capacity'],
      ['late', 'capacity'],
    ]);
  });

  test('a VM that fits nowhere is reported with the shortfall on the closest host', () => {
    const c = cluster([host('h1', { cores: 4 }), host('h2', { cores: 2 })]);
    const result = place(c, [vm('big', { vcpus: 6, memoryMiB: 2048 })]);
    expect(result.problems).toContainEqual(
      expect.objectContaining({
        subject: 'big',
        rule: 'capacity',
        message: expect.stringContaining('the closest, h1, has 4 vCPU and 16384 MiB free (short 2 vCPU, 0 MiB)'),
        hint: expect.stringMatching(/add or reactivate hosts/),
      }),
    );
  });

  test('cluster-wide shortfall is reported once, with the totals', () => {
    const c = cluster([host('h1', { cores: 2, memoryMiB: 4096 })]);
    const result = place(c, [vm('a', { vcpus: 2 }), vm('b', { vcpus: 2 })]);
    expect(result.problems).toContainEqual(
      expect.objectContaining({
        subject: 'cluster',
        rule: 'capacity',
        message: 'VMs need 4 vCPU and 2048 MiB in total; active hosts provide 2 vCPU and 4096 MiB (short 2 vCPU, 0 MiB)',
      }),
    );
  });

  test('higher priority is placed first when room is short', () => {
    const c = cluster([host('h1', { cores: 2 })]);
    const result = place(c, [vm('low', { vcpus: 2, priority: RestartPriority.LOW }), vm('high', { vcpus: 2, priority: RestartPriority.HIGH })]);
    expect(result.placements).toEqual({ high: 'h1' });
  });
});

describe('place: host states', () => {
  test.each([HostState.MAINTENANCE, HostState.STANDBY, HostState.FAILED])('a host in state %s receives nothing', (state) => {
    const c = cluster([host('h1', { state }), host('h2')]);
    const result = place(c, [vm('a'), vm('b'), vm('c')]);
    expect(hostsUsed(result)).toEqual(new Set(['h2']));
  });

  test('with no active host every VM is reported', () => {
    const result = place(cluster([host('h1', { state: HostState.STANDBY })]), [vm('a'), vm('b')]);
    expect(result.placements).toEqual({});
    expect(result.problems.filter((p) => p.rule === 'capacity').map((p) => p.subject)).toEqual(['cluster', 'a', 'b']);
  });
});

describe('place: policy', () => {
  const hosts = [host('h1'), host('h2'), host('h3')];
  const vms = [vm('a'), vm('b'), vm('c')];

  test('spread puts each VM on the least loaded host', () => {
    expect(hostsUsed(place(cluster(hosts, { policy: PlacementPolicy.SPREAD }), vms)).size).toBe(3);
  });

  test('pack keeps as few hosts busy as possible', () => {
    expect(hostsUsed(place(cluster(hosts, { policy: PlacementPolicy.PACK }), vms)).size).toBe(1);
  });

  test('pack opens a new host only when the busy ones are full', () => {
    const c = cluster([host('h1', { cores: 2 }), host('h2', { cores: 2 }), host('h3', { cores: 2 })], { policy: PlacementPolicy.PACK });
    const result = place(c, [vm('a'), vm('b'), vm('c')]);
    expect(hostsUsed(result).size).toBe(2);
  });
});

describe('place: anti-affinity', () => {
  const byRack = labelDomain('rack');
  const mail = (i: number, hard = true, domain: FailureDomainSpec = HOST_DOMAIN): VmSpec => vm(`mail-${i}`, { group: 'mail', antiAffinity: { hard, domain } });

  test('hard by host: one replica per host', () => {
    const result = place(cluster([host('h1'), host('h2'), host('h3')], { policy: PlacementPolicy.PACK }), [mail(0), mail(1), mail(2)]);
    expect(hostsUsed(result).size).toBe(3);
    expect(result.problems).toEqual([]);
  });

  test('hard, with too few hosts: one problem for the group, naming replicas and hosts', () => {
    const result = place(cluster([host('h1'), host('h2'), host('h3', { state: HostState.MAINTENANCE })]), [mail(0), mail(1), mail(2)]);
    expect(result.problems).toContainEqual({
      subject: 'mail',
      rule: 'anti-affinity-hard',
      message: '3 replicas of group mail need 3 distinct hosts with hard anti-affinity; only 2 active hosts',
      hint: expect.any(String),
    });
    expect(Object.keys(result.placements)).toHaveLength(2);
    expect(result.problems).toContainEqual(expect.objectContaining({ subject: 'mail-2', rule: 'anti-affinity-hard' }));
  });

  test('hard by rack: counts distinct racks and names them', () => {
    const c = cluster([host('h1', rack('r1')), host('h2', rack('r1')), host('h3', rack('r2'))]);
    const result = place(c, [mail(0, true, byRack), mail(1, true, byRack), mail(2, true, byRack)]);
    expect(result.problems).toContainEqual(
      expect.objectContaining({
        subject: 'mail',
        rule: 'anti-affinity-hard',
        message: '3 replicas of group mail need 3 distinct values of label rack with hard anti-affinity; active hosts span only 2 (r1, r2)',
      }),
    );
    const racks = Object.values(result.placements).map((h) => c.hosts.find((x) => x.name === h)!.labels.rack);
    expect(new Set(racks).size).toBe(racks.length);
  });

  test('soft by rack: kept while possible, then relaxed with a warning', () => {
    const c = cluster([host('h1', rack('r1')), host('h2', rack('r1')), host('h3', rack('r2'))], { policy: PlacementPolicy.PACK });
    const two = place(c, [mail(0, false, byRack), mail(1, false, byRack)]);
    expect(new Set(Object.values(two.placements).map((h) => c.hosts.find((x) => x.name === h)!.labels.rack))).toEqual(new Set(['r1', 'r2']));
    expect(two.warnings).toEqual([]);

    const three = place(c, [mail(0, false, byRack), mail(1, false, byRack), mail(2, false, byRack)]);
    expect(Object.keys(three.placements)).toHaveLength(3);
    expect(three.problems).toEqual([]);
    expect(three.warnings).toEqual([
      expect.objectContaining({ subject: 'mail', rule: 'anti-affinity-soft', message: expect.stringMatching(/share rack r[12]/) }),
    ]);
  });

  test('hard across a host label called host counts the values of that label, not hosts', () => {
    const c = cluster([host('h1', { labels: { host: 'a' } }), host('h2', { labels: { host: 'a' } }), host('h3', { labels: { host: 'b' } })]);
    const byHostLabel = labelDomain('host');
    const result = place(c, [mail(0, true, byHostLabel), mail(1, true, byHostLabel), mail(2, true, byHostLabel)]);
    expect(result.problems).toContainEqual(
      expect.objectContaining({
        subject: 'mail',
        rule: 'anti-affinity-hard',
        message: '3 replicas of group mail need 3 distinct values of label host with hard anti-affinity; active hosts span only 2 (a, b)',
      }),
    );
    const values = Object.values(result.placements).map((h) => c.hosts.find((x) => x.name === h)!.labels.host);
    expect(values.sort()).toEqual(['a', 'b']);
  });

  test('soft across a host label called host says so, so it does not read like hosts', () => {
    const c = cluster([host('h1', { labels: { host: 'a' } }), host('h2', { labels: { host: 'a' } })]);
    const result = place(c, [mail(0, false, labelDomain('host')), mail(1, false, labelDomain('host'))]);
    expect(new Set(Object.values(result.placements)).size).toBe(2); // spread by policy, yet in one value of the label
    expect(result.warnings).toEqual([
      expect.objectContaining({
        rule: 'anti-affinity-soft',
        message: "soft anti-affinity by label 'host' of group mail relaxed: mail-0, mail-1 share label 'host' a",
        hint: "add hosts with another value of label 'host': 2 replicas and 1 label 'host' to run them; or lower the replica count",
      }),
    ]);
  });

  test('a soft rule relaxed for want of hosts says to add hosts; for want of room on enough hosts, to add capacity there', () => {
    const fewHosts = place(cluster([host('h1'), host('h2')]), [mail(0, false), mail(1, false), mail(2, false)]);
    expect(fewHosts.warnings).toEqual([expect.objectContaining({ rule: 'anti-affinity-soft', hint: 'add hosts: 3 replicas and 2 hosts to run them; or lower the replica count' })]);
    // Three hosts for three replicas, but h3 is full: more hosts are not what is missing.
    const full = place(cluster([host('h1'), host('h2'), host('h3', { cores: 1, memoryMiB: 1024 })]), [vm('filler', { pinnedHost: 'h3' }), mail(0, false), mail(1, false), mail(2, false)]);
    expect(full.warnings).toEqual([expect.objectContaining({ rule: 'anti-affinity-soft', hint: 'add capacity in other hosts (they lack room), or lower the replica count' })]);
    // A host in maintenance takes no VMs: it does not count as a host to run them.
    const drained = place(cluster([host('h1'), host('h2'), host('h3', { state: HostState.MAINTENANCE })]), [mail(0, false), mail(1, false), mail(2, false)]);
    expect(drained.warnings).toEqual([expect.objectContaining({ rule: 'anti-affinity-soft', hint: 'add hosts: 3 replicas and 2 hosts to run them; or lower the replica count' })]);
  });

  test('soft by host relaxes to the host holding the fewest replicas', () => {
    const result = place(cluster([host('h1'), host('h2')]), [0, 1, 2, 3].map((i) => mail(i, false)));
    const counts = Object.values(result.placements).reduce<Record<string, number>>((m, h) => ({ ...m, [h]: (m[h] ?? 0) + 1 }), {});
    expect(counts).toEqual({ h1: 2, h2: 2 });
  });

  test('a host without the label is a failure domain of its own, with a warning', () => {
    const c = cluster([host('h1', rack('r1')), host('h2')]);
    const result = place(c, [mail(0, true, byRack), mail(1, true, byRack)]);
    expect(Object.keys(result.placements)).toHaveLength(2);
    expect(result.warnings).toContainEqual(expect.objectContaining({ rule: 'failure-domain', subject: 'label rack' }));
  });

  test('members that disagree: every declared rule applies to the group, with a warning', () => {
    const result = place(cluster([host('h1'), host('h2')], { policy: PlacementPolicy.PACK }), [
      vm('a', { group: 'g', antiAffinity: { hard: true, domain: HOST_DOMAIN } }),
      vm('b', { group: 'g' }),
    ]);
    expect(hostsUsed(result).size).toBe(2);
    expect(result.warnings).toContainEqual(expect.objectContaining({ subject: 'g', rule: 'anti-affinity' }));
  });
});

describe('place: pinned, allowed and preferred hosts', () => {
  const c = cluster([host('h1'), host('h2'), host('h3'), host('h4', { state: HostState.FAILED })]);

  test('a pinned VM goes to its host', () => {
    expect(place(c, [vm('a', { pinnedHost: 'h3' })]).placements).toEqual({ a: 'h3' });
  });

  test('allowed hosts bound the choice', () => {
    const result = place(c, [vm('a', { allowedHosts: ['h2'] }), vm('b', { allowedHosts: ['h2'] })]);
    expect(result.placements).toEqual({ a: 'h2', b: 'h2' });
  });

  test('preferred hosts are tried in order', () => {
    expect(place(c, [vm('a', { preferredHosts: ['h3', 'h1'] })]).placements).toEqual({ a: 'h3' });
    // b is larger, so it is placed first and fills h3; a falls back to its second choice
    const result = place(c, [vm('a', { preferredHosts: ['h3', 'h1'] }), vm('b', { vcpus: 8, preferredHosts: ['h3', 'h1'] })]);
    expect(result.placements).toEqual({ a: 'h1', b: 'h3' });
  });

  test('preferred hosts do not override anti-affinity', () => {
    const g = { group: 'g', antiAffinity: { hard: false, domain: HOST_DOMAIN }, preferredHosts: ['h2', 'h3'] };
    expect(place(c, [vm('a', g), vm('b', g)]).placements).toEqual({ a: 'h2', b: 'h3' });
  });

  test('every unsatisfiable rule is reported in one run, each with a hint', () => {
    const result = place(c, [
      vm('p1', { pinnedHost: 'nowhere' }),
      vm('p2', { pinnedHost: 'h4' }),
      vm('p3', { pinnedHost: 'h1', allowedHosts: ['h2'] }),
      vm('al', { allowedHosts: ['h4'] }),
      vm('big', { vcpus: 100 }),
      vm('ok'),
    ]);
    expect(result.problems.map((p) => [p.subject, p.rule])).toEqual(
      expect.arrayContaining([
        ['p1', 'pinned-host'],
        ['p2', 'pinned-host'],
        ['p3', 'pinned-host'],
        ['al', 'allowed-hosts'],
        ['big', 'capacity'],
      ]),
    );
    expect(result.problems.find((p) => p.subject === 'p2')!.message).toBe('VM p2 is pinned to h4, which is failed');
    expect(result.problems.find((p) => p.subject === 'al')!.message).toBe('VM al may only run on h4, and none of them is active (h4: failed)');
    expect(result.problems.every((p) => p.hint.length > 0)).toBe(true);
    expect(Object.keys(result.placements)).toEqual(['ok']);
  });

  test('unknown allowed or preferred hosts are ignored with a warning', () => {
    const result = place(c, [vm('a', { allowedHosts: ['h1', 'hx'], preferredHosts: ['hy'] })]);
    expect(result.placements).toEqual({ a: 'h1' });
    expect(result.warnings.map((w) => w.rule).sort()).toEqual(['allowed-hosts', 'preferred-hosts']);
  });
});

describe('place: validation', () => {
  test('duplicate names and bad numbers are reported together', () => {
    const c = cluster([host('h1'), host('h1'), host('h2', { reservedCores: 9 })], { cpuOvercommit: 0, failuresToTolerate: -1 });
    const result = place(c, [vm('a'), vm('a'), vm('b', { vcpus: 0 }), vm('c', { memoryMiB: 1.5 })]);
    expect(rules(result).sort()).toEqual(
      expect.arrayContaining(['duplicate-name', 'duplicate-name', 'invalid-value', 'invalid-value', 'invalid-value', 'invalid-value', 'invalid-value']),
    );
    expect(result.problems.filter((p) => p.subject === 'cluster').map((p) => p.message)).toEqual(
      expect.arrayContaining(['failuresToTolerate is -1', 'cpuOvercommit is 0']),
    );
    expect(result.placements.b).toBeUndefined();
    expect(result.placements.c).toBeUndefined();
  });
});

describe('place: the lock keeps VMs where they are', () => {
  const c = cluster([host('h1'), host('h2'), host('h3')]);
  const vms = [vm('a'), vm('b'), vm('c'), vm('d')];

  test('a VM stays on its locked host even when the policy would pick another', () => {
    const lock = { version: 1 as const, placements: { a: 'h3', b: 'h3', c: 'h3', d: 'h3' } };
    const result = place(c, vms, { lock });
    expect(result.placements).toEqual(lock.placements);
    expect(result.moves).toEqual([]);
  });

  test.each<[HostState, string]>([
    [HostState.FAILED, 'host h1 is failed'],
    [HostState.MAINTENANCE, 'host h1 is in maintenance'],
    [HostState.STANDBY, 'host h1 is in standby'],
  ])('a host that becomes %s moves only its VMs, with the reason', (state, reason) => {
    const first = place(c, vms);
    const onH1 = Object.keys(first.placements).filter((v) => first.placements[v] === 'h1');
    expect(onH1.length).toBeGreaterThan(0);
    const c2 = cluster([host('h1', { state }), host('h2'), host('h3')]);
    const second = place(c2, vms, { lock: first.lock });
    expect(second.moves.map((m) => m.vm)).toEqual(onH1);
    for (const m of second.moves) expect(m).toMatchObject({ from: 'h1', reason });
    for (const v of Object.keys(first.placements)) if (!onH1.includes(v)) expect(second.placements[v]).toBe(first.placements[v]);
  });

  test('a removed host is a reason too', () => {
    const lock = { version: 1 as const, placements: { a: 'gone' } };
    expect(place(c, [vm('a')], { lock }).moves).toEqual([{ vm: 'a', from: 'gone', to: expect.any(String), reason: 'host gone no longer exists' }]);
  });

  test('a VM that no longer fits or breaks a hard rule moves', () => {
    const lock = { version: 1 as const, placements: { big: 'h1', x: 'h2', y: 'h2' } };
    const result = place(c, [vm('big', { vcpus: 9 }), vm('x', { group: 'g', antiAffinity: { hard: true, domain: HOST_DOMAIN } }), vm('y', { group: 'g', antiAffinity: { hard: true, domain: HOST_DOMAIN } })], {
      lock,
    });
    expect(result.problems.find((p) => p.subject === 'big')?.message).toMatch(/was on h1/);
    expect(result.moves).toEqual([{ vm: 'y', from: 'h2', to: expect.stringMatching(/^h[13]$/), reason: 'hard anti-affinity with x (host h2)' }]);
  });

  test('entries of VMs that are gone are dropped from the new lock', () => {
    const lock = { version: 1 as const, placements: { a: 'h1', old: 'h2' } };
    expect(place(c, [vm('a')], { lock }).lock).toEqual({ version: 1, placements: { a: 'h1' } });
  });

  test('rebalance ignores the lock and reports the moves it causes', () => {
    const lock = { version: 1 as const, placements: { a: 'h1', b: 'h1', c: 'h1', d: 'h1' } };
    const result = place(c, vms, { lock, rebalance: true });
    expect(result.placements).toEqual(place(c, vms).placements);
    expect(result.moves.length).toBeGreaterThan(0);
    expect(result.moves.every((m) => m.reason === 'rebalance' && m.from === 'h1')).toBe(true);
  });

  test('a lock of another version is ignored with a warning', () => {
    const lock = { version: 2, placements: { a: 'h3' } } as unknown as { version: 1; placements: Record<string, string> };
    const result = place(c, [vm('a')], { lock });
    expect(result.placements).toEqual({ a: 'h1' });
    expect(result.warnings).toContainEqual(expect.objectContaining({ rule: 'lock' }));
  });

  test('VM names that are also Object.prototype keys are ordinary names', () => {
    const names = ['constructor', 'toString', '__proto__', 'hasOwnProperty'];
    const first = place(c, names.map((n) => vm(n)));
    expect(Object.keys(first.placements).sort()).toEqual([...names].sort());
    expect(first.problems).toEqual([]);
    const lock = JSON.parse(JSON.stringify(first.lock));
    expect(Object.keys(lock.placements).sort()).toEqual([...names].sort());
    const again = place(c, names.map((n) => vm(n)), { lock });
    expect(again.placements).toEqual(first.placements);
    expect(again.moves).toEqual([]);
    expect(place(c, [vm('toString')], { lock: { version: 1, placements: {} } }).moves).toEqual([]);
  });

  test('the lock serializes with sorted keys', () => {
    const result = place(c, [vm('zeta'), vm('alpha'), vm('mid')]);
    expect(JSON.stringify(result.lock)).toMatch(/^\{"version":1,"placements":\{"alpha":"h\d","mid":"h\d","zeta":"h\d"\}\}$/);
  });
});

/** Invariants over random small clusters. */
describe('place: properties', () => {
  const small = scenarioArb({ maxHosts: 5, maxVms: 8 });

  test('capacity is never exceeded and only active hosts receive VMs', () => {
    fc.assert(
      fc.property(small, ({ cluster: c, vms }) => {
        const result = place(c, vms);
        for (const h of c.hosts) {
          const on = vms.filter((v) => result.placements[v.name] === h.name);
          if (h.state !== HostState.ACTIVE) expect(on).toEqual([]);
          const cap = capacityOf(h, c);
          expect(on.reduce((s, v) => s + v.vcpus, 0)).toBeLessThanOrEqual(cap.vcpus);
          expect(on.reduce((s, v) => s + v.memoryMiB, 0)).toBeLessThanOrEqual(cap.memoryMiB);
        }
      }),
    );
  });

  test('hard anti-affinity, pinned and allowed hosts are never broken', () => {
    fc.assert(
      fc.property(small, ({ cluster: c, vms }) => {
        const result = place(c, vms);
        const hostOf = (name: string) => c.hosts.find((h) => h.name === result.placements[name])!;
        const placed = vms.filter((v) => result.placements[v.name] !== undefined);
        for (const v of placed) {
          if (v.pinnedHost !== undefined) expect(result.placements[v.name]).toBe(v.pinnedHost);
          if (v.allowedHosts !== undefined) expect(v.allowedHosts).toContain(result.placements[v.name]);
        }
        for (const [group, domainSpecs] of hardDomains(vms)) {
          const members = placed.filter((v) => v.group === group);
          for (const spec of domainSpecs) {
            const domains = members.map((m) => domainOf(hostOf(m.name), spec));
            expect(new Set(domains).size).toBe(domains.length);
          }
        }
      }),
    );
  });

  test('every VM is either placed or named in a problem', () => {
    fc.assert(
      fc.property(small, ({ cluster: c, vms }) => {
        const result = place(c, vms);
        for (const v of vms) {
          if (result.placements[v.name] === undefined) expect(result.problems.map((p) => p.subject)).toContain(v.name);
        }
      }),
    );
  });

  test('deterministic, and independent of the order of hosts and VMs', () => {
    fc.assert(
      fc.property(small, fc.integer(), ({ cluster: c, vms }, seed) => {
        const result = place(c, vms);
        expect(place(c, vms)).toEqual(result);
        const shuffled: ClusterSpec = { ...c, hosts: shuffle(c.hosts, seed) };
        expect(place(shuffled, shuffle(vms, seed + 1))).toEqual(result);
      }),
    );
  });

  test('placing again with its own lock changes nothing', () => {
    fc.assert(
      fc.property(small, ({ cluster: c, vms }) => {
        const result = place(c, vms);
        const again = place(c, vms, { lock: result.lock });
        expect(again.placements).toEqual(result.placements);
        expect(again.moves).toEqual([]);
      }),
    );
  });

  test('adding a host moves no VM', () => {
    fc.assert(
      fc.property(small, fc.integer({ min: 1, max: 16 }), fc.constantFrom('r0', 'r3'), ({ cluster: c, vms }, cores, r) => {
        const before = place(c, vms);
        const after = place({ ...c, hosts: [...c.hosts, host('hx', { cores, labels: { rack: r } })] }, vms, { lock: before.lock });
        for (const [v, h] of Object.entries(before.placements)) expect(after.placements[v]).toBe(h);
        expect(after.moves).toEqual([]);
      }),
    );
  });

  test('adding a VM moves no VM', () => {
    fc.assert(
      fc.property(small, ({ cluster: c, vms, extra, groups }) => {
        const before = place(c, vms);
        const after = place(c, [...vms, toVm('vx', extra, groups)], { lock: before.lock });
        for (const [v, h] of Object.entries(before.placements)) expect(after.placements[v]).toBe(h);
        expect(after.moves).toEqual([]);
      }),
    );
  });

  test('losing a host moves only the VMs that were on it', () => {
    const change = fc.constantFrom<HostState | 'removed'>(HostState.FAILED, HostState.MAINTENANCE, HostState.STANDBY, 'removed');
    fc.assert(
      fc.property(small, fc.nat(), change, ({ cluster: c, vms }, pick, how) => {
        const before = place(c, vms);
        const lost = c.hosts[pick % c.hosts.length].name;
        const hosts = how === 'removed' ? c.hosts.filter((h) => h.name !== lost) : c.hosts.map((h) => (h.name === lost ? { ...h, state: how } : h));
        const after = place({ ...c, hosts }, vms, { lock: before.lock });
        for (const [v, h] of Object.entries(before.placements)) {
          if (h !== lost) expect(after.placements[v]).toBe(h);
          else expect(after.placements[v]).not.toBe(lost);
        }
        for (const m of after.moves) {
          expect(m.from).toBe(lost);
          expect(m.reason).toMatch(new RegExp(`^host ${lost} `));
        }
        const moved = new Set(after.moves.map((m) => m.vm));
        for (const [v, h] of Object.entries(before.placements)) {
          if (h === lost) expect(moved.has(v) || after.problems.some((p) => p.subject === v)).toBe(true);
        }
      }),
    );
  });
});
