import { Duration } from '../../lib/core/duration';
import {
  applyStateUpdates, desiredDomains, freeMemoryMiB, migrationProgress, missingSegments, parseJobInfo, planOperations, planResize, runningDomain,
} from '../../lib/ops/reconcile';
import { parseReconcileArguments } from '../../lib/ops/cli';
import { host, layout, running, state, summary, vm } from './reconcile-fixtures';

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
    [['--stack-dir', 'out', '--host', 'h1=x', '--unsafe'], "unknown option '--unsafe'"],
    [['--stack-dir', 'out', '--host', 'h1=x', '--migrate-timeout', '1.5'], "--migrate-timeout takes seconds as a whole number above 0, not '1.5'"],
    [['--host', 'h1=x'], 'give --stack-dir and at least one --host'],
  ])('%j is refused', (args, message) => {
    expect(() => parseReconcileArguments(args)).toThrow(message);
  });
});
