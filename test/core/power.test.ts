import { HostState, standbyCandidates } from '../../lib/core';
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
