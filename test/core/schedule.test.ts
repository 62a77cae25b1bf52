import fc from 'fast-check';
import { Schedule, localMinuteOfDay } from '../../lib/core';

describe('Schedule', () => {
  const dayNight = Schedule.from('08:00', 3).and('20:00', 2);

  test('windows are sorted by start, whatever order they were added in', () => {
    const s = Schedule.from('20:00', 2).and('08:00', 3);
    expect(s.windows()).toEqual([
      { start: '08:00', startMinute: 480, replicas: 3 },
      { start: '20:00', startMinute: 1200, replicas: 2 },
    ]);
    expect(s.toString()).toBe('08:00 → 3, 20:00 → 2');
  });

  test('and() returns a new schedule', () => {
    const one = Schedule.from('08:00', 3);
    one.and('20:00', 2);
    expect(one.windows()).toHaveLength(1);
  });

  test('max and min replicas', () => {
    expect(dayNight.maxReplicas()).toBe(3);
    expect(dayNight.minReplicas()).toBe(2);
    expect(Schedule.constant(4).maxReplicas()).toBe(4);
  });

  test.each([
    ['2024-01-15T07:59:00Z', 2],
    ['2024-01-15T08:00:00Z', 3],
    ['2024-01-15T19:59:00Z', 3],
    ['2024-01-15T20:00:00Z', 2],
    ['2024-01-15T23:59:00Z', 2],
    ['2024-01-15T00:00:00Z', 2], // before the first start: yesterday's last window runs on
    ['2024-01-15T12:00:00Z', 3],
  ] as [string, number][])('in UTC at %s: %i replicas', (iso, replicas) => {
    expect(dayNight.replicasAt(new Date(iso), 'UTC')).toBe(replicas);
  });

  test('uses the cluster time zone, daylight saving time included', () => {
    // 06:30 UTC is 07:30 in Zurich in winter (CET) but 08:30 in summer (CEST).
    expect(dayNight.replicasAt(new Date('2024-01-15T06:30:00Z'), 'Europe/Zurich')).toBe(2);
    expect(dayNight.replicasAt(new Date('2024-07-15T06:30:00Z'), 'Europe/Zurich')).toBe(3);
    expect(dayNight.replicasAt(new Date('2024-07-15T06:30:00Z'), 'America/New_York')).toBe(2); // 02:30 EDT
    // 19:00 UTC is 04:00 the next day in Tokyo: the night window, started at 20:00 the day before
    expect(dayNight.windowAt(new Date('2024-07-15T19:00:00Z'), 'Asia/Tokyo')).toEqual({ start: '20:00', startMinute: 1200, replicas: 2 });
  });

  test('a constant schedule has one window covering the whole day', () => {
    const s = Schedule.constant(2);
    expect(s.windows()).toEqual([{ start: '00:00', startMinute: 0, replicas: 2 }]);
    expect(s.replicasAt(new Date('2024-03-01T12:34:00Z'), 'Pacific/Auckland')).toBe(2);
  });

  test.each(['8:00', '24:00', '12:60', '12-30', '', ' 08:00', '08:00 '])('rejects start time %p with the expected format', (start) => {
    expect(() => Schedule.from(start, 1)).toThrow(`Schedule start time '${start}' is not valid; use 24-hour 'HH:MM' such as '08:00' or '20:30'`);
  });

  test.each([-1, 1.5, NaN, Infinity])('rejects %p replicas', (n) => {
    expect(() => Schedule.from('08:00', n)).toThrow(/use a whole number, 0 or more/);
    expect(() => Schedule.constant(n)).toThrow(/replicas/);
  });

  test('rejects two windows starting at the same time', () => {
    expect(() => dayNight.and('08:00', 1)).toThrow('Schedule 08:00 → 3, 20:00 → 2 already has a window starting at 08:00; give each window its own start time');
  });

  test('rejects an unknown time zone and an invalid date', () => {
    expect(() => dayNight.replicasAt(new Date(), 'Europe/Zurch')).toThrow("Unknown time zone 'Europe/Zurch'; use an IANA name such as 'Europe/Zurich' or 'UTC'");
    expect(() => dayNight.replicasAt(new Date('nope'), 'UTC')).toThrow(/invalid Date/);
  });

  test('the window in force is the one that started most recently (brute force over the minutes of a day)', () => {
    const windowsArb = fc.uniqueArray(fc.record({ minute: fc.integer({ min: 0, max: 1439 }), replicas: fc.integer({ min: 0, max: 9 }) }), {
      minLength: 1,
      maxLength: 5,
      selector: (w) => w.minute,
    });
    const hhmm = (m: number) => `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
    fc.assert(
      fc.property(windowsArb, fc.integer({ min: 0, max: 1439 }), (windows, minute) => {
        const [first, ...rest] = windows;
        const s = rest.reduce((acc, w) => acc.and(hhmm(w.minute), w.replicas), Schedule.from(hhmm(first.minute), first.replicas));
        // walk back minute by minute, over midnight if needed, until a window starts
        let m = minute;
        let expected: number | undefined;
        for (let i = 0; i < 1440 && expected === undefined; i++, m = (m + 1439) % 1440) {
          expected = windows.find((w) => w.minute === m)?.replicas;
        }
        const instant = new Date(Date.UTC(2024, 4, 1, 0, minute));
        expect(s.replicasAt(instant, 'UTC')).toBe(expected);
        expect(s.maxReplicas()).toBe(Math.max(...windows.map((w) => w.replicas)));
      }),
    );
  });
});

describe('localMinuteOfDay', () => {
  test('reads the wall clock of the zone', () => {
    expect(localMinuteOfDay(new Date('2024-01-15T23:30:00Z'), 'Asia/Kolkata')).toBe(5 * 60); // 05:00 IST next day
    expect(localMinuteOfDay(new Date('2024-01-15T00:00:00Z'), 'UTC')).toBe(0);
  });
});
