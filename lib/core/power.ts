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
