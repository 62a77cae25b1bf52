import { HOST_DOMAIN, HostState, labelDomain } from '../../lib/core';
import { ClusterIndex, groupRules } from '../../lib/core/cluster-index';
import { cluster, host, vm } from './arbitraries';

describe('ClusterIndex', () => {
  const idx = new ClusterIndex(
    cluster(
      [
        host('h3', { labels: { rack: 'r2' }, state: HostState.FAILED }),
        host('h1', { labels: { rack: 'r1' }, cores: 4 }),
        host('h2', { labels: { rack: 'r2' } }),
        host('h1', { cores: 99 }),
        host('h4'),
      ],
      { cpuOvercommit: 2 },
    ),
  );

  test('hosts by name; the first declaration of a duplicate wins', () => {
    expect(idx.hosts.map((h) => h.name)).toEqual(['h1', 'h2', 'h3', 'h4']);
    expect(idx.duplicates).toEqual(['h1']);
    expect(Array.from(idx.cpuCapacity)).toEqual([8, 16, 16, 16]);
    expect(Array.from(idx.active)).toEqual([1, 1, 0, 1]);
  });

  test('failure domains by label; a host without the label is its own domain', () => {
    const racks = idx.domains(labelDomain('rack'));
    expect(Array.from(racks.ids)).toEqual([0, 1, 1, 2]);
    expect(racks.names).toEqual(['r1', 'r2', 'h4 (no rack label)']);
    expect(racks.unlabelled).toEqual([3]);
    expect(Array.from(idx.domains(HOST_DOMAIN).ids)).toEqual([0, 1, 2, 3]);
    expect(idx.domains(labelDomain('rack'))).toBe(racks); // cached
  });

  test('a host label called host is a label like any other, apart from the hosts themselves', () => {
    const labelled = new ClusterIndex(cluster([host('h1', { labels: { host: 'a' } }), host('h2', { labels: { host: 'a' } }), host('h3', { labels: { host: 'b' } })]));
    const byLabel = labelled.domains(labelDomain('host'));
    expect(Array.from(byLabel.ids)).toEqual([0, 0, 1]);
    expect(byLabel.names).toEqual(['a', 'b']);
    expect(Array.from(labelled.domains(HOST_DOMAIN).ids)).toEqual([0, 1, 2]);
    expect(labelled.domains(HOST_DOMAIN).names).toEqual(['h1', 'h2', 'h3']);
  });
});

describe('groupRules', () => {
  test('every rule a member declares applies to the whole group; hard wins over soft', () => {
    const rules = groupRules([
      vm('a1', { group: 'a', antiAffinity: { hard: false, domain: labelDomain('rack') } }),
      vm('a0', { group: 'a', antiAffinity: { hard: true, domain: HOST_DOMAIN } }),
      vm('b0', { group: 'b', antiAffinity: { hard: true, domain: labelDomain('rack') } }),
      vm('b1', { group: 'b', antiAffinity: { hard: false, domain: labelDomain('rack') } }),
      vm('c0', { group: 'c', antiAffinity: { hard: false, domain: labelDomain('rack') } }),
      vm('c1', { group: 'c', antiAffinity: { hard: false, domain: labelDomain('rack') } }),
      vm('loner', { antiAffinity: { hard: true, domain: HOST_DOMAIN } }),
    ]);
    expect([...rules.keys()]).toEqual(['a', 'b', 'c']);
    expect(rules.get('a')).toEqual({ group: 'a', members: ['a0', 'a1'], hardDomains: [HOST_DOMAIN], softDomains: [labelDomain('rack')], inconsistent: true });
    expect(rules.get('b')).toMatchObject({ hardDomains: [labelDomain('rack')], softDomains: [], inconsistent: true });
    expect(rules.get('c')).toMatchObject({ hardDomains: [], softDomains: [labelDomain('rack')], inconsistent: false });
  });

  test('by host and by a label called host are two rules', () => {
    const rules = groupRules([
      vm('a0', { group: 'a', antiAffinity: { hard: true, domain: labelDomain('host') } }),
      vm('a1', { group: 'a', antiAffinity: { hard: true, domain: HOST_DOMAIN } }),
    ]);
    expect(rules.get('a')).toMatchObject({ hardDomains: [HOST_DOMAIN, labelDomain('host')], softDomains: [], inconsistent: true });
  });
});
