import { Duration } from '../../lib/core/duration';
import {
  applyStateUpdates, BLOCKING_ACTIONS, DesiredDomain, DesiredLayout, desiredDomains, DestinationFacts, formatAction, freeMemoryMiB, HostInventory, KnownState,
  migrationProgress, missingSegments, parseJobInfo, planOperations, planResize, RunningDomain, runningDomain,
} from '../../lib/ops/reconcile';
import { parseReconcileArguments } from '../../lib/ops/cli';

const seed = (vm: string) => ({ volume: `${vm}-cloudinit-0123456789abcdef.iso`, address: `libvirt_volume.${vm}_CloudInit`, isoFile: 'cloud-init/0123456789abcdef.iso' });
const vm = (name: string, host: string, over: Partial<DesiredDomain> = {}): DesiredDomain => ({
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
const running = (name: string, over: Partial<RunningDomain> = {}): RunningDomain => ({
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
const destination = (host: string, over: Partial<DestinationFacts> = {}): DestinationFacts => ({
  host,
  reachable: true,
  activeNetworks: new Set(),
  devices: new Set(['br0']),
  localPoolRunning: true,
  runningPools: new Set(['shared', 'cdktf-local']),
  ...over,
});

function layout(vms: DesiredDomain[]): DesiredLayout {
  return {
    domains: new Map(vms.map((v) => [v.name, v.host])),
    pools: new Map([['h1', new Set(['cdktf-local'])], ['h2', new Set(['cdktf-local'])]]),
    networks: new Map(),
    sitePools: new Set(['shared']),
    vms: new Map(vms.map((v) => [v.name, v])),
  };
}
const state: KnownState = {
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
function host(name: string, domains: RunningDomain[], over: Partial<HostInventory> = {}): HostInventory {
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
const summary = (actions: { action: string; host: string; target: string; destination?: string }[]) =>
  actions.map((a) => `${a.action} ${a.host}:${a.target}${a.destination ? ` → ${a.destination}` : ''}`);

describe('moves: live, cold or refused', () => {
  test('a VM leaving a reachable host for a ready one is migrated live, after the pools are refreshed; its seed disk is not deleted by the tidying', () => {
    const actions = planOperations([host('h1', []), host('h2', [running('mail-1')])], layout([vm('mail-1', 'h1')]), state);
    expect(summary(actions)).toEqual(['refresh-pool h1:shared', 'refresh-pool h2:shared', 'migrate-domain h2:mail-1 → h1']);
    expect(actions[2].seed).toEqual(seed('mail-1'));
    expect(actions[2].reason).toBe('the configuration places mail-1 on h1; live: writable disks on shared storage, seed disk copied, bridge br0 there');
  });

  test.each([
    ['a writable disk in the local pool', { disks: [{ pool: 'cdktf-local', volume: 'mail-1-boot.qcow2', readOnly: false, target: 'vda' }] }, {}, 'disk vda is not on shared storage (pool cdktf-local)'],
    ['a disk that is not a pool volume', { disks: [{ readOnly: false, target: 'vdb' }] }, {}, 'disk vdb is not on shared storage (not a pool volume)'],
    ['no running local pool for the seed disk', {}, { localPoolRunning: false }, 'h1 has no running local pool for the seed disk'],
    ['a NIC on another network than the configuration', { nics: [{ kind: 'network' as const, source: 'h2-isolated' }] }, {},
      'NIC 1 is on network h2-isolated and the configuration puts it on bridge br0: a migration keeps it as it is'],
  ])('cold, ACPI first, with the reason, for %s', (_what, runningOver, destinationOver, reason) => {
    const actions = planOperations(
      [host('h1', [], { destination: destination('h1', destinationOver) }), host('h2', [running('mail-1', runningOver)])],
      layout([vm('mail-1', 'h1', { shutdownTimeout: Duration.seconds(90) })]),
      state,
    );
    expect(summary(actions)).toEqual([
      'refresh-pool h1:shared',
      'refresh-pool h2:shared',
      'cold-move h2:mail-1 → h1',
      'delete-volume h2:cdktf-local/mail-1-cloudinit-0123456789abcdef.iso',
    ]);
    expect(actions[2].reason).toBe(`the configuration places mail-1 on h1; cold: ${reason}; shut down through ACPI (up to 90 s), then created on h1 by the apply`);
    expect(actions[2].shutdownTimeout?.toSeconds()).toBe(90);
  });

  test.each([
    ['the bridge missing on the destination', {}, { devices: new Set<string>() }, true, 'bridge br0 is not on h1: create it there (docs/networking.md), or place mail-1 elsewhere'],
    ['the shared pool stopped on the destination', {}, { runningPools: new Set(['cdktf-local']) }, true, 'pool shared is not running on h1: start it there (virsh pool-start shared)'],
    ['the seed ISO missing from the stack folder', {}, {}, false, 'the seed disk cloud-init/0123456789abcdef.iso is not in the stack folder: synthesize the stack again (cdktf synth)'],
    ['too little free memory on the destination', {}, { freeMemoryMiB: 511.5 }, true,
      'h1 has 511 MiB of memory free (virsh nodememstats: free + buffers + cached) and mail-1 needs its ceiling of 512 MiB: free memory on h1, or place mail-1 elsewhere'],
    ['an unreachable destination', {}, { reachable: false, unreachableReason: 'Connection refused' }, true, 'h1 cannot be reached (Connection refused): bring its libvirtd back, or place mail-1 elsewhere'],
    // The NIC differs (a cold move) and the destination lacks the new bridge: still refused, never stopped.
    ['a cold move whose destination lacks the bridge', { nics: [{ kind: 'bridge' as const, source: 'br-old' }] }, { devices: new Set<string>() }, true,
      'bridge br0 is not on h1: create it there (docs/networking.md), or place mail-1 elsewhere'],
  ])('refused, the VM left running and its disks kept, for %s', (_what, runningOver, destinationOver, isoThere, reason) => {
    const actions = planOperations(
      [host('h1', [], { destination: destination('h1', destinationOver) }), host('h2', [running('mail-1', runningOver)], { seedIsoExists: () => isoThere })],
      layout([vm('mail-1', 'h1')]),
      state,
    );
    expect(summary(actions)).toEqual(['refresh-pool h1:shared', 'refresh-pool h2:shared', 'refuse-move h2:mail-1 → h1']);
    expect(actions[2].reason).toBe(`the configuration places mail-1 on h1; refused: ${reason}; mail-1 keeps running on h2`);
  });

  test('an unreachable destination refuses the move (it was a cold move that killed the VM); a network NIC needs the network active there to move live', () => {
    const refused = planOperations([host('h2', [running('mail-1')])], layout([vm('mail-1', 'h1')]), state);
    expect(summary(refused)).toEqual(['refresh-pool h2:shared', 'refuse-move h2:mail-1 → h1']);
    expect(refused[1].reason).toContain('refused: h1 cannot be reached: bring its libvirtd back, or place mail-1 elsewhere; mail-1 keeps running on h2');
    const onNetwork = { nics: [{ kind: 'network' as const, source: 'lan' }] };
    const desired = layout([vm('mail-1', 'h1', onNetwork)]);
    const inactive = planOperations([host('h1', []), host('h2', [running('mail-1', onNetwork)])], desired, state);
    expect(inactive.find((a) => a.target === 'mail-1')?.reason).toContain('cold: network lan is not active on h1');
    const active = planOperations([host('h1', [], { destination: destination('h1', { activeNetworks: new Set(['lan']) }) }), host('h2', [running('mail-1', onNetwork)])], desired, state);
    expect(summary(active)).toContain('migrate-domain h2:mail-1 → h1');
  });

  test('free memory counts the ceilings of every VM moving to the destination, in order: the one that no longer fits is refused, the others move', () => {
    const two = [running('mail-1'), running('mail-2')];
    const actions = planOperations(
      [host('h1', [], { destination: destination('h1', { freeMemoryMiB: 1000 }) }), host('h2', two)],
      layout([vm('mail-1', 'h1'), vm('mail-2', 'h1')]),
      state,
    );
    expect(summary(actions).filter((a) => !a.startsWith('refresh-pool'))).toEqual(['migrate-domain h2:mail-1 → h1', 'refuse-move h2:mail-2 → h1']);
    expect(actions.find((a) => a.action === 'refuse-move')?.reason).toContain('mail-2 needs its ceiling of 512 MiB after 512 MiB for the VMs moving there before it');
    expect(BLOCKING_ACTIONS.has('refuse-move')).toBe(true);
  });

  test('a running domain that goes without moving (not in the configuration) is stopped with the default ACPI timeout', () => {
    const actions = planOperations([host('h2', [running('mail-2')])], layout([]), { ...state, domainNames: new Set(['mail-2']) });
    const stop = actions.find((a) => a.action === 'stop-and-undefine-domain');
    expect(stop?.reason).toBe('mail-2 is not deployed in the configuration');
    expect(stop?.shutdownTimeout?.toSeconds()).toBe(30);
  });

  test('the dry run lists every move as live, cold or refused, with the reason', () => {
    const local = { disks: [{ pool: 'cdktf-local', volume: 'b-boot.qcow2', readOnly: false, target: 'vda' }] };
    const actions = planOperations(
      [host('h1', [], { destination: destination('h1', { devices: new Set(['br0']) }) }), host('h2', [running('mail-1'), running('mail-2', local)]), host('h3', [running('mail-3')])],
      layout([vm('mail-1', 'h1'), vm('mail-2', 'h1'), vm('mail-3', 'h4')]),
      { ...state, domainNames: new Set(['mail-1', 'mail-2', 'mail-3']) },
    );
    expect(actions.filter((a) => ['migrate-domain', 'cold-move', 'refuse-move'].includes(a.action)).map((a) => formatAction(a, true))).toEqual([
      'would migrate-domain h2:mail-1 → h1 (the configuration places mail-1 on h1; live: writable disks on shared storage, seed disk copied, bridge br0 there)',
      'refuse-move h3:mail-3 → h4 (the configuration places mail-3 on h4; refused: h4 cannot be reached: bring its libvirtd back, or place mail-3 elsewhere; mail-3 keeps running on h3)',
      'would cold-move h2:mail-2 → h1 (the configuration places mail-2 on h1; cold: disk vda is not on shared storage (pool cdktf-local); shut down through ACPI (up to 30 s), then created on h1 by the apply)',
    ]);
  });

  test("a seed disk left on the destination by an earlier attempt is kept for the migration; once the VM runs there the state learns its path", () => {
    const leftover = { localVolumes: [{ name: 'mail-1-cloudinit-0123456789abcdef.iso', path: '/img/h1/mail-1-cloudinit-0123456789abcdef.iso' }] };
    const before = planOperations([host('h1', [], leftover), host('h2', [running('mail-1')])], layout([vm('mail-1', 'h1')]), state);
    expect(summary(before).filter((a) => a.startsWith('delete-volume'))).toEqual([]);
    const after = planOperations([host('h1', [running('mail-1')]), host('h2', [])], layout([vm('mail-1', 'h1')]), state);
    expect(summary(after)).toEqual(['refresh-pool h1:shared', 'refresh-pool h2:shared', 'record-state h1:libvirt_volume.mail-1_CloudInit']);
    expect(after[2].attributes).toEqual({
      id: '/img/h1/mail-1-cloudinit-0123456789abcdef.iso', key: '/img/h1/mail-1-cloudinit-0123456789abcdef.iso',
      path: '/img/h1/mail-1-cloudinit-0123456789abcdef.iso', 'target.path': '/img/h1/mail-1-cloudinit-0123456789abcdef.iso',
    });
  });
});

describe('hot-add or restart on apply', () => {
  test('a raise within unchanged ceilings is hot-added', () => {
    expect(planResize(running('mail-1'), vm('mail-1', 'h1', { currentVcpus: 2, currentMemoryMiB: 384 }))).toEqual({
      kind: 'hot-add', vcpus: 2, memoryMiB: 384, reason: 'vCPUs 1 → 2 of 2, memory 256 → 384 of 512 MiB',
    });
    expect(planResize(running('mail-1'), vm('mail-1', 'h1', { currentMemoryMiB: 512 }))).toEqual({ kind: 'hot-add', vcpus: undefined, memoryMiB: 512, reason: 'memory 256 → 512 of 512 MiB' });
    expect(planResize(running('mail-1'), vm('mail-1', 'h1'))).toEqual({ kind: 'none' });
  });

  test.each([
    [{ memoryMiB: 1024, currentMemoryMiB: 384 }, 'memory ceiling 512 → 1024 MiB'],
    [{ vcpus: 4, currentVcpus: 2 }, 'vCPU ceiling 2 → 4'],
    [{ currentMemoryMiB: 128 }, 'memory lowered 256 → 128 MiB'],
    [{ vcpus: 2, currentVcpus: 1, memoryMiB: 256, currentMemoryMiB: 256 }, 'memory ceiling 512 → 256 MiB'],
  ])('%j is left to the apply, which restarts the VM: %s', (over, reason) => {
    expect(planResize(running('mail-1'), vm('mail-1', 'h1', over))).toEqual({ kind: 'restart-on-apply', reason });
  });

  test('a hot-add is followed by the state record, since provider 0.9.7 never reads vCPUs or memory back', () => {
    const known = { ...state, volumePaths: new Set(['/img/h1/mail-1-cloudinit-0123456789abcdef.iso']) };
    const wanted = vm('mail-1', 'h1', { currentVcpus: 2, currentMemoryMiB: 384, stateValues: { vcpu_current: 2, current_memory: 384, current_memory_unit: 'MiB' } });
    const actions = planOperations([host('h1', [running('mail-1')])], layout([wanted]), known).filter((a) => a.action !== 'refresh-pool');
    expect(summary(actions)).toEqual(['hot-add h1:mail-1', 'record-state h1:libvirt_domain.mail-1']);
    expect(actions[0]).toMatchObject({ vcpus: 2, memoryMiB: 384 });
    expect(actions[1].attributes).toEqual({ vcpu_current: 2, current_memory: 384, current_memory_unit: 'MiB' });
    // Already running so (a hot-add whose state push failed): only the record.
    const done = planOperations([host('h1', [running('mail-1', { currentVcpus: 2, currentMemoryMiB: 384 })])], layout([wanted]), known).filter((a) => a.action !== 'refresh-pool');
    expect(summary(done)).toEqual(['record-state h1:libvirt_domain.mail-1']);
    const restart = planOperations([host('h1', [running('mail-1')])], layout([vm('mail-1', 'h1', { memoryMiB: 1024 })]), known).filter((a) => a.action !== 'refresh-pool');
    expect(summary(restart)).toEqual(['restart-on-apply h1:mail-1']);
    expect(restart[0].reason).toBe('memory ceiling 512 → 1024 MiB');
  });
});

describe('segments', () => {
  test('every bridge and macvtap device missing on a reachable host is listed with the VMs that need it; networks and unreachable hosts are not checked', () => {
    const desired = layout([
      vm('mail-1', 'h1'),
      vm('mail-2', 'h2', { nics: [{ kind: 'bridge', source: 'br0' }, { kind: 'direct', source: 'eth1' }, { kind: 'network', source: 'lan' }] }),
      vm('mail-3', 'h2'),
      vm('db-1', 'h3', { nics: [{ kind: 'bridge', source: 'ovsbr0' }] }),
    ]);
    const present: Record<string, Set<string>> = { h1: new Set(['br0']), h2: new Set() };
    expect(summary(missingSegments(desired, (h) => present[h]))).toEqual(['missing-segment h2:bridge br0', 'missing-segment h2:device eth1 (macvtap)']);
    expect(missingSegments(desired, (h) => present[h]).map((a) => a.reason)).toEqual([
      'bridge br0 is not on this host; mail-2, mail-3 need it',
      'device eth1 (macvtap) is not on this host; mail-2 needs it',
    ]);
    expect(missingSegments(desired, () => new Set(['br0', 'eth1', 'ovsbr0']))).toEqual([]);
  });
});

describe('reading the configuration and libvirt', () => {
  test('a synthesized domain: ceilings, current values, NICs of each kind (references resolved) and its seed disk', () => {
    const json = {
      resource: {
        libvirt_network: { lan_h1: { name: 'lan', provider: 'libvirt.h1' } },
        libvirt_volume: { m_CloudInit: { name: 'm-cloudinit-0123456789abcdef.iso', pool: 'cdktf-local', create: { content: { url: 'cloud-init/0123456789abcdef.iso' } } } },
        libvirt_domain: {
          m_Resource: {
            name: 'm', provider: 'libvirt.h1', vcpu: 2, vcpu_current: 1, memory: 1, memory_unit: 'GiB', current_memory: 256, current_memory_unit: 'MiB', update: { shutdown: { timeout: 120 } },
            devices: {
              disks: [{ device: 'cdrom', source: { volume: { pool: '${libvirt_volume.m_CloudInit.pool}', volume: '${libvirt_volume.m_CloudInit.name}' } } }],
              interfaces: [
                { source: { network: { network: '${libvirt_network.lan_h1.name}' } } },
                { source: { bridge: { bridge: 'br0' } } },
                { source: { direct: { dev: 'eth0', mode: 'bridge' } } },
                { source: { bridge: { bridge: 'ovsbr0' } }, virtual_port: { params: { open_v_switch: { interface_id: 'x' } } }, vlan: { tags: [{ id: 42 }] } },
              ],
            },
          },
        },
      },
    };
    expect(desiredDomains(json).get('m')).toEqual({
      name: 'm', host: 'h1', address: 'libvirt_domain.m_Resource', vcpus: 2, currentVcpus: 1, memoryMiB: 1024, currentMemoryMiB: 256,
      stateValues: { vcpu_current: 1, current_memory: 256, current_memory_unit: 'MiB' },
      nics: [{ kind: 'network', source: 'lan' }, { kind: 'bridge', source: 'br0' }, { kind: 'direct', source: 'eth0' }, { kind: 'bridge', source: 'ovsbr0' }],
      seed: { volume: 'm-cloudinit-0123456789abcdef.iso', address: 'libvirt_volume.m_CloudInit', isoFile: 'cloud-init/0123456789abcdef.iso' },
      shutdownTimeout: Duration.seconds(120),
    });
    // Without update.shutdown.timeout the VM has none of its own: the 30 s default applies.
    delete (json.resource.libvirt_domain.m_Resource as { update?: unknown }).update;
    expect(desiredDomains(json).get('m')?.shutdownTimeout).toBeUndefined();
  });

  test('free memory by libvirt: free + buffers + cached of virsh nodememstats, in MiB', () => {
    expect(freeMemoryMiB('total  :             24576000 KiB\nfree   :              1048576 KiB\nbuffers:                 1024 KiB\ncached :               523264 KiB\n')).toBe(1536);
    expect(freeMemoryMiB('total  :             24576000 KiB\nfree   :              2048 KiB\n')).toBe(2);
    expect(freeMemoryMiB('')).toBeUndefined();
  });

  test("a migration's progress from domjobinfo; none before the job reports data", () => {
    const info = parseJobInfo('Job type:         Unbounded\nOperation:        Outgoing migration\nTime elapsed:     1843         ms\nData processed:   160.250 MiB\nData remaining:   96.000 MiB\nData total:       256.000 MiB\n');
    expect(migrationProgress(info)).toBe('63% (160 of 256 MiB copied, 96 MiB left)');
    expect(migrationProgress(parseJobInfo('Job type:         Unbounded\nTime elapsed:     5 ms\n'))).toBeUndefined();
    expect(migrationProgress(parseJobInfo('Data remaining:   1.5 GiB\nData total:       2 GiB\n'))).toBe('25% (512 of 2048 MiB copied, 1536 MiB left)');
  });

  test('a running domain from libvirt XML: the live ceilings and vCPUs, the persistent memory target (the live one is what a balloon without driver reports)', () => {
    const live = `<domain type='kvm'><memory unit='KiB'>524288</memory><currentMemory unit='KiB'>524288</currentMemory>
      <vcpu placement='static' current='1'>2</vcpu><devices>
      <disk type='volume' device='disk'><driver name='qemu' type='qcow2' cache='none'/><source pool='shared' volume='m-boot.qcow2' index='2'/><target dev='vda' bus='virtio'/></disk>
      <disk type='volume' device='cdrom'><source pool='cdktf-local' volume='m-seed.iso' index='1'/><target dev='sda' bus='sata'/><readonly/></disk>
      <interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><target dev='vnet0'/></interface>
      <interface type='network'><source network='lan' portid='x' bridge='virbr0'/></interface>
      <interface type='direct'><source dev='eth0' mode='bridge'/></interface></devices></domain>`;
    const persistent = "<domain><memory unit='KiB'>524288</memory><currentMemory unit='KiB'>262144</currentMemory><vcpu placement='static' current='1'>2</vcpu></domain>";
    expect(runningDomain('m', live, persistent)).toEqual({
      name: 'm', vcpus: 2, currentVcpus: 1, memoryMiB: 512, currentMemoryMiB: 256,
      disks: [{ pool: 'shared', volume: 'm-boot.qcow2', readOnly: false, target: 'vda' }, { pool: 'cdktf-local', volume: 'm-seed.iso', readOnly: true, target: 'sda' }],
      nics: [{ kind: 'bridge', source: 'br0' }, { kind: 'network', source: 'lan' }, { kind: 'direct', source: 'eth0' }],
    });
    expect(runningDomain('m', "<vcpu placement='static'>2</vcpu><memory unit='KiB'>524288</memory>", '<domain/>')).toMatchObject({ currentVcpus: 2, currentMemoryMiB: 512 });
  });

  test('state updates change only what differs, raise the serial, and name a missing resource', () => {
    const pulled = {
      serial: 7, lineage: 'l',
      resources: [{ mode: 'managed', type: 'libvirt_volume', name: 'seed', instances: [{ attributes: { id: '/a/x.iso', key: '/a/x.iso', path: '/a/x.iso', target: null } }] }],
    };
    const next = applyStateUpdates(pulled, [{ address: 'libvirt_volume.seed', attributes: { id: '/b/x.iso', key: '/b/x.iso', path: '/b/x.iso', 'target.path': '/b/x.iso' }, reason: '' }]);
    expect(next.serial).toBe(8);
    expect(next.lineage).toBe('l');
    expect(next.resources[0].instances[0].attributes).toEqual({ id: '/b/x.iso', key: '/b/x.iso', path: '/b/x.iso', target: null });
    expect(pulled.resources[0].instances[0].attributes.id).toBe('/a/x.iso');
    expect(applyStateUpdates(next, [{ address: 'libvirt_volume.seed', attributes: { id: '/b/x.iso' }, reason: '' }])).toBeUndefined();
    expect(() => applyStateUpdates(pulled, [{ address: 'libvirt_domain.gone', attributes: {}, reason: '' }])).toThrow('the Terraform state has no libvirt_domain.gone');
  });
});

describe('reconcile command line', () => {
  test('hosts, migration URIs per destination, a bandwidth limit and dry run', () => {
    expect(
      parseReconcileArguments(['--stack-dir', 'out', '--host', 'h1=qemu:///system', '--host', 'h2=qemu+ssh://a@b/system', '--migrate-uri', 'h2=tcp://127.0.0.1', '--migrate-bandwidth', '8', '--dry-run']),
    ).toEqual({
      stackDir: 'out', hosts: { h1: 'qemu:///system', h2: 'qemu+ssh://a@b/system' }, migrateUris: { h2: 'tcp://127.0.0.1' }, migrationBandwidthMiBs: 8, migrationTimeout: undefined,
      coldWhenLiveRefused: false, dryRun: true,
    });
    expect(parseReconcileArguments(['--stack-dir', 'out', '--host', 'h1=x'])).toEqual({
      stackDir: 'out', hosts: { h1: 'x' }, migrateUris: {}, migrationBandwidthMiBs: undefined, migrationTimeout: undefined, coldWhenLiveRefused: false, dryRun: false,
    });
    const bounded = parseReconcileArguments(['--stack-dir', 'out', '--host', 'h1=x', '--migrate-timeout', '120', '--cold-when-refused']);
    expect({ timeout: bounded.migrationTimeout?.toSeconds(), cold: bounded.coldWhenLiveRefused }).toEqual({ timeout: 120, cold: true });
  });

  test.each([
    [['--stack-dir', 'out', '--host', 'h1=x', '--migrate-uri', 'h2=tcp://127.0.0.1'], '--migrate-uri names h2, which no --host gives'],
    [['--stack-dir', 'out', '--host', 'h1=x', '--migrate-uri', 'tcp://127.0.0.1'], "--migrate-uri takes NAME=URI, not 'tcp://127.0.0.1'"],
    [['--stack-dir', 'out', '--host', 'h1=x', '--migrate-bandwidth', '0'], "--migrate-bandwidth takes MiB/s as a whole number above 0, not '0'"],
    [['--stack-dir', 'out', '--host', 'h1=x', '--unsafe'], "unknown argument '--unsafe'"],
    [['--stack-dir', 'out', '--host', 'h1=x', '--migrate-timeout', '1.5'], "--migrate-timeout takes seconds as a whole number above 0, not '1.5'"],
    [['--host', 'h1=x'], 'give --stack-dir and at least one --host'],
  ])('%j is refused', (args, message) => {
    expect(() => parseReconcileArguments(args)).toThrow(message);
  });
});
