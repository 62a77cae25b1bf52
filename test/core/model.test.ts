import { HostState, PRIORITY_ORDER, PlacementPolicy, RestartPriority, compareNames, hostCapacity, sortedRecord } from '../../lib/core';
import { host } from './arbitraries';

describe('hostCapacity', () => {
  test('(cores − reserved) × overcommit, and the same for memory', () => {
    const h = host('h', { cores: 16, reservedCores: 2, memoryMiB: 65536, reservedMemoryMiB: 4096 });
    expect(hostCapacity(h, { cpuOvercommit: 4, memoryOvercommit: 1 })).toEqual({ vcpus: 56, memoryMiB: 61440 });
  });

  test('whole units, without floating-point loss', () => {
    // 10 × 0.7 is 6.999999999999999 in binary floating point
    expect(hostCapacity(host('h', { cores: 10, memoryMiB: 10 }), { cpuOvercommit: 0.7, memoryOvercommit: 0.7 })).toEqual({ vcpus: 7, memoryMiB: 7 });
    expect(hostCapacity(host('h', { cores: 3 }), { cpuOvercommit: 1.5, memoryOvercommit: 1 }).vcpus).toBe(4);
  });

  test('never negative', () => {
    expect(hostCapacity(host('h', { cores: 1, reservedCores: 2 }), { cpuOvercommit: 4, memoryOvercommit: 1 }).vcpus).toBe(0);
  });
});

describe('sortedRecord and compareNames', () => {
  test('keys are inserted in code-unit order, independent of locale', () => {
    const r = sortedRecord([['b', 1], ['B', 2], ['a', 3], ['ä', 4]]);
    expect(JSON.stringify(r)).toBe('{"B":2,"a":3,"b":1,"ä":4}');
    expect(['b', 'a', 'A'].sort(compareNames)).toEqual(['A', 'a', 'b']);
  });
});

describe('closed sets', () => {
  test('are enums the constructs can re-export, with the string values locks and reports already use', () => {
    expect({ ...HostState }).toEqual({ ACTIVE: 'active', MAINTENANCE: 'maintenance', STANDBY: 'standby', FAILED: 'failed' });
    expect({ ...RestartPriority }).toEqual({ HIGH: 'high', MEDIUM: 'medium', LOW: 'low', NONE: 'none' });
    expect({ ...PlacementPolicy }).toEqual({ SPREAD: 'spread', PACK: 'pack' });
  });

  test('restart order follows the priorities, highest first', () => {
    expect(Object.values(RestartPriority).sort((a, b) => PRIORITY_ORDER[a] - PRIORITY_ORDER[b])).toEqual([
      RestartPriority.HIGH,
      RestartPriority.MEDIUM,
      RestartPriority.LOW,
      RestartPriority.NONE,
    ]);
  });
});
