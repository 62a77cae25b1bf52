/**
 * controller.json: what a controller watching the hosts needs to know about each cluster of a
 * stack, written next to the stack's JSON at synth. Plain data in, bytes out: the same input gives
 * the same bytes.
 */
import { ClusterSpec, HostState, UnattendedAction, compareNames } from './model';
import { isTimeZone, nextWindowStart, ScheduleWindow } from './schedule';

/** The file's name in the stack's output folder (`cdktf.out/stacks/<stack>/`). */
export const CONTROLLER_FILE = 'controller.json';

/** A host as the controller sees it. */
export interface ControllerHost {
  readonly name: string;
  /** Its state in this synth, after any context override. */
  readonly state: HostState;
  /** Seconds from power-on until libvirt answers; left out when unknown. */
  readonly wakeSeconds?: number;
}

/** One cluster of the stack, as the controller sees it. */
export interface ControllerCluster {
  /** The cluster's construct id. */
  readonly id: string;
  /** IANA time zone of its schedule windows. */
  readonly timeZone: string;
  /**
   * The instant this synth evaluated the schedules for, ISO 8601 in UTC, when it was pinned; null
   * when it was the time of synth (so synths within one window write the same bytes).
   */
  readonly instant: string | null;
  /** The unattended actions turned on, sorted; empty: the controller only watches. */
  readonly unattended: readonly UnattendedAction[];
  /** Distinct local start times ('HH:MM', sorted) of the failover groups' schedules that switch windows. */
  readonly windowStarts: readonly string[];
  /** The first window boundary after `instant`, ISO 8601 in UTC; null when no schedule switches. */
  readonly nextWindowStart: string | null;
  /** Every host of the cluster, by name. */
  readonly hosts: readonly ControllerHost[];
  /** Active hosts that run no VM in the current window: they could be powered down. */
  readonly standbyCandidates: readonly string[];
  /** Seconds a failover may take; standby hosts that wake within it count as capacity. */
  readonly recoverySeconds: number;
  /**
   * Host failures the cluster is sized for: a controller never fences more of its hosts than this
   * in one incident without a person. Absent in files written before it: read as 1, the default.
   */
  readonly failuresToTolerate?: number;
}

/** The whole file. */
export interface ControllerFile {
  readonly version: 1;
  /** The stack's name: its folder under `cdktf.out/stacks/`. */
  readonly stack: string;
  /** Sorted by id. */
  readonly clusters: readonly ControllerCluster[];
}

export interface ControllerClusterInput {
  readonly id: string;
  /** The cluster's hosts, as planned. */
  readonly spec: Pick<ClusterSpec, 'hosts'>;
  /** Seconds a failover may take. */
  readonly recoverySeconds: number;
  /**
   * Host failures the cluster is sized for.
   * @default - left out of the file (read as 1)
   */
  readonly failuresToTolerate?: number;
  readonly timeZone: string;
  readonly instant: Date;
  /**
   * Whether `instant` was pinned (a prop or context value) rather than the time of synth.
   * @default true
   */
  readonly instantPinned?: boolean;
  readonly unattended: readonly UnattendedAction[];
  /** The windows of each failover group's schedule. */
  readonly schedules: readonly (readonly ScheduleWindow[])[];
  readonly standbyCandidates: readonly string[];
}

/**
 * A cluster's entry. A schedule of one window never switches, so only schedules of two or more
 * windows give window starts. The next boundary uses the schedules' daylight saving rules; it is
 * null when the time zone is unknown (synth reports that).
 */
export function controllerCluster(input: ControllerClusterInput): ControllerCluster {
  const windowStarts = [...new Set(input.schedules.filter((s) => s.length > 1).flatMap((s) => s.map((w) => w.start)))].sort(compareNames);
  const next = isTimeZone(input.timeZone) ? nextWindowStart(windowStarts, input.instant, input.timeZone) : undefined;
  const hosts = new Map<string, ControllerHost>();
  for (const h of input.spec.hosts) {
    if (!hosts.has(h.name)) hosts.set(h.name, { name: h.name, state: h.state, ...(h.wakeSeconds === undefined ? {} : { wakeSeconds: h.wakeSeconds }) });
  }
  return {
    id: input.id,
    timeZone: input.timeZone,
    instant: input.instantPinned === false ? null : input.instant.toISOString(),
    unattended: [...new Set(input.unattended)].sort(compareNames),
    windowStarts,
    nextWindowStart: next ? next.toISOString() : null,
    hosts: [...hosts.values()].sort((a, b) => compareNames(a.name, b.name)),
    standbyCandidates: [...input.standbyCandidates].sort(compareNames),
    recoverySeconds: input.recoverySeconds,
    ...(input.failuresToTolerate === undefined ? {} : { failuresToTolerate: input.failuresToTolerate }),
  };
}

/** The file's text: indented JSON with clusters sorted by id, ending in a newline. */
export function renderControllerFile(stack: string, clusters: readonly ControllerCluster[]): string {
  const file: ControllerFile = { version: 1, stack, clusters: [...clusters].sort((a, b) => compareNames(a.id, b.id)) };
  return `${JSON.stringify(file, null, 2)}\n`;
}

/**
 * The unattended actions named by `value` (a list of names, or one comma-separated string as a
 * context value holds it), and a problem for each name that is not one, naming `source`.
 */
export function parseUnattendedActions(value: unknown, source: string): { readonly actions: UnattendedAction[]; readonly problems: string[] } {
  const valid = Object.values(UnattendedAction) as string[];
  const list = typeof value === 'string' ? value.split(',') : Array.isArray(value) ? value : undefined;
  if (list === undefined) {
    return {
      actions: [],
      problems: [`${source} is ${JSON.stringify(value)}; give unattended action names, comma-separated or as a list: ${valid.join(', ')}`],
    };
  }
  const actions = new Set<UnattendedAction>();
  const problems: string[] = [];
  for (const item of list) {
    const name = typeof item === 'string' ? item.trim() : item;
    if (name === '') continue;
    if (typeof name === 'string' && valid.includes(name)) actions.add(name as UnattendedAction);
    else problems.push(`${source} names ${JSON.stringify(name)}, which is not an unattended action; use one or more of ${valid.join(', ')}`);
  }
  return { actions: [...actions].sort(compareNames), problems };
}
