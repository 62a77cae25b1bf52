/** Plain-data fixtures of reconcile's pure decisions: a VM as configured, as running, a destination, a host's inventory. */
import { DesiredDomain, DesiredLayout, DestinationFacts, HostInventory, KnownState, RunningDomain } from '../../lib/ops/reconcile';

export const seed = (vm: string) => ({ volume: `${vm}-cloudinit-0123456789abcdef.iso`, address: `libvirt_volume.${vm}_CloudInit`, isoFile: 'cloud-init/0123456789abcdef.iso' });
export const vm = (name: string, host: string, over: Partial<DesiredDomain> = {}): DesiredDomain => ({
  name,
  host,
  address: `libvirt_domain.${name}`,
  vcpus: 2,
  currentVcpus: 1,
  memoryMiB: 512,
  currentMemoryMiB: 256,
  stateValues: { vcpu_current: 1, current_memory: 256, current_memory_unit: 'MiB' },
  nics: [{ kind: 'bridge', source: 'br0' }],
  seed: seed(name),
  ...over,
});
export const running = (name: string, over: Partial<RunningDomain> = {}): RunningDomain => ({
  name,
  vcpus: 2,
  currentVcpus: 1,
  memoryMiB: 512,
  currentMemoryMiB: 256,
  disks: [
    { pool: 'shared', volume: `${name}-boot.qcow2`, readOnly: false, target: 'vda' },
    { pool: 'cdktf-local', volume: `${name}-cloudinit-0123456789abcdef.iso`, readOnly: true, target: 'sda' },
  ],
  nics: [{ kind: 'bridge', source: 'br0' }],
  ...over,
});
export const destination = (host: string, over: Partial<DestinationFacts> = {}): DestinationFacts => ({
  host,
  reachable: true,
  activeNetworks: new Set(),
  devices: new Set(['br0']),
  localPoolRunning: true,
  runningPools: new Set(['shared', 'cdktf-local']),
  ...over,
});

export function layout(vms: DesiredDomain[]): DesiredLayout {
  return {
    domains: new Map(vms.map((v) => [v.name, v.host])),
    pools: new Map([['h1', new Set(['cdktf-local'])], ['h2', new Set(['cdktf-local'])]]),
    networks: new Map(),
    sitePools: new Set(['shared']),
    vms: new Map(vms.map((v) => [v.name, v])),
  };
}
export const state: KnownState = {
  domainNames: new Set(['mail-1', 'mail-2']),
  domainIds: new Set(['u1', 'u2']),
  poolIds: new Set(['p1', 'p2']),
  networkIds: new Set(),
  volumePaths: new Set(['/img/h2/mail-1-cloudinit-0123456789abcdef.iso', '/img/h2/mail-2-cloudinit-0123456789abcdef.iso']),
  attributes: new Map([
    ['libvirt_domain.mail-1', { vcpu_current: 1, current_memory: 256, current_memory_unit: 'MiB' }],
    ['libvirt_domain.mail-2', { vcpu_current: 1, current_memory: 256, current_memory_unit: 'MiB' }],
  ]),
};
export function host(name: string, domains: RunningDomain[], over: Partial<HostInventory> = {}): HostInventory {
  return {
    host: name,
    domains: domains.map((d) => ({ name: d.name, uuid: d.name === 'mail-1' ? 'u1' : 'u2', running: true })),
    localVolumes: domains.map((d) => ({ name: `${d.name}-cloudinit-0123456789abcdef.iso`, path: `/img/${name}/${d.name}-cloudinit-0123456789abcdef.iso` })),
    pools: [{ name: 'cdktf-local', uuid: name === 'h1' ? 'p1' : 'p2', running: true }, { name: 'shared', uuid: 's', running: true }],
    networks: [],
    running: new Map(domains.map((d) => [d.name, d])),
    destination: destination(name),
    seedIsoExists: () => true,
    ...over,
  };
}
export const summary = (actions: { action: string; host: string; target: string; destination?: string }[]) =>
  actions.map((a) => `${a.action} ${a.host}:${a.target}${a.destination ? ` → ${a.destination}` : ''}`);
