import * as fs from 'fs';
import * as path from 'path';
import { hasNewVms, manifestOf, runtimeValues, ObservedHost, observeDomain, observeVolume, parseXml, planAdoption, preservedDomain, renderReport, renderTypeScript } from '../../lib/ops/adopt-model';

const LIVE = fs.readFileSync(path.join(__dirname, 'fixtures', 'adopt-live-domain.xml'), 'utf8');
const UUID = '6f1d3c1e-9a7b-4c2d-8e5f-0a1b2c3d4e5f';

/** A plain guest, as `virsh define` of the lab's test guest leaves it. */
const PLAIN = `<domain type='qemu'>
  <name>web</name>
  <uuid>11111111-2222-4333-8444-555555555555</uuid>
  <memory unit='KiB'>98304</memory>
  <currentMemory unit='KiB'>98304</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/pool/web.qcow2'/><target dev='vda' bus='virtio'/></disk>
    <interface type='bridge'><mac address='52:54:00:11:22:33'/><source bridge='labbr0'/><model type='virtio'/></interface>
    <console type='pty'><target type='serial' port='0'/></console>
  </devices>
</domain>`;

/** What the provider read for PLAIN, shaped like `tofu show -json` of an imported libvirt_domain. */
const PLAIN_VIEW = {
  id: 1,
  uuid: '11111111-2222-4333-8444-555555555555',
  name: 'web',
  type: 'qemu',
  memory: 98304,
  memory_unit: 'KiB',
  current_memory: 98304,
  current_memory_unit: 'KiB',
  vcpu: 1,
  title: null,
  running: true,
  autostart: false,
  devices: {
    disks: [{ device: 'disk', driver: { name: 'qemu', type: 'qcow2' }, source: { file: { file: '/pool/web.qcow2' } }, target: { dev: 'vda', bus: 'virtio' } }],
    interfaces: [{ mac: { address: '52:54:00:11:22:33' }, source: { bridge: { bridge: 'labbr0' } }, model: { type: 'virtio' }, wait_for_ip: null }],
    graphics: [{ vnc: { auto_port: true, port: 5900, listen: '127.0.0.1', passwd: 'hunter2' } }],
  },
};

function host(name: string, domains: { xml: string; providerView: Record<string, unknown> }[]): ObservedHost {
  return {
    name,
    uri: `qemu+ssh://admin@${name}/system`,
    domains,
    volumes: [{ name: 'web.qcow2', path: '/pool/web.qcow2', pool: 'lab', capacityBytes: 256 * 2 ** 20, format: 'qcow2', backingPath: '/pool/base.qcow2' }],
    pools: [{ name: 'lab', uuid: 'p', type: 'dir', path: '/pool' }, { name: 'unused', uuid: 'q', type: 'dir', path: '/other' }],
    networks: ['backend'],
    bridges: [],
  };
}

const none = { inCode: new Map<string, string>(), managedElsewhere: new Map<string, string>(), skipUnmodelled: false };

describe('parseXml', () => {
  test('reads elements, attributes in either quote, entities and text, and refuses a broken document', () => {
    const e = parseXml(`<?xml version="1.0"?><!-- c --><a x='1' y="&lt;2&gt;"><b>t &amp; u</b><c/></a>`);
    expect(e).toEqual({ name: 'a', attrs: { x: '1', y: '<2>' }, text: '', children: [{ name: 'b', attrs: {}, children: [], text: 't & u' }, { name: 'c', attrs: {}, children: [], text: '' }] });
    expect(() => parseXml('<a><b></a>')).toThrow('</a> closes <b>');
    expect(() => parseXml('<a>')).toThrow('<a> is not closed');
  });
});

