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

  /** The window in force at `instant` in `timeZone` (an IANA name such as 'Europe/Zurich'). */
  public windowAt(instant: Date, timeZone: string): ScheduleWindow {
    const minute = localMinuteOfDay(instant, timeZone);
    let current = this.sorted[this.sorted.length - 1]; // before the first start, yesterday's last window runs on
    for (const w of this.sorted) if (w.startMinute <= minute) current = w;
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

const formatters = new Map<string, Intl.DateTimeFormat>();

/** Minutes after local midnight of `instant` in an IANA time zone, daylight saving included. */
export function localMinuteOfDay(instant: Date, timeZone: string): number {
  if (Number.isNaN(instant.getTime())) throw new Error('Schedule: the instant is an invalid Date');
  let f = formatters.get(timeZone);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    } catch {
      throw new Error(`Unknown time zone '${timeZone}'; use an IANA name such as 'Europe/Zurich' or 'UTC'`);
    }
    formatters.set(timeZone, f);
  }
  let hour = 0;
  let minute = 0;
  for (const p of f.formatToParts(instant)) {
    if (p.type === 'hour') hour = Number(p.value) % 24;
    else if (p.type === 'minute') minute = Number(p.value);
  }
  return hour * 60 + minute;
}
