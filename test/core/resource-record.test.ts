import { decideRecord, EMPTY_RECORD, mergeMoves, recordProblem } from '../../lib/core/resource-record';

describe('moves kept in the resource lock', () => {
  test('a chain collapses: A → B then B → C is A → C and B → C', () => {
    expect(mergeMoves([{ from: 'a', to: 'b' }], [{ from: 'b', to: 'c' }])).toEqual([
      { from: 'a', to: 'c' },
      { from: 'b', to: 'c' },
    ]);
  });

  test('a move back undoes the move instead of making a cycle', () => {
    expect(mergeMoves([{ from: 'a', to: 'b' }], [{ from: 'b', to: 'a' }])).toEqual([{ from: 'b', to: 'a' }]);
  });

  test('a move is emitted only while its target is declared and its source is not', () => {
    const vm = (domain: string) => ({ where: 'host h', path: 'p', domain });
    const previous = { ...EMPTY_RECORD, vms: { 'x@host h': vm('libvirt_domain.old') } };
    const decided = decideRecord(previous, { 'x@host h': vm('libvirt_domain.new') }, new Set(['libvirt_domain.new']));
    expect(decided.moved).toEqual([{ from: 'libvirt_domain.old', to: 'libvirt_domain.new' }]);
    // The old address declared again (another VM took it): the move would collide, so it is left out.
    const reused = decideRecord(decided.next, { 'x@host h': vm('libvirt_domain.new') }, new Set(['libvirt_domain.new', 'libvirt_domain.old']));
    expect(reused.moved).toEqual([]);
    expect(reused.next.moved).toEqual([{ from: 'libvirt_domain.old', to: 'libvirt_domain.new' }]);
  });
});

test('a record file that is not a version-1 record is named as such', () => {
  expect(recordProblem([])).toBe('it is not an object');
  expect(recordProblem({ version: 2, vms: {}, moved: [], forgotten: [] })).toBe('its version is 2, not 1');
  expect(recordProblem({ version: 1, vms: {} })).toBe('it lacks vms, moved or forgotten');
  expect(recordProblem(EMPTY_RECORD)).toBeUndefined();
});