describe('observeDomain', () => {
  test('a live domain: sizes and ceilings, disks with their backing chain, NICs with MACs, and everything the model does not cover', () => {
    const d = observeDomain(LIVE);
    expect({ name: d.name, uuid: d.uuid, type: d.type, vcpus: d.vcpus, maxVcpus: d.maxVcpus, memoryMiB: d.memoryMiB, maxMemoryMiB: d.maxMemoryMiB }).toEqual({
      name: 'legacy-db',
      uuid: UUID,
      type: 'kvm',
      vcpus: 2,
      maxVcpus: 4,
      memoryMiB: 1024,
      maxMemoryMiB: 2048,
    });
    expect(d.disks.map((x) => [x.target, x.source, x.format, x.backingChain])).toEqual([
      ['vda', { kind: 'file', path: '/var/lib/libvirt/images/legacy-db.qcow2' }, 'qcow2', ['/var/lib/libvirt/images/debian-12.qcow2']],
      ['vdb', { kind: 'volume', pool: 'data', volume: 'legacy-db-data.raw' }, 'raw', []],
      ['vdc', { kind: 'other', type: 'network' }, undefined, []],
    ]);
    expect(d.nics).toEqual([
      { type: 'bridge', source: 'br-lan', mac: '52:54:00:ab:cd:ef', model: 'virtio', openVSwitch: false },
      { type: 'network', source: 'backend', mac: '52:54:00:00:00:02', model: 'e1000', openVSwitch: false },
    ]);
    expect(d.unmodelled).toEqual([
      "passthrough device (<hostdev type='pci' mode='subsystem'>)",
      'NUMA memory pinning (<numatune>)',
      "vCPU pinning (<vcpu cpuset='0-1'>)",
      'custom XML <qemu:commandline> (a hypervisor namespace: passed to QEMU as is)',
      "disk vdc of type 'network' (network or other storage)",
    ]);
    // Where the secret is, never its value.
    expect(d.secrets).toEqual(['vnc console password (<graphics passwd>)']);
    expect(JSON.stringify(d)).not.toContain('hunter2');
  });

  test('a volume: capacity in bytes whatever the unit, and the file it overlays', () => {
    const v = observeVolume(`<volume type='file'><name>web.qcow2</name><capacity unit='MiB'>256</capacity><target><path>/pool/web.qcow2</path><format type='qcow2'/></target><backingStore><path>/pool/base.qcow2</path></backingStore></volume>`);
    expect(v).toEqual({ name: 'web.qcow2', path: '/pool/web.qcow2', capacityBytes: 256 * 2 ** 20, format: 'qcow2', backingPath: '/pool/base.qcow2' });
  });
});

describe('preservedDomain', () => {
  test('drops the computed id and uuid and empty values, takes the console password out and lists that change with how to keep it', () => {
    const { preserved, changes } = preservedDomain(PLAIN_VIEW);
    expect(preserved).not.toHaveProperty('id');
    expect(preserved).not.toHaveProperty('uuid');
    expect(preserved).not.toHaveProperty('title');
    expect((preserved.devices as any).interfaces[0]).not.toHaveProperty('wait_for_ip');
    expect((preserved.devices as any).graphics).toEqual([{ vnc: { auto_port: true, port: 5900, listen: '127.0.0.1' } }]);
    expect(JSON.stringify(preserved)).not.toContain('hunter2');
    expect(changes).toHaveLength(1);
    expect(changes[0].attribute).toBe('devices.graphics[0].vnc.passwd');
    expect(changes[0].keep).toMatch(/--exclude/);
  });
});

test('runtimeValues names what libvirt assigns at each start: pty paths, tap devices, autoport VNC ports', () => {
  const view = {
    devices: {
      consoles: [{ source: { pty: { path: '/dev/pts/3' } }, tty: '/dev/pts/3' }],
      interfaces: [{ target: { dev: 'vnet7' } }, { mac: { address: 'x' } }],
      graphics: [{ vnc: { auto_port: true, port: 5901 } }, { vnc: { auto_port: false, port: 5950 } }],
    },
  };
  expect(runtimeValues(view)).toEqual([
    'devices.consoles[0].source.pty.path = /dev/pts/3',
    'devices.consoles[0].tty = /dev/pts/3',
    'devices.interfaces[0].target.dev = vnet7',
    'devices.graphics[0].vnc.port = 5901 (autoport)',
  ]);
  expect(runtimeValues({ name: 'x' })).toEqual([]);
});

