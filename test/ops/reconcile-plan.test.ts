import { Duration } from '../../lib/core/duration';
import { BLOCKING_ACTIONS, formatAction, planOperations } from '../../lib/ops/reconcile';
import { destination, host, layout, running, seed, state, summary, vm } from './reconcile-fixtures';

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
