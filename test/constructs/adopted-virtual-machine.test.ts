import { TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import { AdoptedVirtualMachine, ExistingVolume, Host, Image, Segment, Size, VirtualMachine } from '../../lib';
import { synth, synthError } from '../synth';

const UUID = '11111111-2222-4333-8444-555555555555';

/** What `adopt` writes to adopted/kvm1/web.domain.json for a plain guest (provider 0.9.7's attribute names). */
const DOMAIN = {
  name: 'web',
  type: 'qemu',
  memory: 98304,
  memory_unit: 'KiB',
  current_memory: 98304,
  current_memory_unit: 'KiB',
  vcpu: 1,
  running: true,
  autostart: false,
  os: { type: 'hvm', type_arch: 'x86_64', type_machine: 'pc-i440fx-7.2' },
  devices: {
    disks: [
      { device: 'disk', driver: { name: 'qemu', type: 'qcow2' }, source: { file: { file: '/pool/web.qcow2' } }, target: { dev: 'vda', bus: 'virtio' } },
      { device: 'disk', driver: { name: 'qemu', type: 'qcow2' }, source: { file: { file: '/pool/web-data.qcow2' } }, target: { dev: 'vdb', bus: 'virtio' } },
    ],
    interfaces: [{ mac: { address: '52:54:00:11:22:33' }, source: { bridge: { bridge: 'labbr0' } }, model: { type: 'virtio' }, target: { dev: 'vnet3' } }],
    consoles: [{ source: { pty: { path: '/dev/pts/2' } }, tty: '/dev/pts/2', target: { type: 'serial', port: 0 } }],
    controllers: [{ type: 'usb', index: 0, model: 'piix3-uhci' }],
  },
};

function estate(overrides: Partial<ConstructorParameters<typeof AdoptedVirtualMachine>[2]> = {}) {
  return (app: Construct) => {
    const s = new TerraformStack(app, 'adopted');
    const kvm1 = new Host(s, 'kvm1', { uri: 'qemu+ssh://admin@kvm1/system', localPool: false });
    new AdoptedVirtualMachine(s, 'web', {
      host: kvm1,
      name: 'web',
      uuid: UUID,
      vcpus: 1,
      memory: Size.mebibytes(96),
      disks: [
        { target: 'vda', volume: ExistingVolume.atPath('/pool/web.qcow2'), size: Size.mebibytes(256) },
        { target: 'vdb', volume: ExistingVolume.atPath('/pool/web-data.qcow2') },
      ],
      nics: [{ segment: Segment.hostBridge('labbr0', 'labbr0'), mac: '52:54:00:11:22:33' }],
      domain: DOMAIN,
      ...overrides,
    });
  };
}

describe('AdoptedVirtualMachine', () => {
  test('synthesizes an import block by UUID through its host, the domain file verbatim, and nothing else: no pool, volume or network', () => {
    const json = synth(estate()).json('adopted');
    const [[address, domain]] = Object.entries<any>(json.resource.libvirt_domain);
    expect(json.import).toEqual([{ to: `libvirt_domain.${address}`, id: UUID, provider: 'libvirt.kvm1' }]);
    const { '//': _metadata, provider, lifecycle, ...attributes } = domain;
    expect(provider).toBe('libvirt.kvm1');
    expect(attributes).toEqual(DOMAIN);
    // What libvirt assigns at each start is not compared by later plans.
    expect(lifecycle).toEqual({ ignore_changes: ['devices.consoles[0].source.pty.path', 'devices.consoles[0].tty', 'devices.interfaces[0].target.dev'] });
    expect(Object.keys(json.resource)).toEqual(['libvirt_domain']);
  });

  test('the typed props win over the domain file: sizes, ceilings, a disk moved to a pool volume, a NIC on another bridge', () => {
    const json = synth(
      estate({
        vcpus: 2,
        maxVcpus: 4,
        memory: Size.mebibytes(128),
        maxMemory: Size.mebibytes(256),
        disks: [{ target: 'vdb', volume: ExistingVolume.inPool('data', 'web-data.qcow2') }],
        nics: [{ segment: Segment.hostBridge('lan', 'br0'), mac: '52:54:00:AA:BB:CC' }],
      }),
    ).json('adopted');
    const domain = Object.values<any>(json.resource.libvirt_domain)[0];
    expect([domain.vcpu, domain.vcpu_current, domain.memory, domain.current_memory]).toEqual([4, 2, 262144, 131072]);
    expect(domain.devices.disks[0].source).toEqual({ file: { file: '/pool/web.qcow2' } });
    expect(domain.devices.disks[1].source).toEqual({ volume: { pool: 'data', volume: 'web-data.qcow2' } });
    expect(domain.devices.interfaces[0]).toEqual({ mac: { address: '52:54:00:aa:bb:cc' }, source: { bridge: { bridge: 'br0' } }, model: { type: 'virtio' }, target: { dev: 'vnet3' } });
  });

  test('a bad UUID, a disk the domain does not have and a NIC too many are reported together', () => {
    const message = synthError(
      estate({
        uuid: 'web',
        disks: [{ target: 'vdz', volume: ExistingVolume.atPath('/pool/x.qcow2') }],
        nics: [
          { segment: Segment.hostBridge('labbr0', 'labbr0'), mac: '52:54:00:11:22:33' },
          { segment: Segment.hostBridge('labbr0', 'labbr0'), mac: 'zz' },
        ],
      }),
    );
    expect(message).toContain("uuid 'web' is not a UUID");
    expect(message).toContain('disk vdz (/pool/x.qcow2) is not a disk of the domain file (it has vda, vdb)');
    expect(message).toContain('2 NICs are given and the domain file has 1');
  });

  test('a host with localPool: false refuses a new VM that needs an image there, with the fix', () => {
    const message = synthError((app) => {
      const s = new TerraformStack(app, 'adopted');
      const kvm1 = new Host(s, 'kvm1', { uri: 'qemu+ssh://admin@kvm1/system', localPool: false });
      new VirtualMachine(s, 'new', { host: kvm1, image: Image.blank('b', Size.mebibytes(16)), memory: Size.mebibytes(32), network: false });
    });
    expect(message).toContain("host kvm1 has localPool: false, and a VM needs image 'b' on it: remove localPool: false");
  });
});
