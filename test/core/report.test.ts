import { ClusterSpec, HOST_DOMAIN, HostState, RestartPriority, UnattendedAction, VmSpec, admissionControl, labelDomain, place, renderReport, standbyCandidates } from '../../lib/core';
import { cluster, host, vm } from './arbitraries';

function reportFor(c: ClusterSpec, vms: VmSpec[], notes: string[] = [], unattended?: UnattendedAction[]) {
  const placement = place(c, vms);
  return renderReport({
    title: 'Lab <A&B>',
    cluster: c,
    vms,
    placement,
    admission: admissionControl(c, vms, placement.placements),
    instant: new Date('2024-07-15T06:30:00Z'),
    timeZone: 'Europe/Zurich',
    window: 'day (from 08:00, 3 replicas)',
    standbyCandidates: standbyCandidates(c, vms, placement.placements),
    notes,
    unattended,
  });
}

/** Tags must nest and close; text must not hold a raw `<` or a bare `&`. */
function expectWellFormedXml(svg: string): void {
  const stack: string[] = [];
  const tag = /<(\/?)([a-zA-Z]+)([^>]*?)(\/?)>/g;
  let last = 0;
  for (let m = tag.exec(svg); m; m = tag.exec(svg)) {
    const text = svg.slice(last, m.index);
    expect(text).not.toMatch(/[<>]|&(?!(amp|lt|gt|quot|apos);)/);
    last = tag.lastIndex;
    if (m[4] === '/') continue;
    if (m[1] === '/') expect(stack.pop()).toBe(m[2]);
    else stack.push(m[2]);
  }
  expect(stack).toEqual([]);
}

