import fc from 'fast-check';
import { Schedule, localMinuteOfDay, nextWindowStart } from '../../lib/core';

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

describe('Schedule across daylight saving time', () => {
  const MINUTE = 60_000;
  const hhmm = (m: number) => `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;

  /** Every change of window between two instants, minute by minute: [ISO instant, window start]. */
  function changes(s: Schedule, zone: string, fromIso: string, toIso: string): [string, string][] {
    const out: [string, string][] = [];
    let last: string | undefined;
    for (let t = Date.parse(fromIso); t <= Date.parse(toIso); t += MINUTE) {
      const start = s.windowAt(new Date(t), zone).start;
      if (start !== last) out.push([new Date(t).toISOString(), start]);
      last = start;
    }
    return out;
  }

  test('a start in the hour repeated when clocks fall back takes effect at its first occurrence only', () => {
    // Europe/Zurich, 2026-10-25: 03:00 CEST (01:00Z) becomes 02:00 CET, so 02:30 happens at 00:30Z and again at 01:30Z.
    const s = Schedule.from('02:30', 3).and('03:00', 2).and('08:00', 1);
    expect(changes(s, 'Europe/Zurich', '2026-10-24T22:00:00Z', '2026-10-25T03:00:00Z')).toEqual([
      ['2026-10-24T22:00:00.000Z', '08:00'],
      ['2026-10-25T00:30:00.000Z', '02:30'], // the first 02:30; the window runs on through the repeated hour
      ['2026-10-25T02:00:00.000Z', '03:00'], // 03:00 CET, the only 03:00 of the day
    ]);
  });

  test('a start in the hour skipped when clocks spring forward takes effect at the first instant after the gap', () => {
    // Europe/Zurich, 2026-03-29: 02:00 CET (01:00Z) becomes 03:00 CEST; 02:30 never happens.
    const s = Schedule.from('02:30', 3).and('08:00', 1);
    expect(changes(s, 'Europe/Zurich', '2026-03-28T23:00:00Z', '2026-03-29T07:00:00Z')).toEqual([
      ['2026-03-28T23:00:00.000Z', '08:00'],
      ['2026-03-29T01:00:00.000Z', '02:30'],
      ['2026-03-29T06:00:00.000Z', '08:00'],
    ]);
    // two starts in the gap take effect together: the later one is in force, the earlier one never
    const both = Schedule.from('02:10', 5).and('02:40', 4).and('08:00', 1);
    expect(changes(both, 'Europe/Zurich', '2026-03-28T23:00:00Z', '2026-03-29T02:00:00Z')).toEqual([
      ['2026-03-28T23:00:00.000Z', '08:00'],
      ['2026-03-29T01:00:00.000Z', '02:40'],
    ]);
  });

  test.each([
    // Lord Howe falls back by 30 minutes: 02:00 LHDT (15:00Z) becomes 01:30 LHST.
    ['Australia/Lord_Howe', '01:45', '2026-04-04T12:00:00Z', '2026-04-04T18:00:00Z', '2026-04-04T14:45:00.000Z'],
    // Chatham falls back from +13:45 to +12:45: 03:45 (14:00Z) becomes 02:45.
    ['Pacific/Chatham', '03:00', '2026-04-04T12:00:00Z', '2026-04-04T18:00:00Z', '2026-04-04T13:15:00.000Z'],
    // New York: 02:00 EDT (06:00Z) becomes 01:00 EST.
    ['America/New_York', '01:30', '2026-11-01T04:00:00Z', '2026-11-01T09:00:00Z', '2026-11-01T05:30:00.000Z'],
  ])('%s: a start at %s in the repeated hour is entered once', (zone, start, from, to, first) => {
    const s = Schedule.from(start, 2).and('12:00', 1);
    expect(changes(s, zone, from, to)).toEqual([
      [new Date(from).toISOString(), '12:00'],
      [first, start],
    ]);
  });

  test('over a daylight saving day, a replica count never returns to a window it left, except by the daily wrap', () => {
    const days: [string, string][] = [
      ['UTC', '2026-10-25'],
      ['Europe/Zurich', '2026-03-29'],
      ['Europe/Zurich', '2026-10-25'],
      ['America/New_York', '2026-03-08'],
      ['America/New_York', '2026-11-01'],
      ['Australia/Lord_Howe', '2026-04-05'],
      ['Australia/Lord_Howe', '2026-10-04'],
      ['Pacific/Chatham', '2026-04-05'],
      ['Pacific/Chatham', '2026-09-27'],
    ];
    // Starts often fall between 01:00 and 04:00, where the clocks of these zones jump.
    const minuteArb = fc.oneof(fc.integer({ min: 0, max: 1439 }), fc.integer({ min: 60, max: 240 }));
    const windowsArb = fc.uniqueArray(fc.record({ minute: minuteArb, replicas: fc.integer({ min: 0, max: 9 }) }), { minLength: 1, maxLength: 5, selector: (w) => w.minute });
    const localDates = new Map<string, Intl.DateTimeFormat>();
    const localDate = (t: number, zone: string): string => {
      if (!localDates.has(zone)) localDates.set(zone, new Intl.DateTimeFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit' }));
      return localDates.get(zone)!.format(t);
    };
    fc.assert(
      fc.property(windowsArb, fc.constantFrom(...days), (windows, [zone, day]) => {
        const [first, ...rest] = windows;
        const s = rest.reduce((acc, w) => acc.and(hhmm(w.minute), w.replicas), Schedule.from(hhmm(first.minute), first.replicas));
        const order = s.windows().map((w) => w.start);
        // the window index in force, minute by minute, grouped by local date; a day and a half either side of the change
        const byDate = new Map<string, number[]>();
        const midnight = Date.parse(`${day}T00:00:00Z`);
        for (let t = midnight - 24 * 60 * MINUTE; t <= midnight + 48 * 60 * MINUTE; t += MINUTE) {
          const i = order.indexOf(s.windowAt(new Date(t), zone).start);
          const date = localDate(t, zone);
          const runs = byDate.get(date) ?? [];
          if (runs[runs.length - 1] !== i) runs.push(i);
          byDate.set(date, runs);
        }
        for (const [date, runs] of byDate) {
          // the day opens in whatever window yesterday left running, then goes through its own windows in order
          const own = runs.slice(1);
          expect({ date, own }).toEqual({ date, own: [...new Set(own)].sort((a, b) => a - b) });
        }
      }),
      { numRuns: 60 },
    );
  });
});

describe('nextWindowStart', () => {
  const iso = (starts: readonly string[], after: string, zone: string) => nextWindowStart(starts, new Date(after), zone)?.toISOString();

  test('the next start after the instant, today or tomorrow, in the zone', () => {
    // 03:00 in Zurich in winter (+01:00): the next switch is 08:00, 07:00Z
    expect(iso(['08:00', '20:00'], '2026-11-26T02:00:00Z', 'Europe/Zurich')).toBe('2026-11-26T07:00:00.000Z');
    // 21:00: tomorrow's 08:00
    expect(iso(['20:00', '08:00'], '2026-11-26T20:00:00Z', 'Europe/Zurich')).toBe('2026-11-27T07:00:00.000Z');
    // the same start twice counts once
    expect(iso(['08:00', '08:00'], '2026-11-26T12:00:00Z', 'UTC')).toBe('2026-11-27T08:00:00.000Z');
  });

  test('strictly after: at a boundary, the one after it', () => {
    expect(iso(['08:00', '20:00'], '2026-11-26T07:00:00Z', 'Europe/Zurich')).toBe('2026-11-26T19:00:00.000Z');
    expect(iso(['08:00', '20:00'], '2026-11-26T06:59:59.999Z', 'Europe/Zurich')).toBe('2026-11-26T07:00:00.000Z');
  });

  test('none without starts', () => {
    expect(nextWindowStart([], new Date('2026-11-26T02:00:00Z'), 'Europe/Zurich')).toBeUndefined();
  });

  test('bad input throws as the schedule does', () => {
    expect(() => nextWindowStart(['8:00'], new Date('2026-11-26T02:00:00Z'), 'UTC')).toThrow(/is not valid/);
    expect(() => nextWindowStart(['08:00'], new Date('x'), 'UTC')).toThrow(/invalid Date/);
    expect(() => nextWindowStart(['08:00'], new Date(0), 'Mars/Olympus')).toThrow(/Unknown time zone/);
  });

  test('spring forward in Zurich (2026-03-29, 02:00 CET becomes 03:00 CEST): the day\'s starts are an hour earlier in UTC', () => {
    // 21:00 CET the evening before: 08:00 is now CEST, 06:00Z, not 07:00Z
    expect(iso(['08:00', '20:00'], '2026-03-28T20:00:00Z', 'Europe/Zurich')).toBe('2026-03-29T06:00:00.000Z');
    // 02:30 never happens that night: it takes effect at 03:00 CEST, 01:00Z
    expect(iso(['02:30', '08:00'], '2026-03-28T23:00:00Z', 'Europe/Zurich')).toBe('2026-03-29T01:00:00.000Z');
    expect(iso(['02:30', '08:00'], '2026-03-29T01:00:00Z', 'Europe/Zurich')).toBe('2026-03-29T06:00:00.000Z');
    // two starts in the gap are one boundary
    expect(iso(['02:10', '02:40', '08:00'], '2026-03-29T01:00:00Z', 'Europe/Zurich')).toBe('2026-03-29T06:00:00.000Z');
  });

  test('fall back in Zurich (2026-10-25, 03:00 CEST becomes 02:00 CET): a repeated start is a boundary once', () => {
    // 02:30 happens at 00:30Z and again at 01:30Z; only the first switches
    expect(iso(['02:30', '08:00'], '2026-10-24T22:00:00Z', 'Europe/Zurich')).toBe('2026-10-25T00:30:00.000Z');
    expect(iso(['02:30', '08:00'], '2026-10-25T00:30:00Z', 'Europe/Zurich')).toBe('2026-10-25T07:00:00.000Z');
    // 20:00 CEST on the 24th is 18:00Z; 08:00 CET on the 25th is 07:00Z
    expect(iso(['08:00', '20:00'], '2026-10-24T17:00:00Z', 'Europe/Zurich')).toBe('2026-10-24T18:00:00.000Z');
    expect(iso(['08:00', '20:00'], '2026-10-24T18:00:00Z', 'Europe/Zurich')).toBe('2026-10-25T07:00:00.000Z');
  });

  test('the boundaries it gives, one after another, are exactly where the window in force changes (minute by minute)', () => {
    const MINUTE = 60_000;
    const hhmm = (m: number) => `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
    const days: [string, string][] = [
      ['UTC', '2026-10-25'],
      ['Europe/Zurich', '2026-03-29'],
      ['Europe/Zurich', '2026-10-25'],
      ['America/New_York', '2026-11-01'],
      ['Australia/Lord_Howe', '2026-04-05'],
    ];
    fc.assert(
      fc.property(
        fc.constantFrom(...days),
        fc.uniqueArray(fc.integer({ min: 0, max: 24 * 4 - 1 }).map((q) => q * 15), { minLength: 2, maxLength: 5 }),
        ([zone, day], minutes) => {
          const [first, ...rest] = minutes;
          const s = rest.reduce((acc, m, i) => acc.and(hhmm(m), i + 2), Schedule.from(hhmm(first), 1));
          const from = Date.parse(`${day}T00:00:00Z`) - 24 * 60 * MINUTE;
          const to = from + 72 * 60 * MINUTE;
          const switches: number[] = [];
          let last = s.windowAt(new Date(from), zone).start;
          for (let t = from + MINUTE; t <= to; t += MINUTE) {
            const start = s.windowAt(new Date(t), zone).start;
            if (start !== last) switches.push(t);
            last = start;
          }
          const chained: number[] = [];
          for (let t = nextWindowStart(minutes.map(hhmm), new Date(from), zone)!.getTime(); t <= to; t = nextWindowStart(minutes.map(hhmm), new Date(t), zone)!.getTime()) {
            chained.push(t);
          }
          expect(chained.map((t) => new Date(t).toISOString())).toEqual(switches.map((t) => new Date(t).toISOString()));
        },
      ),
      { numRuns: 30 },
    );
  }, 30_000);
});

describe('localMinuteOfDay', () => {
  test('reads the wall clock of the zone', () => {
    expect(localMinuteOfDay(new Date('2024-01-15T23:30:00Z'), 'Asia/Kolkata')).toBe(5 * 60); // 05:00 IST next day
    expect(localMinuteOfDay(new Date('2024-01-15T00:00:00Z'), 'UTC')).toBe(0);
  });
});
