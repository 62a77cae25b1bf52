import fc from 'fast-check';
import {
  ClusterSpec,
  FailureDomainSpec,
  HOST_DOMAIN,
  HostSpec,
  HostState,
  RestartPriority,
  VmSpec,
  admissionControl,
  describeScenario,
  labelDomain,
  place,
  planRestart,
  planRestarts,
} from '../../lib/core';
import { capacityOf, cluster, domainOf, hardDomains, host, scenarioArb, shuffle, vm } from './arbitraries';

const hard = (domain: FailureDomainSpec = HOST_DOMAIN) => ({ antiAffinity: { hard: true, domain } });

describe('admissionControl', () => {
  test('N = 0 checks nothing and passes', () => {
    const c = cluster([host('h1')], { failuresToTolerate: 0 });
    expect(admissionControl(c, [vm('a')], { a: 'h1' })).toMatchObject({ ok: true, checked: 0, scenarios: [] });
  });

  test('checks every combination of up to N failed active hosts', () => {
    const hosts = ['h1', 'h2', 'h3', 'h4'].map((n) => host(n)).concat(host('h5', { state: HostState.STANDBY }));
    expect(admissionControl(cluster(hosts, { failuresToTolerate: 1 }), [], {}).checked).toBe(4);
    expect(admissionControl(cluster(hosts, { failuresToTolerate: 2 }), [], {}).checked).toBe(4 + 6);
    expect(admissionControl(cluster(hosts, { failuresToTolerate: 9 }), [], {}).checked).toBe(15);
  });

  test('passes when each host’s VMs fit on the others', () => {
    const c = cluster([host('h1', { cores: 4 }), host('h2', { cores: 4 })]);
    const result = admissionControl(c, [vm('a', { vcpus: 2 }), vm('b', { vcpus: 2 })], { a: 'h1', b: 'h2' });
    expect(result).toMatchObject({ ok: true, checked: 2, scenarios: [] });
  });

  test('reports each failing scenario with the VMs that stay down and the shortfall', () => {
    // The survivor has 1 vCPU and 15360 MiB free: 2 vCPUs are missing for a 3-vCPU VM, and no memory.
    const c = cluster([host('h1', { cores: 4 }), host('h2', { cores: 4 })]);
    const result = admissionControl(c, [vm('a', { vcpus: 3, memoryMiB: 2048 }), vm('b', { vcpus: 3 })], { a: 'h1', b: 'h2' });
    expect(result.ok).toBe(false);
    expect(result.scenarios).toEqual([
      expect.objectContaining({ failedHosts: ['h1'], unplaced: ['a'], shortfall: { vcpus: 2, memoryMiB: 0 }, short: { vcpus: 2 }, searchBudgetExceeded: false }),
      expect.objectContaining({ failedHosts: ['h2'], unplaced: ['b'], shortfall: { vcpus: 2, memoryMiB: 0 }, short: { vcpus: 2 } }),
    ]);
  });

  describe('the shortfall is the real deficit, and only capacity counts as capacity', () => {
    const fix = 'Fix: add hosts or capacity, lower failuresToTolerate, or give some VMs RestartPriority.NONE';

    test('a VM short of memory only is not reported short of vCPUs', () => {
      // h2 has 7 vCPUs free but 8192 MiB for a's 12288
      const c = cluster([host('h1'), host('h2')]);
      const vms = [vm('a', { memoryMiB: 12288 }), vm('b', { memoryMiB: 8192 })];
      const s = admissionControl(c, vms, { a: 'h1', b: 'h2' }).scenarios.find((x) => x.failedHosts[0] === 'h1')!;
      expect(s).toMatchObject({ unplaced: ['a'], shortfall: { vcpus: 0, memoryMiB: 4096 }, short: { memoryMiB: 4096 }, shortOn: { h2: { memoryMiB: 4096 } } });
      expect(s.short).not.toHaveProperty('vcpus');
      expect(s.antiAffinity).toEqual([]);
      expect(describeScenario(s)).toBe(`admission control: if host h1 fails, VM a cannot restart: the surviving hosts are short of 4096 MiB (on h2). ${fix}`);
    });

    test('VMs that restart take their room first; the shortfall is what the rest still needs', () => {
      // a (4) restarts on s1; b (4) then finds 2 vCPUs free on s2: 2 more are needed, as 8 needed − 6 free says.
      const c = cluster([host('f', { cores: 8 }), host('s1', { cores: 4 }), host('s2', { cores: 4 })]);
      const vms = [vm('a', { vcpus: 4, priority: RestartPriority.HIGH }), vm('b', { vcpus: 4 }), vm('c', { vcpus: 2 })];
      const s = admissionControl(c, vms, { a: 'f', b: 'f', c: 's2' }).scenarios.find((x) => x.failedHosts[0] === 'f')!;
      expect(s).toMatchObject({ unplaced: ['b'], shortfall: { vcpus: 2, memoryMiB: 0 }, short: { vcpus: 2 }, shortOn: { s2: { vcpus: 2 } } });
    });

    test('room split over several hosts is missing room: the deficit is counted host by host', () => {
      // 10 vCPUs free in total for a 6-vCPU VM, but 5 on each host: one of them needs 1 more.
      const c = cluster([host('f', { cores: 6 }), host('s1', { cores: 5 }), host('s2', { cores: 5 })]);
      const s = admissionControl(c, [vm('big', { vcpus: 6 })], { big: 'f' }).scenarios.find((x) => x.failedHosts[0] === 'f')!;
      expect(s).toMatchObject({ shortfall: { vcpus: 1, memoryMiB: 0 }, short: { vcpus: 1 }, shortOn: { s1: { vcpus: 1 } } });
      expect(describeScenario(s)).toBe(`admission control: if host f fails, VM big cannot restart: the surviving hosts are short of 1 vCPU (on s1). ${fix}`);
    });

    test('hard anti-affinity with too few racks left names the rule and the label, and claims no missing capacity', () => {
      const c = cluster(['r1', 'r2', 'r3'].map((r, i) => host(`h${i + 1}`, { labels: { rack: r } })));
      const mail = [0, 1, 2].map((i) => vm(`mail-${i}`, { group: 'mail', ...hard(labelDomain('rack')) }));
      const s = admissionControl(c, mail, { 'mail-0': 'h1', 'mail-1': 'h2', 'mail-2': 'h3' }).scenarios[0];
      expect(s).toMatchObject({
        failedHosts: ['h1'],
        unplaced: ['mail-0'],
        shortfall: { vcpus: 0, memoryMiB: 0 },
        short: {},
        shortOn: {},
        antiAffinity: [{ group: 'mail', domain: labelDomain('rack'), domainsLeft: 2, replicas: 3, vms: ['mail-0'] }],
        reason: "mail-0 cannot restart: hard anti-affinity of group mail across 'rack' has 2 values left for 3 replicas",
      });
      expect(describeScenario(s)).toBe(
        "admission control: if host h1 fails, VM mail-0 cannot restart: hard anti-affinity of group mail across 'rack' has 2 values left for 3 replicas. " +
          'Fix: add a host in another rack, lower the replica count of group mail, or make its anti-affinity soft',
      );
    });

    test('hard anti-affinity by host counts hosts', () => {
      const c = cluster([host('h1'), host('h2')]);
      const vms = [vm('a', { group: 'g', ...hard() }), vm('b', { group: 'g', ...hard() })];
      const s = admissionControl(c, vms, { a: 'h1', b: 'h2' }).scenarios[0];
      expect(s).toMatchObject({ short: {}, antiAffinity: [{ group: 'g', domain: HOST_DOMAIN, domainsLeft: 1, replicas: 2, vms: ['a'] }] });
      expect(describeScenario(s)).toBe(
        'admission control: if host h1 fails, VM a cannot restart: hard anti-affinity of group g across hosts has 1 host left for 2 replicas. ' +
          'Fix: add a host, lower the replica count of group g, or make its anti-affinity soft',
      );
    });

    test('a pinned VM is neither short of room nor of failure domains', () => {
      const c = cluster([host('h1'), host('h2')], { failuresToTolerate: 2 });
      const vms = [vm('p', { pinnedHost: 'h1' }), vm('q', { vcpus: 8 }), vm('r', { vcpus: 8 })];
      const s = admissionControl(c, vms, { p: 'h1', q: 'h1', r: 'h2' }).scenarios.find((x) => x.failedHosts.join() === 'h1')!;
      expect(s).toMatchObject({ unplaced: ['q', 'p'], short: { vcpus: 8 }, shortOn: { h2: { vcpus: 8 } }, pinnedOrAllowed: { p: 'pinned to h1, which is down' } });
      expect(describeScenario(s)).toBe(
        'admission control: if host h1 fails, VMs q, p cannot restart: the surviving hosts are short of 8 vCPUs (on h2) for q; ' +
          'p: pinned to h1, which is down. Fix: add hosts or capacity, lower failuresToTolerate, or give some VMs RestartPriority.NONE; ' +
          'let p run on more hosts (pinnedHost, allowedHosts) or give it RestartPriority.NONE',
      );
      const both = admissionControl(c, vms, { p: 'h1', q: 'h1', r: 'h2' }).scenarios.find((x) => x.failedHosts.length === 2)!;
      expect(describeScenario(both)).toMatch(/^admission control: if hosts h1 and h2 fail, VMs /);
    });
  });

  describe('soft anti-affinity in a restart plan', () => {
    const soft = (domain: FailureDomainSpec) => ({ group: 'mail', antiAffinity: { hard: false, domain } });
    const byRack = labelDomain('rack');

    test('kept when some plan keeps it, even where first-fit would break it', () => {
      // After h1 fails, h2 (rack r2, already holding mail-1) is the emptiest survivor; h3 in r3 still has room.
      const c = cluster([host('h1', { labels: { rack: 'r1' } }), host('h2', { cores: 16, labels: { rack: 'r2' } }), host('h3', { cores: 4, labels: { rack: 'r3' } })]);
      const vms = [vm('mail-0', soft(byRack)), vm('mail-1', soft(byRack))];
      const placements = { 'mail-0': 'h1', 'mail-1': 'h2' };
      expect(planRestart(c, vms, placements, ['h1'])).toMatchObject({ feasible: true, restarts: { 'mail-0': 'h3' }, warnings: [] });
      expect(admissionControl(c, vms, placements)).toMatchObject({ ok: true, warnings: [] });
    });

    test('relaxed with a warning naming the failed hosts, the group, the domain and the VMs when no plan keeps it', () => {
      // Only r1 and r2: whichever host fails, its replica has to join the other in the surviving rack.
      const c = cluster([host('h1', { labels: { rack: 'r1' } }), host('h2', { labels: { rack: 'r2' } }), host('h3', { labels: { rack: 'r2' } })]);
      const vms = [vm('mail-0', soft(byRack)), vm('mail-1', soft(byRack))];
      const result = admissionControl(c, vms, { 'mail-0': 'h1', 'mail-1': 'h2' });
      expect(result.ok).toBe(true);
      expect(result.warnings).toEqual([
        {
          subject: 'mail',
          rule: 'anti-affinity-soft-relaxed-on-failure',
          message: 'if host h1 fails, soft anti-affinity by rack of group mail relaxed: mail-0, mail-1 share rack r2 (no restart plan keeps it)',
          hint: 'add hosts in another rack: 2 replicas and 1 rack to run them; or lower the replica count',
        },
      ]);
      // h2 failing sends mail-1 to h3, still in r2 but apart from mail-0: nothing to warn about
      expect(planRestart(c, vms, { 'mail-0': 'h1', 'mail-1': 'h2' }, ['h2'])).toMatchObject({ restarts: { 'mail-1': 'h3' }, warnings: [] });
    });

    test('by host, with two failures', () => {
      const c = cluster([host('h1'), host('h2'), host('h3')], { failuresToTolerate: 2 });
      const vms = [vm('mail-0', soft(HOST_DOMAIN)), vm('mail-1', soft(HOST_DOMAIN))];
      const result = admissionControl(c, vms, { 'mail-0': 'h1', 'mail-1': 'h2' });
      expect(result.ok).toBe(true);
      // one survivor left: both replicas end up on it; a single failure leaves a free host, so no warning
      expect(result.warnings.map((w) => w.message)).toEqual([
        'if hosts h1 and h2 fail, soft anti-affinity by host of group mail relaxed: mail-0, mail-1 share host h3 (no restart plan keeps it)',
        'if hosts h1 and h3 fail, soft anti-affinity by host of group mail relaxed: mail-0, mail-1 share host h2 (no restart plan keeps it)',
        'if hosts h2 and h3 fail, soft anti-affinity by host of group mail relaxed: mail-0, mail-1 share host h1 (no restart plan keeps it)',
      ]);
    });

    test('replicas that already shared a domain before the failure are the placement’s warning, not this one', () => {
      // mail-0 and mail-1 share r1 already. When h3 fails, mail-2 has no rack of its own left and joins mail-3 on the emptiest host.
      const c = cluster([
        ...['h1', 'h2'].map((n) => host(n, { labels: { rack: 'r1' } })),
        host('h3', { labels: { rack: 'r2' } }),
        host('h4', { labels: { rack: 'r3' } }),
        host('h5', { cores: 16, labels: { rack: 'r3' } }),
      ]);
      const vms = [0, 1, 2, 3].map((i) => vm(`mail-${i}`, soft(byRack)));
      const result = admissionControl(c, vms, { 'mail-0': 'h1', 'mail-1': 'h2', 'mail-2': 'h3', 'mail-3': 'h4' });
      expect(result.warnings.filter((w) => w.message.startsWith('if host h3 fails')).map((w) => w.message)).toEqual([
        'if host h3 fails, soft anti-affinity by rack of group mail relaxed: mail-2, mail-3 share rack r3 (no restart plan keeps it)',
      ]);
    });
  });

  test('VMs with priority none are not restarted, so they need no room', () => {
    const c = cluster([host('h1', { cores: 4 }), host('h2', { cores: 4 })]);
    const vms = [vm('a', { vcpus: 3, priority: RestartPriority.NONE }), vm('b', { vcpus: 3, priority: RestartPriority.NONE })];
    expect(admissionControl(c, vms, { a: 'h1', b: 'h2' }).ok).toBe(true);
  });

  test('off-window replicas need room too, so every window survives', () => {
    const c = cluster([host('h1', { cores: 4 }), host('h2', { cores: 4 })]);
    const vms = [vm('a', { vcpus: 3, active: false }), vm('b', { vcpus: 3 })];
    expect(admissionControl(c, vms, { a: 'h1', b: 'h2' }).ok).toBe(false);
  });

  test('hard anti-affinity: N+1 hosts are needed to restart a replica', () => {
    const mail = (i: number) => vm(`mail-${i}`, { group: 'mail', ...hard() });
    const three = cluster([host('h1'), host('h2'), host('h3')]);
    const vms = [mail(0), mail(1), mail(2)];
    const placements = place(three, vms).placements;
    const failing = admissionControl(three, vms, placements);
    expect(failing.scenarios).toHaveLength(3);
    expect(failing.scenarios[0].reason).toMatch(/hard anti-affinity of group mail/);

    const four = cluster([...three.hosts, host('h4')]);
    expect(admissionControl(four, vms, placements).ok).toBe(true);
  });

  test('hard anti-affinity by rack with two failures', () => {
    const c = cluster(
      ['r1', 'r1', 'r2', 'r2', 'r3'].map((r, i) => host(`h${i}`, { labels: { rack: r } })),
      { failuresToTolerate: 2 },
    );
    const vms = [vm('a', { group: 'g', ...hard(labelDomain('rack')) }), vm('b', { group: 'g', ...hard(labelDomain('rack')) })];
    // a in r1, b in r2: losing h0 sends a to h1 or h4; losing h0 and h2 still leaves three racks
    const result = admissionControl(c, vms, { a: 'h0', b: 'h2' });
    expect(result).toMatchObject({ ok: true, checked: 5 + 10 });
  });

  test('hard anti-affinity across a host label called host keeps replicas in different values of the label', () => {
    // x on h1 (host=a), y on h3 (host=b). If h3 fails, y may not join x in value a, although h2 is another host.
    const c = cluster([host('h1', { labels: { host: 'a' } }), host('h2', { labels: { host: 'a' } }), host('h3', { labels: { host: 'b' } })]);
    const vms = [vm('x', { group: 'g', ...hard(labelDomain('host')) }), vm('y', { group: 'g', ...hard(labelDomain('host')) })];
    const placements = { x: 'h1', y: 'h3' };
    expect(planRestart(c, vms, placements, ['h3'])).toMatchObject({ feasible: false, unplaced: ['y'] });
    expect(planRestart(c, vms, placements, ['h1'])).toMatchObject({ feasible: true, restarts: { x: 'h2' } });
    const byHost = [vm('x', { group: 'g', ...hard() }), vm('y', { group: 'g', ...hard() })];
    expect(planRestart(c, byHost, placements, ['h3'])).toMatchObject({ feasible: true, restarts: { y: 'h2' } });
  });

  test('a pinned VM on a failed host cannot restart', () => {
    const c = cluster([host('h1'), host('h2')]);
    const result = admissionControl(c, [vm('a', { pinnedHost: 'h1' })], { a: 'h1' });
    expect(result.scenarios).toEqual([expect.objectContaining({ failedHosts: ['h1'], unplaced: ['a'], reason: 'a cannot restart: pinned to h1, which is down' })]);
  });

  test('allowed hosts bound where a VM restarts', () => {
    const c = cluster([host('h1'), host('h2'), host('h3')]);
    const plan = planRestart(c, [vm('a', { allowedHosts: ['h1', 'h3'] })], { a: 'h1' }, ['h1']);
    expect(plan).toMatchObject({ feasible: true, restarts: { a: 'h3' } });
    const none = planRestart(c, [vm('a', { allowedHosts: ['h1'] })], { a: 'h1' }, ['h1']);
    expect(none).toMatchObject({ feasible: false, unplaced: ['a'], causes: { a: 'none of its allowed hosts survives' } });
  });

  test('does not depend on the order of hosts and VMs', () => {
    fc.assert(
      fc.property(scenarioArb({ maxHosts: 5, maxVms: 8 }), fc.integer(), ({ cluster: c, vms }, seed) => {
        const placements = place(c, vms).placements;
        const result = admissionControl(c, vms, placements);
        expect(admissionControl({ ...c, hosts: shuffle(c.hosts, seed) }, shuffle(vms, seed + 1), placements)).toEqual(result);
      }),
    );
  });

  test('planRestarts answers several scenarios like planRestart does one by one', () => {
    const c = cluster([host('h1', { cores: 4 }), host('h2', { cores: 4 }), host('h3', { cores: 3 })]);
    const vms = [vm('a', { vcpus: 3 }), vm('b', { vcpus: 2 }), vm('c', { vcpus: 1, priority: RestartPriority.NONE })];
    const placements = { a: 'h1', b: 'h2', c: 'h3' };
    const scenarios = [['h1'], ['h2'], ['h3'], ['h1', 'h2'], ['nope']];
    expect(planRestarts(c, vms, placements, scenarios)).toEqual(scenarios.map((s) => planRestart(c, vms, placements, s)));
    expect(planRestart(c, vms, placements, ['h2'])).toMatchObject({ feasible: true, restarts: { b: 'h3' }, failedHosts: ['h2'] });
    expect(planRestart(c, vms, placements, ['h3'])).toMatchObject({ feasible: true, restarts: {}, notRestarted: ['c'] });
    expect(planRestart(c, vms, placements, ['nope'])).toMatchObject({ feasible: true, failedHosts: [], reason: 'nothing to restart' });
  });

  describe('when first-fit is not enough', () => {
    // Two survivors with 10 free vCPUs; first-fit decreasing puts 5+4 together and strands the 2,
    // but 5+3+2 and 4+3+3 fit exactly.
    const c = cluster([host('f', { cores: 20 }), host('s1', { cores: 10 }), host('s2', { cores: 10 })]);
    const sizes = [5, 4, 3, 3, 3, 2];
    const vms = sizes.map((n, i) => vm(`v${i}`, { vcpus: n, priority: RestartPriority.HIGH }));
    const placements = Object.fromEntries(vms.map((v) => [v.name, 'f']));

    test('the exact search finds the assignment', () => {
      const plan = planRestart(c, vms, placements, ['f']);
      expect(plan.feasible).toBe(true);
      expect(plan.unplaced).toEqual([]);
      for (const h of ['s1', 's2']) {
        const load = vms.filter((v) => plan.restarts[v.name] === h).reduce((s, v) => s + v.vcpus, 0);
        expect(load).toBe(10);
      }
      const result = admissionControl(c, vms, placements);
      expect(result.stats.exact).toBeGreaterThanOrEqual(1);
      expect(result.scenarios.map((s) => s.failedHosts)).not.toContainEqual(['f']);
    });

    test('an infeasible variant is proven infeasible, not guessed', () => {
      const more = [...vms.slice(0, 5), vm('v5', { vcpus: 3, priority: RestartPriority.HIGH })];
      const result = admissionControl(c, more, placements);
      const scenario = result.scenarios.find((s) => s.failedHosts[0] === 'f')!;
      expect(scenario).toMatchObject({ searchBudgetExceeded: false });
      expect(scenario.reason).toMatch(/exhaustive search/);
    });

    test('hosts that differ only in which VMs may use them are not interchangeable', () => {
      // v may use h1 or h2, w1 and w2 only h1 or h3. h1 and h2 look alike (same room, same rack);
      // v on h1 strands one w, so the search must still try h2.
      const hosts = [host('h0', { cores: 8 }), ...['h1', 'h2', 'h3'].map((n) => host(n, { cores: 2, labels: { rack: 'r' } }))];
      const c4 = cluster(hosts);
      const list = [
        vm('v', { vcpus: 2, priority: RestartPriority.HIGH, allowedHosts: ['h1', 'h2'] }),
        vm('w1', { vcpus: 2, allowedHosts: ['h1', 'h3'] }),
        vm('w2', { vcpus: 2, allowedHosts: ['h1', 'h3'] }),
      ];
      const on = { v: 'h0', w1: 'h0', w2: 'h0' };
      expect(planRestart(c4, list, on, ['h0'])).toMatchObject({ feasible: true, restarts: { v: 'h2' } });
    });

    test.each([HOST_DOMAIN, labelDomain('rack')])('hosts that differ only in the replicas restarted on them are not interchangeable (by %j)', (domain) => {
      // Once v1, v3 and v0 are planned, h0 and h1 both have 2 vCPUs free, but only one of them can
      // still take b's second replica. Found by the brute-force cross-check.
      const c3 = cluster([host('h0', { cores: 5, labels: { rack: 'r0' } }), host('h1', { cores: 5, labels: { rack: 'r1' } }), host('h2', { cores: 9 })]);
      const b = { group: 'b', antiAffinity: { hard: true, domain } };
      const list = [
        vm('v0', { vcpus: 1, priority: RestartPriority.HIGH }),
        vm('v1', { vcpus: 3, priority: RestartPriority.HIGH }),
        vm('v2', { vcpus: 2, priority: RestartPriority.LOW, ...b }),
        vm('v3', { vcpus: 3, priority: RestartPriority.HIGH, ...b }),
      ];
      const on = Object.fromEntries(list.map((v) => [v.name, 'h2']));
      const plan = planRestart(c3, list, on, ['h2'], { greedy: false });
      expect(plan.feasible).toBe(true);
      expect(plan.restarts.v2).not.toBe(plan.restarts.v3);
    });

    test('a search out of budget counts as failing and says so', () => {
      const result = admissionControl(c, vms, placements, { stepBudget: 1 });
      const scenario = result.scenarios.find((s) => s.failedHosts[0] === 'f')!;
      expect(scenario.searchBudgetExceeded).toBe(true);
      expect(scenario.reason).toMatch(/gave up after \d+ steps; treated as failing/);
      expect(result.stats.budgetExceeded).toBeGreaterThanOrEqual(1);
      expect(result.ok).toBe(false);
    });
  });

  describe('standby hosts', () => {
    // h1 runs two VMs that need a whole host; h2 is the only other host, in standby.
    const vms = [vm('a', { vcpus: 4 }), vm('b', { vcpus: 4 })];
    const placements = { a: 'h1', b: 'h1' };
    const spare = (wakeSeconds: number | undefined, recoverySeconds: number | undefined = 120) =>
      cluster([host('h1', { cores: 8 }), host('h2', { cores: 8, state: HostState.STANDBY, wakeSeconds })], { recoverySeconds });

    test('a standby host that wakes within the recovery time is where VMs restart, and may fail itself', () => {
      const result = admissionControl(spare(60), vms, placements);
      expect(result).toMatchObject({ ok: true, checked: 2, scenarios: [] });
      expect(planRestart(spare(60), vms, placements, ['h1'])).toMatchObject({ feasible: true, restarts: { a: 'h2', b: 'h2' } });
      expect(admissionControl(spare(120), vms, placements).ok).toBe(true); // within: equal counts
    });

    test.each([
      ['it wakes after the recovery time', spare(121)],
      ['its wake time is unknown', spare(undefined)],
      ['the cluster has no recovery time', { ...spare(60), recoverySeconds: undefined }],
    ])('is left out when %s: as before, nothing survives h1', (_, c) => {
      const result = admissionControl(c, vms, placements);
      expect(result.checked).toBe(1);
      expect(result.scenarios).toEqual([expect.objectContaining({ failedHosts: ['h1'], unplaced: ['a', 'b'] })]);
    });

    test('hard anti-affinity may use a woken standby host as a domain of its own', () => {
      const web = ['w1', 'w2'].map((n) => vm(n, { group: 'web', ...hard() }));
      const c = cluster([host('h1'), host('h2'), host('h3', { state: HostState.STANDBY, wakeSeconds: 30 })], { recoverySeconds: 120 });
      expect(admissionControl(c, web, { w1: 'h1', w2: 'h2' }).ok).toBe(true);
      const without = cluster([host('h1'), host('h2'), host('h3', { state: HostState.STANDBY })], { recoverySeconds: 120 });
      expect(admissionControl(without, web, { w1: 'h1', w2: 'h2' }).scenarios.map((s) => s.failedHosts)).toEqual([['h1'], ['h2']]);
    });

    test('with two failures to tolerate, the spare failing to wake is one of them', () => {
      const c = cluster([host('h1', { cores: 4 }), host('h2', { cores: 4 }), host('s', { cores: 4, state: HostState.STANDBY, wakeSeconds: 60 })], {
        failuresToTolerate: 2,
        recoverySeconds: 120,
      });
      const result = admissionControl(c, [vm('a', { vcpus: 3 }), vm('b', { vcpus: 3 })], { a: 'h1', b: 'h2' });
      expect(result.checked).toBe(3 + 3);
      expect(failingOf(result.scenarios)).toEqual([['h1', 'h2'], ['h1', 's'], ['h2', 's']]);
    });
  });
});