describe('renderReport', () => {
  const c = cluster(
    [
      host('h1', { cores: 4, labels: { rack: 'r1' } }),
      host('h2', { cores: 4, labels: { rack: 'r2' } }),
      host('h3', { cores: 4, labels: { rack: 'r2' } }),
      host('h4', { state: HostState.MAINTENANCE }),
    ],
    { cpuOvercommit: 1 },
  );
  const vms = [
    vm('web-0', { group: 'web', antiAffinity: { hard: true, domain: HOST_DOMAIN }, vcpus: 2, priority: RestartPriority.HIGH }),
    vm('web-1', { group: 'web', antiAffinity: { hard: true, domain: HOST_DOMAIN }, vcpus: 2, priority: RestartPriority.HIGH }),
    vm('web-2', { group: 'web', antiAffinity: { hard: true, domain: HOST_DOMAIN }, vcpus: 2, priority: RestartPriority.HIGH, active: false }),
    vm('batch', { vcpus: 2, priority: RestartPriority.NONE }),
    vm('evil|<name>&', { vcpus: 1, priority: RestartPriority.LOW }),
  ];

  test('the same input gives the same bytes', () => {
    expect(reportFor(c, vms)).toEqual(reportFor(c, vms));
  });

  test('markdown has the host, VM, what-if, standby and warning sections', () => {
    const { markdown } = reportFor(c, vms, ['vm batch: console listens on 0.0.0.0 (opted out)']);
    expect(markdown).toContain('# Lab &lt;A&B&gt;');
    expect(markdown).toContain('- Instant: 2024-07-15T06:30:00.000Z (2024-07-15 08:30 Europe/Zurich)');
    expect(markdown).toContain('- Schedule window: day (from 08:00, 3 replicas)');
    for (const section of ['## Hosts', '## VMs', '## What if one host fails', '## Standby candidates', '## Problems', '## Warnings']) {
      expect(markdown).toContain(section);
    }
    expect(markdown).toMatch(/\| h4 \| maintenance \| — \| — \| 0 \/ 8 \(0%\) \|/);
    expect(markdown).toContain('| web-2 | h3 | web | high | no (off-window) | 2 | 1024 |');
    expect(markdown).toContain('- vm batch: console listens on 0.0.0.0 (opted out)');
  });

  test('the what-if table says where VMs restart and which stay down', () => {
    const { markdown } = reportFor(c, vms);
    const whatIf = markdown.split('## What if one host fails')[1].split('##')[0];
    const rows = whatIf.split('\n').filter((l) => /^\| h\d/.test(l));
    expect(rows.map((r) => r.split('|')[1].trim())).toEqual(['h1', 'h2', 'h3']); // active hosts only
    // every host holds a web replica; with hard anti-affinity by host it has nowhere to go
    for (const row of rows) expect(row).toMatch(/web-\d \(hard anti-affinity of group web/);
    expect(whatIf).toContain('batch (priority none)');
    expect(markdown).toContain('## Admission control failures');
    expect(markdown).toMatch(/- Admission control: FAILED in 3 of 3 scenarios/);
  });

  test('admission failures show the real shortfall: none when a hard rule, not room, keeps a VM down', () => {
    const failures = (m: string) => m.split('## Admission control failures')[1].split('##')[0].split('\n').filter((l) => /^\| h\d/.test(l));
    // every web replica is blocked by hard anti-affinity by host; room is not the problem
    const rows = failures(reportFor(c, vms).markdown);
    expect(rows).toHaveLength(3);
    for (const row of rows) expect(row.split(' | ')[2]).toBe('— (not capacity)');
    // each VM lacks 1 vCPU on the other host, and no memory
    const tight = cluster([host('h1', { cores: 2 }), host('h2', { cores: 2 })]);
    const shortfalls = failures(reportFor(tight, [vm('a', { vcpus: 2 }), vm('b', { vcpus: 1 })]).markdown).map((r) => r.split(' | ').slice(0, 3));
    expect(shortfalls).toEqual([
      ['| h1', 'a', '1 vCPU (on h2)'],
      ['| h2', 'b', '1 vCPU (on h1)'],
    ]);
  });

  test('names are escaped: no broken table rows, no HTML', () => {
    const { markdown: withBackslash } = reportFor(c, [vm('back\\')], ['a\nb']);
    expect(withBackslash).toContain('| back\\\\ | h');
    expect(withBackslash).toContain('- a b');
    const { markdown } = reportFor(c, vms);
    const row = markdown.split('\n').find((l) => l.startsWith('| evil'))!;
    expect(row).toBe('| evil\\|&lt;name&gt;& | ' + row.split(' | ').slice(1).join(' | '));
    expect(row.split(/(?<!\\)\|/).length - 2).toBe(8); // VM, host, group, priority, active, vCPU, memory, addresses
    expect(markdown).not.toContain('<name>');
  });

  test('svg: one row per host with both bars, XML-escaped and well-formed', () => {
    const { svg } = reportFor(c, vms);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.match(/<g transform=/g)).toHaveLength(4);
    expect(svg).toContain('4 / 4 vCPU'); // batch fills up h2
    expect(svg).toContain('evil|&lt;name&gt;&amp;');
    expect(svg).toContain('Lab &lt;A&amp;B&gt;');
    expect(svg).not.toMatch(/Date|NaN|undefined/);
    expectWellFormedXml(svg);
  });

  test('soft anti-affinity that a host failure forces to relax is among the warnings', () => {
    const racks = cluster([host('h1', { labels: { rack: 'r1' } }), host('h2', { labels: { rack: 'r2' } }), host('h3', { labels: { rack: 'r2' } })]);
    const mail = [0, 1].map((i) => vm(`mail-${i}`, { group: 'mail', antiAffinity: { hard: false, domain: labelDomain('rack') } }));
    const { markdown } = reportFor(racks, mail);
    expect(markdown).toContain('- Placement problems: 0; warnings: 1');
    expect(markdown.split('## Warnings')[1]).toMatch(
      /^\n\n- \*\*anti-affinity-soft-relaxed-on-failure\*\* \(mail\): if host h1 fails, soft anti-affinity by rack of group mail relaxed: mail-0, mail-1 share rack r2 \(no restart plan keeps it\)\. Fix: /,
    );
  });

  test('a healthy cluster says so', () => {
    const healthy = cluster([host('h1'), host('h2'), host('h3')]);
    const { markdown } = reportFor(healthy, [vm('a'), vm('b')]);
    expect(markdown).toContain('- Admission control: OK, every VM with a restart priority restarts after any 1 host failure(s) (3 scenarios checked)');
    expect(markdown).not.toContain('## Admission control failures');
    expect(markdown).toMatch(/Run no VM in this window and could be powered down: h\d\./);
    expect(markdown.split('## Problems')[1]).toMatch(/^\n\nNone\./);
  });

  test('lists the unattended actions on, or says the controller only watches', () => {
    const two = cluster([host('h1'), host('h2')]);
    expect(reportFor(two, [vm('a')]).markdown).toContain('\n- Unattended actions: none: the controller only watches\n');
    const on = reportFor(two, [vm('a')], [], [UnattendedAction.STANDBY_POWER, UnattendedAction.FAILOVER]).markdown;
    expect(on).toContain('\n- Unattended actions: failover, standby-power\n');
  });

  test('hosts in standby: which count as capacity for failures and why; restarts there say the host is woken', () => {
    const spares = cluster(
      [host('h1'), host('s1', { state: HostState.STANDBY, wakeSeconds: 60 }), host('s2', { state: HostState.STANDBY, wakeSeconds: 600 }), host('s3', { state: HostState.STANDBY })],
      { recoverySeconds: 120 },
    );
    const { markdown } = reportFor(spares, [vm('a'), vm('b')]);
    expect(markdown).toContain('- Admission control: OK, every VM with a restart priority restarts after any 1 host failure(s) (2 scenarios checked; standby host(s) s1 counted as capacity)');
    expect(markdown).toContain('| h1 | a → s1 (woken from standby), b → s1 (woken from standby) | — |');
    expect(markdown.split('## Hosts in standby')[1].split('\n## ')[0]).toBe(
      [
        '',
        '',
        '| Host | Wake time | Counts as capacity for failures | Why |',
        '|---|---|---|---|',
        '| s1 | 1 min | yes | wakes in 1 min, within the recovery time of 2 min |',
        '| s2 | 10 min | no | wakes in 10 min, longer than the recovery time of 2 min: a failover would not wait for it |',
        '| s3 | unknown | no | no wake time is known: give the host a wakeTime to count it |',
        '',
      ].join('\n'),
    );
    expect(reportFor(cluster([host('h1'), host('h2')]), [vm('a')]).markdown).not.toContain('## Hosts in standby');
  });
});
