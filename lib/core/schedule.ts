/** One window of a schedule: from `start` (local time) until the next window starts. */
export interface ScheduleWindow {
  /** Local start time, 'HH:MM'. */
  readonly start: string;
  /** Minutes after local midnight. */
  readonly startMinute: number;
  readonly replicas: number;
}

const HH_MM = /^([01]\d|2[0-3]):([0-5]\d)$/;

/**
 * How many replicas a failover group runs over the day, as windows in local time. A window lasts
 * until the next one starts and the last one wraps over midnight, so every minute is covered.
 * Immutable: `and` returns a new schedule.
 *
 * Windows switch at instants, not at readings of the wall clock, so daylight saving time never
 * flips a replica twice. A start time that occurs twice (the hour repeated when clocks fall back)
 * takes effect at its first occurrence and stays in force through the repeat. A start time that
 * does not occur (the hour skipped when clocks spring forward) takes effect at the first instant
 * after the gap; when several starts fall in one gap, the latest of them is the one in force.
 *
 * @example
 * // three replicas in business hours, two at night
 * const replicas = Schedule.from('08:00', 3).and('20:00', 2);
 * replicas.replicasAt(new Date(), 'Europe/Zurich');
 */
export class Schedule {
  /** The same number of replicas all day. */
  public static constant(replicas: number): Schedule {
    return Schedule.from('00:00', replicas);
  }

  /** A schedule whose first window starts at `start` ('HH:MM', 24-hour local time). */
  public static from(start: string, replicas: number): Schedule {
    return new Schedule([window(start, replicas)]);
  }

  private readonly sorted: readonly ScheduleWindow[];

  private constructor(windows: readonly ScheduleWindow[]) {
    this.sorted = [...windows].sort((a, b) => a.startMinute - b.startMinute);
  }

  /** This schedule plus a window starting at `start`. */
  public and(start: string, replicas: number): Schedule {
    const w = window(start, replicas);
    if (this.sorted.some((x) => x.startMinute === w.startMinute)) {
      throw new Error(`Schedule ${this} already has a window starting at ${w.start}; give each window its own start time`);
    }
    return new Schedule([...this.sorted, w]);
  }

  /** The windows, earliest start first. */
  public windows(): readonly ScheduleWindow[] {
    return this.sorted;
  }

  /** The peak: what placement reserves room for, so no window switch ever moves a VM. */
  public maxReplicas(): number {
    return Math.max(...this.sorted.map((w) => w.replicas));
  }

  public minReplicas(): number {
    return Math.min(...this.sorted.map((w) => w.replicas));
  }

  /**
   * The window in force at `instant` in `timeZone` (an IANA name such as 'Europe/Zurich'): the one
   * whose start, today or yesterday (for the window that wraps over midnight), is the latest
   * instant not after `instant`, by the daylight saving rules in the class comment.
   */
  public windowAt(instant: Date, timeZone: string): ScheduleWindow {
    const t = instant.getTime();
    if (Number.isNaN(t)) throw new Error('Schedule: the instant is an invalid Date');
    const today = wallClock(t, timeZone);
    let current = this.sorted[this.sorted.length - 1];
    let since = -Infinity;
    for (const dayOffset of [-1, 0]) {
      const day = Date.UTC(today.year, today.month - 1, today.day + dayOffset);
      for (const w of this.sorted) {
        const start = startInstant(day, w.startMinute, timeZone);
        // `>=`: of starts that fall on one instant (a spring-forward gap), the later window wins
        if (start <= t && start >= since) [current, since] = [w, start];
      }
    }
    return current;
  }

  public replicasAt(instant: Date, timeZone: string): number {
    return this.windowAt(instant, timeZone).replicas;
  }

  /** E.g. `08:00 → 3, 20:00 → 2`. */
  public toString(): string {
    return this.sorted.map((w) => `${w.start} → ${w.replicas}`).join(', ');
  }
}

function window(start: string, replicas: number): ScheduleWindow {
  const m = HH_MM.exec(start);
  if (!m) throw new Error(`Schedule start time '${start}' is not valid; use 24-hour 'HH:MM' such as '08:00' or '20:30'`);
  if (!Number.isSafeInteger(replicas) || replicas < 0) {
    throw new Error(`Schedule window at ${start} has ${replicas} replicas; use a whole number, 0 or more`);
  }
  return { start, startMinute: Number(m[1]) * 60 + Number(m[2]), replicas };
}