/**
 * Brute force: every assignment of the restartable VMs of the failed hosts to the survivors, checking
 * capacity on top of what already runs there and hard rules against every group member still up.
 */
function bruteForceFailingScenarios(c: ClusterSpec, vms: readonly VmSpec[], placements: Record<string, string>): string[][] {
  // Standby hosts that wake within the recovery time are capacity, and may fail, like active ones.
  const woken = (h: HostSpec) => h.state === HostState.STANDBY && h.wakeSeconds !== undefined && c.recoverySeconds !== undefined && h.wakeSeconds <= c.recoverySeconds;
  const active = c.hosts.filter((h) => h.state === HostState.ACTIVE || woken(h)).sort((a, b) => (a.name < b.name ? -1 : 1));
  const byName = new Map(c.hosts.map((h) => [h.name, h]));
  const hard = hardDomains(vms);
  const placed = vms.filter((v) => placements[v.name] !== undefined);
  const failing: string[][] = [];
  const subsets: (typeof active)[] = [];
  const pick = (start: number, chosen: typeof active) => {
    if (chosen.length > 0) subsets.push(chosen);
    if (chosen.length === c.failuresToTolerate) return;
    for (let i = start; i < active.length; i++) pick(i + 1, [...chosen, active[i]]);
  };
  pick(0, []);
  for (const failed of subsets) {
    const failedNames = new Set(failed.map((h) => h.name));
    const survivors = active.filter((h) => !failedNames.has(h.name));
    const down = placed.filter((v) => failedNames.has(placements[v.name]));
    const restart = down.filter((v) => v.priority !== RestartPriority.NONE);
    const up = placed.filter((v) => !failedNames.has(placements[v.name]));
    const valid = (assignment: string[]): boolean => {
      const load = new Map<string, { cpu: number; mem: number }>();
      for (const v of up) {
        const l = load.get(placements[v.name]) ?? { cpu: 0, mem: 0 };
        load.set(placements[v.name], { cpu: l.cpu + v.vcpus, mem: l.mem + v.memoryMiB });
      }
      const target = new Map<string, string>();
      restart.forEach((v, i) => {
        target.set(v.name, assignment[i]);
        const l = load.get(assignment[i]) ?? { cpu: 0, mem: 0 };
        load.set(assignment[i], { cpu: l.cpu + v.vcpus, mem: l.mem + v.memoryMiB });
      });
      for (const h of new Set(assignment)) {
        const cap = capacityOf(byName.get(h)!, c);
        if (load.get(h)!.cpu > cap.vcpus || load.get(h)!.mem > cap.memoryMiB) return false;
      }
      for (const v of restart) {
        const h = target.get(v.name)!;
        if (v.pinnedHost !== undefined && v.pinnedHost !== h) return false;
        if (v.allowedHosts !== undefined && !v.allowedHosts.includes(h)) return false;
        for (const domain of (v.group !== undefined && hard.get(v.group)) || []) {
          const mine = domainOf(byName.get(h)!, domain);
          for (const other of [...up, ...restart]) {
            if (other === v || other.group !== v.group) continue;
            const where = target.get(other.name) ?? placements[other.name];
            if (domainOf(byName.get(where)!, domain) === mine) return false;
          }
        }
      }
      return true;
    };
    let ok = false;
    const assign = (i: number, acc: string[]) => {
      if (ok) return;
      if (i === restart.length) {
        ok = valid(acc);
        return;
      }
      for (const h of survivors) assign(i + 1, [...acc, h.name]);
    };
    assign(0, []);
    if (!ok) failing.push(failed.map((h) => h.name));
  }
  return failing.sort(byHosts);
}

