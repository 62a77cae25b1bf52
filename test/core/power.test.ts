import { HostState, standbyCandidates, standbyHosts } from '../../lib/core';
import { cluster, host, vm } from './arbitraries';

describe('standbyCandidates', () => {
  const c = cluster([host('h3'), host('h1'), host('h2'), host('h4', { state: HostState.MAINTENANCE }), host('h5')]);

  test('active hosts without a VM running in this window, sorted by name', () => {
    const vms = [vm('on', { active: true }), vm('off', { active: false }), vm('unplaced')];
    const placements = { on: 'h1', off: 'h2' };
    // h2 only holds the reservation of an off-window replica; h4 is not active
    expect(standbyCandidates(c, vms, placements)).toEqual(['h2', 'h3', 'h5']);
  });

  test('a host with any running VM stays up', () => {
    const vms = ['h1', 'h2', 'h3', 'h5'].map((h) => vm(`vm-${h}`));
    expect(standbyCandidates(c, vms, Object.fromEntries(vms.map((v) => [v.name, v.name.slice(3)])))).toEqual([]);
  });
});

describe('standbyHosts', () => {
  const spares = [
    host('s3', { state: HostState.STANDBY, wakeSeconds: 300 }),
    host('s1', { state: HostState.STANDBY, wakeSeconds: 60 }),
    host('s2', { state: HostState.STANDBY }),
    host('s4', { state: HostState.STANDBY, wakeSeconds: 120 }),
    host('a1', { wakeSeconds: 60 }),
    host('f1', { state: HostState.FAILED, wakeSeconds: 60 }),
  ];

  test('only hosts in standby, sorted; each counts only when it wakes within the recovery time, and says why', () => {
    expect(standbyHosts(cluster(spares, { recoverySeconds: 120 }))).toEqual([
      { name: 's1', wakeSeconds: 60, counts: true, reason: 'wakes in 1 min, within the recovery time of 2 min' },
      { name: 's2', counts: false, reason: 'no wake time is known: give the host a wakeTime to count it' },
      { name: 's3', wakeSeconds: 300, counts: false, reason: 'wakes in 5 min, longer than the recovery time of 2 min: a failover would not wait for it' },
      { name: 's4', wakeSeconds: 120, counts: true, reason: 'wakes in 2 min, within the recovery time of 2 min' },
    ]);
  });

  test('without a recovery time no standby host counts', () => {
    expect(standbyHosts(cluster(spares)).filter((s) => s.counts)).toEqual([]);
    expect(standbyHosts(cluster(spares))[0].reason).toBe('wakes in 1 min, but the cluster has no recovery time');
  });

  test('none in a cluster without standby hosts', () => {
    expect(standbyHosts(cluster([host('h1'), host('h2', { state: HostState.MAINTENANCE, wakeSeconds: 30 })], { recoverySeconds: 120 }))).toEqual([]);
  });
});
