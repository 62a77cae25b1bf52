/**
 * The whole decision a cluster makes at synth, as one pure function: its spec and VMs in,
 * placements, admission control, warnings and problems out. The constructs only gather the input
 * and carry the decisions out (bind VMs, write the lock, write the report).
 */
import { admissionControl, AdmissionResult, describeScenario } from './admission';
import { ClusterSpec, HostState, PlacementLock, PlacementResult, Problem, VmSpec } from './model';
import { place } from './placement';
import { standbyCandidates, standbyHosts } from './power';

export interface ClusterPlanInput {
  readonly spec: ClusterSpec;
  readonly vms: readonly VmSpec[];
  /** The committed placement lock, if there is one. */
  readonly lock?: PlacementLock;
  /** Place everything afresh, ignoring the lock. */
  readonly rebalance: boolean;
}

export interface ClusterPlan {
  readonly placement: PlacementResult;
  readonly admission: AdmissionResult;
  /** Active hosts that run no VM in the current window. */
  readonly standbyCandidates: readonly string[];
  /** Set when hosts are down or drained: what the cluster still tolerates. */
  readonly degraded?: string;
  /** How the lock changes (`vm: h1 → h2; …`), or undefined when it stays as it is. */
  readonly lockChange?: string;
  /** Rules that cannot be met: synth must fail. Each names what is wrong and how to fix it. */
  readonly problems: readonly string[];
  /** Rules relaxed, VMs moved, tolerance lost: shown, synth goes on. */
  readonly warnings: readonly string[];
}

/** Plans a cluster: placement, then admission control for the failures it can still absorb. */
export function planCluster(input: ClusterPlanInput): ClusterPlan {
  const { spec, vms } = input;
  const placement = place(spec, vms, { lock: input.lock, rebalance: input.rebalance });
  // Hosts already down (failed) or drained (maintenance) use up failure tolerance: a degraded
  // cluster is checked only for the failures it can still absorb, and says so.
  const down = spec.hosts.filter((h) => h.state === HostState.FAILED || h.state === HostState.MAINTENANCE);
  const remaining = Math.max(0, spec.failuresToTolerate - down.length);
  const degraded =
    down.length > 0 && spec.failuresToTolerate > 0
      ? `cluster is degraded: ${down.map((h) => `${h.name} (${h.state})`).join(', ')} down; it now tolerates ${remaining} further host failure(s) instead of ${spec.failuresToTolerate}`
      : undefined;
  const admission = admissionControl({ ...spec, failuresToTolerate: remaining }, vms, placement.placements);
  const change = describeLockChange(input.lock, placement.lock);
  // A spare that does not count may be the fix, so a failing scenario says why it does not.
  const uncounted = standbyHosts(spec).filter((s) => !s.counts);
  const spares = uncounted.length > 0 ? `; not counted as capacity: ${uncounted.map((s) => `standby host ${s.name} (${s.reason})`).join(', ')}` : '';
  return {
    placement,
    admission,
    standbyCandidates: standbyCandidates(spec, vms, placement.placements),
    degraded,
    lockChange: change === '' ? undefined : change,
    problems: [...placement.problems.map(formatProblem), ...admission.scenarios.map((s) => describeScenario(s) + spares)],
    warnings: [
      ...(degraded ? [degraded] : []),
      ...placement.warnings.map(formatProblem),
      ...placement.moves.map((m) => `VM ${m.vm} moves from host ${m.from} to ${m.to}: ${m.reason}`),
      ...admission.warnings.map(formatProblem),
    ],
  };
}

/** `[rule] subject: message (hint)`. */
export function formatProblem(p: Problem): string {
  return `[${p.rule}] ${p.subject}: ${p.message}${p.hint ? ` (${p.hint})` : ''}`;
}

/** The changes from one lock to the next, at most ten named; empty when there are none. */
export function describeLockChange(before: PlacementLock | undefined, after: PlacementLock): string {
  const old = before?.placements ?? {};
  const changes: string[] = [];
  for (const [vm, host] of Object.entries(after.placements)) {
    if (!Object.prototype.hasOwnProperty.call(old, vm)) changes.push(`${vm} → ${host} (new)`);
    else if (old[vm] !== host) changes.push(`${vm}: ${old[vm]} → ${host}`);
  }
  for (const vm of Object.keys(old)) if (!Object.prototype.hasOwnProperty.call(after.placements, vm)) changes.push(`${vm} removed`);
  return changes.slice(0, 10).join('; ') + (changes.length > 10 ? `; and ${changes.length - 10} more` : '');
}
