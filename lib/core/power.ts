import { describeSeconds as seconds } from './duration';
import { ClusterSpec, HostState, VmSpec, compareNames, lookup } from './model';

/**
 * Active hosts that run no VM in the current schedule window, sorted by name: they could be
 * powered down. Off-window replicas only hold a reservation, so they do not keep a host awake;
 * note that declaring such a host `standby` makes placement move those reservations elsewhere.
 */
export function standbyCandidates(
  cluster: ClusterSpec,
  vms: readonly VmSpec[],
  placements: Readonly<Record<string, string>>,
): string[] {
  const busy = new Set<string>();
  for (const vm of vms) {
    const host = lookup(placements, vm.name);
    if (vm.active && host !== undefined) busy.add(host);
  }
  return [...new Set(cluster.hosts.filter((h) => h.state === HostState.ACTIVE && !busy.has(h.name)).map((h) => h.name))].sort(compareNames);
}

/** A host in standby, and whether admission control counts it as capacity for failures. */
export interface StandbyHost {
  readonly name: string;
  /** Seconds from power-on until libvirt answers, when known. */
  readonly wakeSeconds?: number;
  /** True when it wakes within the cluster's recovery time: a failover can wake it and restart VMs there. */
  readonly counts: boolean;
  /** Why it counts or not, for the report, e.g. `wakes in 60 s, within the recovery time of 2 min`. */
  readonly reason: string;
}

/**
 * The cluster's hosts in standby, sorted by name, each with whether it counts as capacity for
 * failure scenarios: only when its wake time is known and no longer than the recovery time, since
 * a failover must power it on before anything restarts there.
 */
export function standbyHosts(cluster: Pick<ClusterSpec, 'hosts' | 'recoverySeconds'>): StandbyHost[] {
  const recovery = cluster.recoverySeconds;
  const seen = new Set<string>();
  const out: StandbyHost[] = [];
  for (const h of [...cluster.hosts].sort((a, b) => compareNames(a.name, b.name))) {
    if (h.state !== HostState.STANDBY || seen.has(h.name)) continue;
    seen.add(h.name);
    const wake = h.wakeSeconds;
    let counts = false;
    let reason: string;
    if (wake === undefined) reason = 'no wake time is known: give the host a wakeTime to count it';
    else if (recovery === undefined) reason = `wakes in ${seconds(wake)}, but the cluster has no recovery time`;
    else if (wake <= recovery) {
      counts = true;
      reason = `wakes in ${seconds(wake)}, within the recovery time of ${seconds(recovery)}`;
    } else reason = `wakes in ${seconds(wake)}, longer than the recovery time of ${seconds(recovery)}: a failover would not wait for it`;
    out.push({ name: h.name, ...(wake === undefined ? {} : { wakeSeconds: wake }), counts, reason });
  }
  return out;
}