describe('planAdoption', () => {
  test('adopts each domain with the sizes of its volumes and the pools, networks and bridges it uses', () => {
    const plan = planAdoption([host('kvm1', [{ xml: PLAIN, providerView: PLAIN_VIEW }])], none);
    expect(plan.skipped).toEqual([]);
    const [h] = plan.hosts;
    expect(h.pools.map((p) => p.name)).toEqual(['lab']);
    expect(h.bridges).toEqual(['labbr0']);
    expect(h.vms[0].disks[0]).toMatchObject({ target: 'vda', capacityBytes: 256 * 2 ** 20, pool: 'lab', volume: 'web.qcow2', backingChain: ['/pool/base.qcow2'] });
    expect(hasNewVms(plan)).toBe(true);
  });

  test('a second run with the manifest finds nothing new; a domain another state manages is left alone; --skip-unmodelled keeps such domains out', () => {
    const hosts = [host('kvm1', [{ xml: PLAIN, providerView: PLAIN_VIEW }, { xml: LIVE, providerView: { name: 'legacy-db' } }])];
    const first = planAdoption(hosts, none);
    expect(first.hosts[0].vms.map((v) => v.constructId)).toEqual(['web', 'legacy-db']);
    const manifest = manifestOf(first);
    const again = planAdoption(hosts, { ...none, inCode: new Map(manifest.adopted.map((a) => [a.uuid, a.constructId])) });
    expect(hasNewVms(again)).toBe(false);
    expect(again.hosts[0].vms.map((v) => [v.constructId, v.known])).toEqual([['web', true], ['legacy-db', true]]);
    const report = renderReport(again);
    expect(report.split('\n')[0]).toBe('0 domains to import, 2 already in the code, 0 left alone');
    expect(report).toContain('in the code kvm1/web: libvirt_domain web uuid 11111111-2222-4333-8444-555555555555');

    const elsewhere = planAdoption(hosts, { ...none, managedElsewhere: new Map([[UUID, 'the state of other/']]), skipUnmodelled: false });
    expect(elsewhere.hosts[0].vms.map((v) => v.constructId)).toEqual(['web']);
    expect(elsewhere.skipped).toEqual([{ host: 'kvm1', domain: 'legacy-db', uuid: UUID, reason: 'managed by another Terraform state (the state of other/): importing it again would give it two owners' }]);

    const strict = planAdoption(hosts, { ...none, skipUnmodelled: true });
    expect(strict.skipped.map((s) => s.domain)).toEqual(['legacy-db']);
    expect(strict.skipped[0].reason).toContain('passthrough device');
  });

  test('the report names every import, every unmodelled device, the secret (not its value) and the in-place change with how to keep the original', () => {
    const report = renderReport(planAdoption([host('kvm1', [{ xml: LIVE, providerView: { name: 'legacy-db', devices: { graphics: [{ vnc: { passwd: 'hunter2' } }] } } }])], none));
    expect(report).toContain(`import kvm1/legacy-db: libvirt_domain legacy-db uuid ${UUID} (2/4 vCPUs, 1024/2048 MiB, 3 disks, 2 NICs)`);
    expect(report).toContain('not modelled (kept verbatim in adopted/kvm1/legacy-db.domain.json): passthrough device');
    expect(report).toContain('secret not written: vnc console password');
    expect(report).toContain('IN-PLACE CHANGE on first apply: devices.graphics[0].vnc.passwd');
    expect(report).toContain('referenced, not managed (provider 0.9.7 cannot import a volume)');
    expect(report).not.toContain('hunter2');
  });
});

describe('renderTypeScript', () => {
  test('declares each host without a local pool and each VM with its UUID, sizes, ceilings, existing volumes, NICs and domain file', () => {
    const ts = renderTypeScript(planAdoption([host('kvm1', [{ xml: PLAIN, providerView: PLAIN_VIEW }, { xml: LIVE, providerView: {} }])], none));
    expect(ts).toContain(`const kvm1 = new Host(scope, "kvm1", { uri: "qemu+ssh://admin@kvm1/system", localPool: false });`);
    expect(ts).toContain('uuid: "11111111-2222-4333-8444-555555555555",');
    expect(ts).toContain('vcpus: 2, maxVcpus: 4,');
    expect(ts).toContain('memory: Size.gibibytes(1), maxMemory: Size.gibibytes(2),');
    expect(ts).toContain('{ target: "vda", volume: ExistingVolume.atPath("/pool/web.qcow2"), size: Size.mebibytes(256) }, // disk, qcow2, 256 MiB, overlay of /pool/base.qcow2');
    expect(ts).toContain('{ target: "vdb", volume: ExistingVolume.inPool("data", "legacy-db-data.raw") }');
    expect(ts).toContain('{ segment: Segment.hostBridge("labbr0", "labbr0"), mac: "52:54:00:11:22:33" },');
    expect(ts).toContain('{ segment: Segment.isolated("backend"), mac: "52:54:00:00:00:02" },');
    expect(ts).toContain('// not modelled, kept verbatim in the domain file: passthrough device');
    expect(ts).toContain('domain: domainFile("adopted/kvm1/legacy-db.domain.json"),');
    expect(ts).not.toContain('hunter2');
    expect(ts).toContain("import { AdoptedVirtualMachine, ExistingVolume, Host, Segment, Size } from 'cdktf-libvirt-cluster';");
  });

  test('imports only what it uses: a domain with no NIC and no disk needs neither Segment nor ExistingVolume', () => {
    const bare = PLAIN.replace(/<disk[\s\S]*<\/interface>/, '');
    const ts = renderTypeScript(planAdoption([host('kvm1', [{ xml: bare, providerView: {} }])], none), 'my-lib', 'infra');
    expect(ts).toContain("import { AdoptedVirtualMachine, Host, Size } from 'my-lib';");
    expect(ts).toContain('path.join("infra", file)');
  });
});