/**
 * The first instant strictly after `after` at which one of the local start times `starts`
 * ('HH:MM') takes effect in `timeZone`, by the daylight saving rules of {@link Schedule}: a start
 * repeated when clocks fall back takes effect at its first occurrence only, and one skipped when
 * they spring forward at the first instant after the gap. Undefined when `starts` is empty.
 *
 * @example
 * // the next switch of the mail schedule, for a controller to synthesize at
 * nextWindowStart(['08:00', '20:00'], new Date('2026-03-29T00:30:00Z'), 'Europe/Zurich'); // 2026-03-29T06:00:00Z (08:00 CEST)
 */
export function nextWindowStart(starts: readonly string[], after: Date, timeZone: string): Date | undefined {
  const t = after.getTime();
  if (Number.isNaN(t)) throw new Error('Schedule: the instant is an invalid Date');
  const minutes = [...new Set(starts.map((s) => window(s, 0).startMinute))];
  if (minutes.length === 0) return undefined;
  const today = wallClock(t, timeZone);
  let next = Infinity;
  // Today's and tomorrow's starts always hold one ahead; the day after covers a zone that skips a date.
  for (const dayOffset of [0, 1, 2]) {
    const day = Date.UTC(today.year, today.month - 1, today.day + dayOffset);
    for (const minute of minutes) {
      const start = startInstant(day, minute, timeZone);
      if (start > t && start < next) next = start;
    }
  }
  return new Date(next);
}

/** Whether `timeZone` is an IANA time zone this runtime knows, such as 'Europe/Zurich'. */
export function isTimeZone(timeZone: string): boolean {
  try {
    wallClock(0, timeZone);
    return true;
  } catch {
    return false;
  }
}

/** Minutes after local midnight of `instant` in an IANA time zone, daylight saving included. */
export function localMinuteOfDay(instant: Date, timeZone: string): number {
  if (Number.isNaN(instant.getTime())) throw new Error('Schedule: the instant is an invalid Date');
  const w = wallClock(instant.getTime(), timeZone);
  return w.hour * 60 + w.minute;
}

interface WallClock {
  readonly year: number;
  /** 1 to 12 */
  readonly month: number;
  readonly day: number;
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const formatters = new Map<string, Intl.DateTimeFormat>();

/** What a clock in the zone shows at instant `t` (ms since the epoch). */
function wallClock(t: number, timeZone: string): WallClock {
  let f = formatters.get(timeZone);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat('en-US', {
        timeZone,
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
        hourCycle: 'h23',
      });
    } catch {
      throw new Error(`Unknown time zone '${timeZone}'; use an IANA name such as 'Europe/Zurich' or 'UTC'`);
    }
    formatters.set(timeZone, f);
  }
  const part: Record<string, number> = {};
  for (const p of f.formatToParts(t)) if (p.type !== 'literal') part[p.type] = Number(p.value);
  return { year: part.year, month: part.month, day: part.day, hour: part.hour % 24, minute: part.minute, second: part.second };
}

/** The zone's offset from UTC at instant `t`, in ms, to the second. */
function offsetAt(t: number, timeZone: string): number {
  const w = wallClock(t, timeZone);
  return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second) - (t - (((t % 1000) + 1000) % 1000));
}

const startCache = new Map<string, number>();

/**
 * The instant a window starting at `minute` takes effect on the local date `day` (midnight UTC of
 * that date, in ms): the first occurrence of that wall-clock time, or, when the clocks skip it,
 * the first instant after the gap. Assumes at most one change of offset within a day of it, as
 * in every zone in use.
 */
function startInstant(day: number, minute: number, timeZone: string): number {
  const key = `${timeZone} ${day} ${minute}`;
  const cached = startCache.get(key);
  if (cached !== undefined) return cached;
  const wall = day + minute * 60_000; // the wall-clock time, read as if it were UTC
  const before = offsetAt(wall - DAY_MS, timeZone);
  const after = offsetAt(wall + DAY_MS, timeZone);
  const occurrences = [...new Set([before, after])].map((o) => wall - o).filter((t) => offsetAt(t, timeZone) === wall - t);
  let start: number;
  if (occurrences.length > 0) start = Math.min(...occurrences);
  else {
    // Skipped: the offset changes from `before` to `after` inside (wall − after, wall − before]; find that second.
    let lo = wall - after;
    let hi = wall - before;
    while (hi - lo > 1000) {
      const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
      if (offsetAt(mid, timeZone) === before) lo = mid;
      else hi = mid;
    }
    start = hi;
  }
  if (startCache.size >= 10_000) startCache.clear();
  startCache.set(key, start);
  return start;
}