function byHosts(a: string[], b: string[]): number {
  return a.length - b.length || (a.join() < b.join() ? -1 : a.join() > b.join() ? 1 : 0);
}

const failingOf = (scenarios: { failedHosts: string[] }[]): string[][] => scenarios.map((s) => s.failedHosts).sort(byHosts);

describe('admissionControl agrees with a brute-force search (≤ 4 hosts, ≤ 7 VMs)', () => {
  const small = scenarioArb({ maxHosts: 4, maxVms: 7, maxFailures: 2 });
  const options = { stepBudget: 10_000_000 };

  test('on placements made by place()', () => {
    fc.assert(
      fc.property(small, ({ cluster: c, vms }) => {
        const placements = { ...place(c, vms).placements };
        const result = admissionControl(c, vms, placements, options);
        expect(failingOf(result.scenarios)).toEqual(bruteForceFailingScenarios(c, vms, placements));
        expect(result.ok).toBe(result.scenarios.length === 0);
        expect(result.stats.budgetExceeded).toBe(0);
      }),
      { numRuns: 150 },
    );
  });

  test('on arbitrary placements, including overloaded and non-active hosts', () => {
    const withPlacements = small.chain((s) =>
      fc.record({
        s: fc.constant(s),
        hostIndex: fc.array(fc.integer({ min: 0, max: s.cluster.hosts.length - 1 }), { minLength: s.vms.length, maxLength: s.vms.length }),
      }),
    );
    fc.assert(
      fc.property(withPlacements, ({ s: { cluster: c, vms }, hostIndex }) => {
        const placements = Object.fromEntries(vms.map((v, i) => [v.name, c.hosts[hostIndex[i]].name]));
        const result = admissionControl(c, vms, placements, options);
        expect(failingOf(result.scenarios)).toEqual(bruteForceFailingScenarios(c, vms, placements));
      }),
      { numRuns: 150 },
    );
  });

  test('with standby hosts that wake within the recovery time or not', () => {
    const withSpares = small.chain((s) =>
      fc.record({
        s: fc.constant(s),
        wake: fc.array(fc.constantFrom<number | undefined>(undefined, 30, 120, 300), { minLength: s.cluster.hosts.length, maxLength: s.cluster.hosts.length }),
        recoverySeconds: fc.constantFrom<number | undefined>(undefined, 120, 120),
        spare: fc.array(fc.boolean(), { minLength: s.cluster.hosts.length, maxLength: s.cluster.hosts.length }),
      }),
    );
    fc.assert(
      fc.property(withSpares, ({ s: { cluster: c0, vms }, wake, recoverySeconds, spare }) => {
        const hosts = c0.hosts.map((h, i) => ({ ...h, state: spare[i] ? HostState.STANDBY : h.state, wakeSeconds: wake[i] }));
        const c = { ...c0, hosts, recoverySeconds };
        const placements = { ...place(c, vms).placements };
        const result = admissionControl(c, vms, placements, options);
        expect(failingOf(result.scenarios)).toEqual(bruteForceFailingScenarios(c, vms, placements));
      }),
      { numRuns: 150 },
    );
  });

  test('the exact search alone agrees too', () => {
    fc.assert(
      fc.property(small, ({ cluster: c, vms }) => {
        const placements = { ...place(c, vms).placements };
        const result = admissionControl(c, vms, placements, { ...options, greedy: false });
        expect(failingOf(result.scenarios)).toEqual(bruteForceFailingScenarios(c, vms, placements));
        expect(result.stats.greedy).toBe(0);
      }),
      { numRuns: 150 },
    );
  });

  test('the exact search agrees on tight clusters with hard rules, where symmetry pruning matters', () => {
    // Small hosts, hard anti-affinity everywhere, arbitrary (even overloaded) placements: many
    // hosts look alike at some point of the search, and only some of them are.
    const tight = fc
      .record({
        hosts: fc.array(fc.record({ cores: fc.integer({ min: 1, max: 6 }), rack: fc.constantFrom('r0', 'r1') }), { minLength: 3, maxLength: 4 }),
        failuresToTolerate: fc.constantFrom(1, 1, 2),
        bDomain: fc.constantFrom(HOST_DOMAIN, labelDomain('rack'), labelDomain('host')),
        list: fc.array(
          fc.record({
            vcpus: fc.integer({ min: 1, max: 3 }),
            group: fc.constantFrom<string | undefined>(undefined, 'a', 'b'),
            priority: fc.constantFrom(...Object.values(RestartPriority)),
            host: fc.nat(),
          }),
          { minLength: 3, maxLength: 7 },
        ),
      })
      .map(({ hosts, failuresToTolerate, bDomain, list }) => {
        const c = cluster(
          hosts.map((h, i) => host(`h${i}`, { cores: h.cores, memoryMiB: 4096, labels: { rack: h.rack } })),
          { failuresToTolerate },
        );
        const domain: Record<string, FailureDomainSpec> = { a: HOST_DOMAIN, b: bDomain };
        const vms = list.map((f, i) =>
          vm(`v${i}`, { vcpus: f.vcpus, priority: f.priority, group: f.group, antiAffinity: f.group === undefined ? undefined : { hard: true, domain: domain[f.group] } }),
        );
        const placements = Object.fromEntries(list.map((f, i) => [`v${i}`, `h${f.host % hosts.length}`]));
        return { c, vms, placements };
      });
    fc.assert(
      fc.property(tight, ({ c, vms, placements }) => {
        const result = admissionControl(c, vms, placements, { ...options, greedy: false });
        expect(failingOf(result.scenarios)).toEqual(bruteForceFailingScenarios(c, vms, placements));
      }),
      { numRuns: 400 },
    );
  });

  test('the shortfall names only what is short, and adding it where it says lets every VM that lacked room restart', () => {
    const withPlacements = small.chain((s) =>
      fc.record({
        s: fc.constant(s),
        hostIndex: fc.array(fc.integer({ min: 0, max: s.cluster.hosts.length - 1 }), { minLength: s.vms.length, maxLength: s.vms.length }),
      }),
    );
    const sum = (amounts: { vcpus?: number; memoryMiB?: number }[]) => ({
      vcpus: amounts.reduce((t, a) => t + (a.vcpus ?? 0), 0),
      memoryMiB: amounts.reduce((t, a) => t + (a.memoryMiB ?? 0), 0),
    });
    fc.assert(
      fc.property(fc.boolean(), withPlacements, (byPlace, { s: { cluster: c, vms }, hostIndex }) => {
        const placements = byPlace ? { ...place(c, vms).placements } : Object.fromEntries(vms.map((v, i) => [v.name, c.hosts[hostIndex[i]].name]));
        for (const s of admissionControl(c, vms, placements, options).scenarios) {
          expect(s.shortfall).toEqual({ vcpus: s.short.vcpus ?? 0, memoryMiB: s.short.memoryMiB ?? 0 });
          for (const n of Object.values(s.short)) expect(n).toBeGreaterThan(0);
          expect(sum(Object.values(s.shortOn))).toEqual(s.shortfall);
          const byRule = [...Object.keys(s.pinnedOrAllowed), ...s.antiAffinity.flatMap((b) => b.vms)];
          expect(new Set(byRule).size).toBe(byRule.length);
          for (const vm of byRule) expect(s.unplaced).toContain(vm);
          if (byRule.length === s.unplaced.length) expect(s.short).toEqual({});
          else expect(Object.keys(s.short).length).toBeGreaterThan(0);

          // Enough: with the VMs a rule keeps down left down, hosts grown by what shortOn names survive the same failure.
          const grown = c.hosts.map((h) => {
            const add = s.shortOn[h.name];
            if (!add) return h;
            return {
              ...h,
              cores: h.cores + Math.ceil((add.vcpus ?? 0) / c.cpuOvercommit),
              memoryMiB: h.memoryMiB + Math.ceil((add.memoryMiB ?? 0) / c.memoryOvercommit),
            };
          });
          const others = vms.map((v) => (byRule.includes(v.name) ? { ...v, priority: RestartPriority.NONE } : v));
          expect(planRestart({ ...c, hosts: grown }, others, placements, s.failedHosts, options).feasible).toBe(true);
          if (byRule.length > 0) continue;

          // Never below the plain total: what the restartable VMs need minus the room the survivors have.
          const failed = new Set(s.failedHosts);
          const need = sum(vms.filter((v) => failed.has(placements[v.name]) && v.priority !== RestartPriority.NONE));
          const room = sum(
            c.hosts
              .filter((h) => h.state === HostState.ACTIVE && !failed.has(h.name))
              .map((h) => {
                const load = sum(vms.filter((v) => placements[v.name] === h.name));
                const cap = capacityOf(h, c);
                return { vcpus: Math.max(0, cap.vcpus - load.vcpus), memoryMiB: Math.max(0, cap.memoryMiB - load.memoryMiB) };
              }),
          );
          expect(s.shortfall.vcpus).toBeGreaterThanOrEqual(need.vcpus - room.vcpus);
          expect(s.shortfall.memoryMiB).toBeGreaterThanOrEqual(need.memoryMiB - room.memoryMiB);
        }
      }),
      { numRuns: 300 },
    );
  });

  test('soft anti-affinity is relaxed in exactly the surviving scenarios where brute force finds no plan that keeps it', () => {
    // Few racks, small VMs and mostly soft rules, so that relaxing is often the only way (random clusters seldom get there).
    const softly = fc
      .record({
        hosts: fc.array(fc.record({ cores: fc.integer({ min: 2, max: 6 }), rack: fc.constantFrom('r0', 'r1'), label: fc.constantFrom('x', 'y') }), { minLength: 2, maxLength: 4 }),
        failuresToTolerate: fc.constantFrom(1, 2),
        a: fc.constantFrom(HOST_DOMAIN, labelDomain('rack'), labelDomain('host')),
        b: fc.record({ hard: fc.boolean(), domain: fc.constantFrom(HOST_DOMAIN, labelDomain('rack')) }),
        list: fc.array(
          fc.record({
            vcpus: fc.integer({ min: 1, max: 2 }),
            group: fc.constantFrom<'a' | 'b' | undefined>('a', 'a', 'b', undefined),
            priority: fc.constantFrom(RestartPriority.HIGH, RestartPriority.LOW, RestartPriority.NONE),
            host: fc.nat(),
          }),
          { minLength: 2, maxLength: 6 },
        ),
        byPlace: fc.boolean(),
      })
      .map(({ hosts, failuresToTolerate, a, b, list, byPlace }) => {
        const c = cluster(
          hosts.map((h, i) => host(`h${i}`, { cores: h.cores, memoryMiB: 8192, labels: { rack: h.rack, host: h.label } })),
          { failuresToTolerate },
        );
        const rules = { a: { hard: false, domain: a }, b };
        const vms = list.map((f, i) => vm(`v${i}`, { vcpus: f.vcpus, priority: f.priority, group: f.group, antiAffinity: f.group && rules[f.group] }));
        const placements = byPlace ? { ...place(c, vms).placements } : Object.fromEntries(list.map((f, i) => [`v${i}`, `h${f.host % hosts.length}`]));
        return { c, vms, placements };
      });
    const random = small.chain((s) =>
      fc.record({
        s: fc.constant(s),
        byPlace: fc.boolean(),
        hostIndex: fc.array(fc.integer({ min: 0, max: s.cluster.hosts.length - 1 }), { minLength: s.vms.length, maxLength: s.vms.length }),
      }).map(({ s: { cluster: c, vms }, byPlace, hostIndex }) => ({
        c,
        vms,
        placements: byPlace ? { ...place(c, vms).placements } : Object.fromEntries(vms.map((v, i) => [v.name, c.hosts[hostIndex[i]].name])),
      })),
    );
    const failedHostsOf = (message: string): string[] => /^if hosts? (.+?) fails?, /.exec(message)![1].split(/, | and /);
    fc.assert(
      fc.property(fc.boolean(), fc.oneof(softly, random), (greedy, { c, vms, placements }) => {
        const result = admissionControl(c, vms, placements, { ...options, greedy });
        const keepingSoft = vms.map((v) => (v.antiAffinity ? { ...v, antiAffinity: { ...v.antiAffinity, hard: true } } : v));
        const failing = new Set(bruteForceFailingScenarios(c, vms, placements).map((f) => f.join()));
        const onlyByRelaxing = bruteForceFailingScenarios(c, keepingSoft, placements).filter((f) => !failing.has(f.join()));
        expect([...new Set(result.warnings.map((w) => failedHostsOf(w.message).join()))].sort()).toEqual(onlyByRelaxing.map((f) => f.join()).sort());
        for (const w of result.warnings) expect(w).toMatchObject({ rule: 'anti-affinity-soft-relaxed-on-failure', message: expect.stringMatching(/ share /) });
      }),
      { numRuns: 300 },
    );
  });

  test('a restart plan that warns of nothing keeps every soft rule for the VMs it restarts', () => {
    fc.assert(
      fc.property(small, fc.nat(), ({ cluster: c, vms }, pick) => {
        const placements = { ...place(c, vms).placements };
        const active = c.hosts.filter((h) => h.state === HostState.ACTIVE);
        if (active.length === 0) return;
        const failed = active[pick % active.length].name;
        const plan = planRestart(c, vms, placements, [failed], options);
        if (!plan.feasible || plan.warnings.length > 0) return;
        const byName = new Map(c.hosts.map((h) => [h.name, h]));
        const where = (v: VmSpec) => plan.restarts[v.name] ?? placements[v.name];
        for (const v of vms) {
          if (plan.restarts[v.name] === undefined || !v.antiAffinity || v.antiAffinity.hard) continue;
          for (const other of vms) {
            if (other === v || other.group !== v.group || where(other) === undefined || where(other) === failed) continue;
            expect(domainOf(byName.get(where(other))!, v.antiAffinity.domain)).not.toBe(domainOf(byName.get(where(v))!, v.antiAffinity.domain));
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  test('a restart plan keeps capacity and agrees with brute force', () => {
    fc.assert(
      fc.property(small, fc.nat(), ({ cluster: c, vms }, pick) => {
        const placements = { ...place(c, vms).placements };
        const active = c.hosts.filter((h) => h.state === HostState.ACTIVE);
        if (active.length === 0) return;
        const failed = active[pick % active.length].name;
        const plan = planRestart(c, vms, placements, [failed], options);
        const bruteForceOk = !bruteForceFailingScenarios({ ...c, failuresToTolerate: 1 }, vms, placements).some((f) => f[0] === failed);
        expect(plan.feasible).toBe(bruteForceOk);
        if (!plan.feasible) return;
        const after = { ...placements, ...plan.restarts };
        for (const v of vms) if (placements[v.name] === failed && v.priority !== RestartPriority.NONE) expect(after[v.name]).not.toBe(failed);
        for (const h of c.hosts.filter((x) => x.name !== failed)) {
          const restarted = vms.filter((v) => plan.restarts[v.name] === h.name);
          if (restarted.length === 0) continue;
          const on = vms.filter((v) => after[v.name] === h.name && !(placements[v.name] === failed && v.priority === RestartPriority.NONE));
          const cap = capacityOf(h, c);
          expect(on.reduce((s, v) => s + v.vcpus, 0)).toBeLessThanOrEqual(cap.vcpus);
          expect(on.reduce((s, v) => s + v.memoryMiB, 0)).toBeLessThanOrEqual(cap.memoryMiB);
        }
      }),
      { numRuns: 150 },
    );
  });
});
