import { HostState, Schedule, UnattendedAction, controllerCluster, parseUnattendedActions, renderControllerFile } from '../../lib/core';
import { host } from './arbitraries';

const mail = Schedule.from('08:00', 3).and('20:00', 2);
const backup = Schedule.from('02:30', 1).and('20:00', 0);

function entry(overrides: Partial<Parameters<typeof controllerCluster>[0]> = {}) {
  return controllerCluster({
    id: 'cluster',
    spec: { hosts: [host('h2', { state: HostState.STANDBY, wakeSeconds: 60 }), host('h1', { wakeSeconds: 90 }), host('h3')] },
    timeZone: 'Europe/Zurich',
    instant: new Date('2026-11-26T02:00:00Z'),
    unattended: [UnattendedAction.SCHEDULE, UnattendedAction.FAILOVER],
    schedules: [mail.windows(), Schedule.constant(1).windows(), backup.windows()],
    standbyCandidates: ['h3'],
    recoverySeconds: 120,
    ...overrides,
  });
}

describe('controllerCluster', () => {
  test('hosts by name with their state and wake time, starts of the schedules that switch, the next boundary', () => {
    expect(entry()).toEqual({
      id: 'cluster',
      timeZone: 'Europe/Zurich',
      instant: '2026-11-26T02:00:00.000Z',
      unattended: ['failover', 'schedule'],
      // the constant schedule's 00:00 is no boundary: nothing switches there
      windowStarts: ['02:30', '08:00', '20:00'],
      nextWindowStart: '2026-11-26T07:00:00.000Z',
      hosts: [
        { name: 'h1', state: 'active', wakeSeconds: 90 },
        { name: 'h2', state: 'standby', wakeSeconds: 60 },
        { name: 'h3', state: 'active' },
      ],
      standbyCandidates: ['h3'],
      recoverySeconds: 120,
    });
  });

  test('no boundary without a schedule that switches, or in a time zone the runtime does not know', () => {
    expect(entry({ schedules: [Schedule.constant(2).windows()] })).toMatchObject({ windowStarts: [], nextWindowStart: null });
    expect(entry({ schedules: [] })).toMatchObject({ windowStarts: [], nextWindowStart: null });
    expect(entry({ timeZone: 'Mars/Olympus' })).toMatchObject({ windowStarts: ['02:30', '08:00', '20:00'], nextWindowStart: null });
  });

  test('the next boundary across the spring-forward night in Zurich', () => {
    // 21:00 CET on 2026-03-28; 02:30 is skipped that night and takes effect at 03:00 CEST (01:00Z)
    expect(entry({ instant: new Date('2026-03-28T20:00:00Z') }).nextWindowStart).toBe('2026-03-29T01:00:00.000Z');
    expect(entry({ instant: new Date('2026-03-29T01:00:00Z') }).nextWindowStart).toBe('2026-03-29T06:00:00.000Z');
  });
});

describe('renderControllerFile', () => {
  test('version, stack and clusters by id; the same input in any order gives the same bytes', () => {
    const a = entry({ id: 'a' });
    const b = entry({
      id: 'b',
      unattended: [UnattendedAction.STANDBY_POWER, UnattendedAction.FAILOVER, UnattendedAction.STANDBY_POWER],
      spec: { hosts: [host('h3'), host('h1', { wakeSeconds: 90 }), host('h2', { state: HostState.STANDBY, wakeSeconds: 60 })] },
      schedules: [backup.windows(), mail.windows()],
    });
    const text = renderControllerFile('mail', [b, a]);
    expect(renderControllerFile('mail', [a, b])).toBe(text);
    expect(text.endsWith('}\n')).toBe(true);
    const file = JSON.parse(text);
    expect(file).toMatchObject({ version: 1, stack: 'mail' });
    expect(file.clusters.map((c: { id: string }) => c.id)).toEqual(['a', 'b']);
    expect(file.clusters[1].unattended).toEqual(['failover', 'standby-power']);
    expect(file.clusters[1].hosts).toEqual(file.clusters[0].hosts);
    expect(file.clusters[1].windowStarts).toEqual(['02:30', '08:00', '20:00']);
  });
});

describe('parseUnattendedActions', () => {
  test.each([
    ['failover', ['failover']],
    [' schedule , failover,', ['failover', 'schedule']],
    ['', []],
    [['standby-power', 'failover', 'failover'], ['failover', 'standby-power']],
    [[], []],
  ] as [unknown, string[]][])('%p names %p', (value, actions) => {
    expect(parseUnattendedActions(value, 'context x')).toEqual({ actions, problems: [] });
  });

  test('every unknown name is a problem that lists the valid ones; the known ones still count', () => {
    expect(parseUnattendedActions('failover,reboot,Schedule', 'context x')).toEqual({
      actions: ['failover'],
      problems: [
        'context x names "reboot", which is not an unattended action; use one or more of failover, schedule, standby-power',
        'context x names "Schedule", which is not an unattended action; use one or more of failover, schedule, standby-power',
      ],
    });
    expect(parseUnattendedActions([7], 'unattended').problems).toEqual(['unattended names 7, which is not an unattended action; use one or more of failover, schedule, standby-power']);
  });

  test('a value that is neither a string nor a list is a problem', () => {
    expect(parseUnattendedActions(true, 'context x')).toEqual({
      actions: [],
      problems: ['context x is true; give unattended action names, comma-separated or as a list: failover, schedule, standby-power'],
    });
  });
});
