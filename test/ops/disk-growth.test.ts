import { growVolume, planDiskGrowth } from '../../lib/ops/disk-growth';

const config = {
  resource: {
    libvirt_volume: {
      db_DataDisk_1: { name: 'db-data.qcow2', pool: '${libvirt_pool.kvm1_Pool_1.name}', capacity: 2048, provider: 'libvirt.kvm1' },
      db_BootDisk_2: { name: 'db-boot.qcow2', pool: 'cdktf-local', capacity: 1024, provider: 'libvirt.kvm1' },
      spare_DataDisk_3: { name: 'spare-data.qcow2', pool: 'cdktf-local', capacity: 4096, provider: 'libvirt.kvm1' },
      base: { name: 'base.qcow2', pool: 'cdktf-local', capacity: '${libvirt_volume.x.capacity}', provider: 'libvirt.kvm1' },
    },
  },
};
const state = new Map<string, Record<string, unknown>>([
  ['libvirt_volume.db_DataDisk_1', { name: 'db-data.qcow2', pool: 'cdktf-local', capacity: 1024 }],
  ['libvirt_volume.db_BootDisk_2', { name: 'db-boot.qcow2', pool: 'cdktf-local', capacity: 2048 }],
  ['libvirt_volume.spare_DataDisk_3', { name: 'spare-data.qcow2', pool: 'cdktf-local', capacity: 1024 }],
  ['libvirt_domain.db', { name: 'db', devices: { disks: [{ source: { volume: { pool: 'cdktf-local', volume: 'db-data.qcow2' } }, target: { dev: 'vdb' } }] } }],
]);

test('grows what the configuration made bigger, through the domain that uses it; never shrinks', () => {
  const { grow, shrink } = planDiskGrowth(config, state);
  expect(grow).toEqual([
    { address: 'libvirt_volume.db_DataDisk_1', host: 'kvm1', pool: 'cdktf-local', volume: 'db-data.qcow2', fromBytes: 1024, toBytes: 2048, domain: { name: 'db', dev: 'vdb' } },
    { address: 'libvirt_volume.spare_DataDisk_3', host: 'kvm1', pool: 'cdktf-local', volume: 'spare-data.qcow2', fromBytes: 1024, toBytes: 4096 },
  ]);
  expect(shrink).toEqual(['libvirt_volume.db_BootDisk_2: the configuration asks for 1024 bytes, the volume has 2048; a disk is never shrunk']);
});

test('a running domain grows its disk through QEMU; otherwise the volume is resized; the pool is refreshed either way', () => {
  const calls: string[][] = [];
  const [live, offline] = planDiskGrowth(config, state).grow;
  const virsh = (running: boolean) => (...args: string[]) => (calls.push(args), args[0] === 'domstate' ? (running ? 'running\n' : 'shut off\n') : '');
  expect(growVolume(live, virsh(true))).toMatch(/^live, through db's vdb/);
  expect(growVolume(offline, virsh(true))).toMatch(/^offline/);
  expect(growVolume(live, virsh(false))).toMatch(/^offline/);
  expect(calls).toEqual([
    ['domstate', 'db'], ['blockresize', 'db', 'vdb', '2048B'], ['pool-refresh', 'cdktf-local'],
    ['vol-resize', '--pool', 'cdktf-local', 'spare-data.qcow2', '4096B'], ['pool-refresh', 'cdktf-local'],
    ['domstate', 'db'], ['vol-resize', '--pool', 'cdktf-local', 'db-data.qcow2', '2048B'], ['pool-refresh', 'cdktf-local'],
  ]);
});
