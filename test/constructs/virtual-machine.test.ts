import * as fs from 'fs';
import * as path from 'path';
import { dependable, TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import { Cluster, DomainType, GuestArchitecture, Host, Image, RemovalPolicy, Size, VirtualMachine } from '../../lib';
import { DomainConfig } from '../../lib/generated/libvirt/domain';
import { Volume } from '../../lib/generated/libvirt/volume';
import { scratchLock, synth, synthError } from '../synth';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbTDT0vB3vSzqmnMJV3B2mUj4dd3yp7PqAf6l0uVvJq ops@example';
const image = Image.blank('base', Size.mebibytes(64));

/** An app with one stack `test` and one host `kvm1`, built further by `build`. */
function onOneHost(build: (stack: TerraformStack, host: Host) => void) {
  return (app: Construct) => {
    const stack = new TerraformStack(app, 'test');
    build(stack, new Host(stack, 'kvm1', { domainType: DomainType.QEMU }));
  };
}

/** The volume of the given name, as [address, body]. */
function volumeNamed(json: any, name: string): [string, any] {
  const found = Object.entries<any>(json.resource.libvirt_volume).find(([, v]) => v.name === name);
  if (!found) throw new Error(`no volume ${name} in ${Object.values<any>(json.resource.libvirt_volume).map((v) => v.name)}`);
  return found;
}

describe('VirtualMachine', () => {
  test('synthesizes a domain, an overlay boot disk over the base image, a data disk and a cloud-init seed disk', () => {
    const out = synth(
      onOneHost((s, host) => {
        new VirtualMachine(s, 'web', {
          host,
          vcpus: 2,
          memory: Size.gibibytes(1),
          architecture: GuestArchitecture.I686,
          image,
          dataDisk: { size: Size.gibibytes(2) },
          cloudInit: { users: [{ name: 'ops', sshAuthorizedKeys: [KEY] }] },
        });
      }),
    );
    const json = out.json('test');
    const [domain] = Object.values<any>(json.resource.libvirt_domain);
    expect(domain).toMatchObject({ name: 'web', vcpu: 2, memory: 1024, memory_unit: 'MiB', os: { type_arch: 'i686' }, type: 'qemu', provider: 'libvirt.kvm1' });
    // No ceilings above the start values: nothing to hot-add, so no current values either.
    expect(domain).not.toHaveProperty('vcpu_current');
    expect(domain).not.toHaveProperty('current_memory');
    expect(domain.devices.graphics).toEqual([{ vnc: { auto_port: true, listen: '127.0.0.1' } }]);

    const [baseKey] = volumeNamed(json, 'base-base.qcow2');
    const [bootKey, boot] = volumeNamed(json, 'web-boot.qcow2');
    const [dataKey, data] = volumeNamed(json, 'web-data.qcow2');
    expect(boot.backing_store).toEqual({ path: `\${libvirt_volume.${baseKey}.path}`, format: { type: 'qcow2' } });
    expect(data.capacity).toBe(2 * 1024 ** 3);
    const source = (key: string) => ({ volume: { pool: `\${libvirt_volume.${key}.pool}`, volume: `\${libvirt_volume.${key}.name}` } });
    const disks = domain.devices.disks;
    expect(disks.slice(0, 2)).toEqual([
      { source: source(bootKey), target: { dev: 'vda', bus: 'virtio' }, driver: { type: 'qcow2' } },
      { source: source(dataKey), target: { dev: 'vdb', bus: 'virtio' }, driver: { type: 'qcow2' } },
    ]);

    // The seed disk is an ISO built at synth next to the JSON; the volume uploads it from there.
    const [seedKey, seed] = Object.entries<any>(json.resource.libvirt_volume).find(([, v]) => /^web-cloudinit-[0-9a-f]{16}\.iso$/.test(v.name))!;
    expect(disks[2]).toEqual({ device: 'cdrom', source: source(seedKey), target: { dev: 'sda', bus: 'sata' }, read_only: true });
    const iso = fs.readFileSync(path.join(out.stackDir('test'), seed.create.content.url));
    expect(seed.create.content.url).toMatch(/^cloud-init\/[0-9a-f]{16}\.iso$/);
    expect(iso.includes('"ssh_authorized_keys"')).toBe(true);
    expect(iso.includes(KEY)).toBe(true);
    expect(out.text('test')).not.toContain(KEY);
  });

  test('ceilings above the start values: the domain gets the ceilings and the current values', () => {
    const json = synth(
      onOneHost((s, host) => {
        new VirtualMachine(s, 'db', { host, vcpus: 2, maxVcpus: 4, memory: Size.mebibytes(512), maxMemory: Size.gibibytes(1), image });
      }),
    ).json('test');
    const [domain] = Object.values<any>(json.resource.libvirt_domain);
    expect(domain).toMatchObject({ vcpu: 4, vcpu_current: 2, memory: 1024, memory_unit: 'MiB', current_memory: 512, current_memory_unit: 'MiB' });
  });

  test("the domain is the construct's Resource, at an address that does not name its host", () => {
    let vm!: VirtualMachine;
    let stack!: TerraformStack;
    const json = synth(
      onOneHost((s, host) => {
        stack = s;
        vm = new VirtualMachine(s, 'web', { host, image });
      }),
    ).json('test');
    const [address] = Object.keys(json.resource.libvirt_domain);
    expect(vm.resource!.node.path).toBe('test/web/Resource');
    expect(address).toBe(stack.getLogicalId(vm.resource!));
    expect(address).not.toContain('kvm1');
  });

  test('data disks are protected from destroy unless the VM opts out, and the opt-out is a warning', () => {
    const out = synth(
      onOneHost((s, host) => {
        new VirtualMachine(s, 'kept', { host, image, dataDisk: { size: Size.gibibytes(1) } });
        new VirtualMachine(s, 'scratch', { host, image, dataDisk: { size: Size.gibibytes(1), removalPolicy: RemovalPolicy.DESTROY } });
      }),
    );
    const volumes = Object.values<any>(out.json('test').resource.libvirt_volume);
    expect(volumes.find((v) => v.name === 'kept-data.qcow2').lifecycle).toEqual({ prevent_destroy: true });
    expect(volumes.find((v) => v.name === 'scratch-data.qcow2').lifecycle).toBeUndefined();
    expect(out.warnings('test')).toEqual(['test/scratch: [data-disk-protection] opted out: data disk is destroyed with the VM (RemovalPolicy.DESTROY)']);
  });

  test('a console off localhost is an explicit opt-out, shown as a warning', () => {
    const out = synth(
      onOneHost((s, host) => {
        new VirtualMachine(s, 'kiosk', { host, image, console: { listenAddress: '0.0.0.0' } });
      }),
    );
    expect(Object.values<any>(out.json('test').resource.libvirt_domain)[0].devices.graphics).toEqual([{ vnc: { auto_port: true, listen: '0.0.0.0' } }]);
    expect(out.warnings('test')).toEqual(['test/kiosk: [console-on-localhost] opted out: VNC console listens on 0.0.0.0, not on localhost']);
  });

  test('bad props are all reported at once, each with its construct path and a fix', () => {
    const message = synthError(
      onOneHost((s, host) => {
        new VirtualMachine(s, 'bad', {
          host,
          vcpus: 0,
          memory: Size.mebibytes(8),
          image: Image.blank('bad image', Size.mebibytes(64)),
          bootDiskSize: Size.mebibytes(32),
          cloudInit: { users: [{ name: 'Root!', sshAuthorizedKeys: ['-----BEGIN OPENSSH PRIVATE KEY-----'] }] },
        });
      }),
    );
    expect(message).toContain('[test/bad] vcpus is 0; give a whole number, at least 1');
    expect(message).toContain('[test/bad] memory is 8 MiB; give at least Size.mebibytes(16)');
    expect(message).toContain("[test/bad] bootDiskSize 32 MiB is smaller than image 'bad image' (64 MiB)");
    expect(message).toContain("[test/bad] cloud-init user 'Root!' is not a valid login name");
    expect(message).toContain('[test/bad] cloud-init user \'Root!\' has a private key in sshAuthorizedKeys');
    expect(message).toContain("[test/bad] image name 'bad image' must be letters");
  });
});

describe("VirtualMachine: changing the library's resources", () => {
  const json = (build: (stack: TerraformStack, host: Host) => void) => synth(onOneHost(build)).json('test');

  test('customizeDomain gets the typed config the library renders and renders what it returns', () => {
    let seen: DomainConfig | undefined;
    const out = json((s, host) => {
      new VirtualMachine(s, 'web', {
        host,
        image,
        customizeDomain: (domain) => {
          seen = domain;
          return { ...domain, cpu: { mode: 'host-passthrough' }, devices: { ...domain.devices, rngs: [{ model: 'virtio', backend: { random: '/dev/urandom' } }] } };
        },
      });
    });
    expect(seen).toMatchObject({ name: 'web', vcpu: 1, memory: 512 });
    const [domain] = Object.values<any>(out.resource.libvirt_domain);
    expect(domain.cpu).toEqual({ mode: 'host-passthrough' });
    expect(domain.devices.rngs).toEqual([{ model: 'virtio', backend: { random: '/dev/urandom' } }]);
    // What the library rendered is still there, and the provider is still the host's.
    expect(domain).toMatchObject({ name: 'web', type: 'qemu', provider: 'libvirt.kvm1', devices: { graphics: [{ vnc: { listen: '127.0.0.1' } }] } });
  });

  test('addOverride, dependsOn and lifecycle on vm.resource and its disks reach the JSON', () => {
    const out = json((s, host) => {
      const db = new VirtualMachine(s, 'db', { host, image });
      const web = new VirtualMachine(s, 'web', { host, image, dataDisk: { size: Size.gibibytes(1) } });
      web.resource!.addOverride('on_crash', 'restart');
      web.resource!.addOverride('os.type_machine', 'q35');
      web.resource!.dependsOn = [dependable(db.resource!)];
      web.resource!.lifecycle = { ignoreChanges: ['autostart'] };
      web.dataDisk!.lifecycle = { ignoreChanges: ['capacity'] };
    });
    const domains = out.resource.libvirt_domain;
    const [webKey, web] = Object.entries<any>(domains).find(([, d]) => d.name === 'web')!;
    const [dbKey] = Object.entries<any>(domains).find(([, d]) => d.name === 'db')!;
    expect(webKey).not.toBe(dbKey);
    expect(web.on_crash).toBe('restart');
    expect(web.os).toEqual({ type: 'hvm', type_arch: 'x86_64', type_machine: 'q35', boot_devices: [{ dev: 'hd' }] });
    expect(web.depends_on).toEqual([`libvirt_domain.${dbKey}`]);
    expect(web.lifecycle).toEqual({ ignore_changes: ['autostart'] });
    // The protection the library adds keeps what the user set.
    const [, data] = volumeNamed(out, 'web-data.qcow2');
    expect(data.lifecycle).toEqual({ ignore_changes: ['capacity'], prevent_destroy: true });
  });
});

describe("VirtualMachine: the user's own resources beside the library's", () => {
  const json = (build: (stack: TerraformStack, host: Host) => void) => synth(onOneHost(build)).json('test');

  test('a generated-class resource references a VM\'s disk and domain, and a stack-level override reaches a library resource', () => {
    let bootKey = '';
    const out = json((s, host) => {
      const web = new VirtualMachine(s, 'web', { host, image, dataDisk: { size: Size.gibibytes(1) } });
      bootKey = web.bootDisk!.friendlyUniqueId;
      // A copy of the boot disk the user declares with the generated bindings, after the domain.
      new Volume(s, 'snapshot', {
        provider: host.provider,
        name: 'web-snapshot.qcow2',
        pool: web.bootDisk!.pool,
        capacity: web.bootDisk!.capacity,
        backingStore: { path: web.bootDisk!.path, format: { type: 'qcow2' } },
        dependsOn: [web.resource!],
      });
      s.addOverride(`resource.libvirt_volume.${web.dataDisk!.friendlyUniqueId}.capacity_unit`, 'bytes');
    });
    const [, snapshot] = volumeNamed(out, 'web-snapshot.qcow2');
    expect(snapshot.pool).toBe(`\${libvirt_volume.${bootKey}.pool}`);
    expect(snapshot.capacity).toBe(`\${libvirt_volume.${bootKey}.capacity}`);
    expect(snapshot.backing_store).toEqual({ path: `\${libvirt_volume.${bootKey}.path}`, format: { type: 'qcow2' } });
    const [domainKey] = Object.keys(out.resource.libvirt_domain);
    expect(snapshot.depends_on).toEqual([`libvirt_domain.${domainKey}`]);
    // The override is merged into what the library rendered, as cdktf merges it into any resource.
    const [, data] = volumeNamed(out, 'web-data.qcow2');
    expect(data).toMatchObject({ capacity: 1024 ** 3, capacity_unit: 'bytes', lifecycle: { prevent_destroy: true } });
  });
});

describe('VirtualMachine: synth cost', () => {
  test('the stack traces cdktf captures for tokens do not grow with the number of VMs', () => {
    // cdktf captures a full stack trace for every token it makes (a generated Domain made ~316);
    // nobody reads those of the library's own lazy values and references, so it makes none.
    const stackTrace = require('cdktf/lib/tokens/private/stack-trace');
    const spy = jest.spyOn(stackTrace, 'captureStackTrace');
    const tracesFor = (vms: number) => {
      spy.mockClear();
      synth((app) => {
        const stack = new TerraformStack(app, 'test');
        const hosts = ['h1', 'h2'].map((h) => new Host(stack, h, { capacity: { cores: 64, memory: Size.gibibytes(256) } }));
        const cluster = new Cluster(stack, 'cluster', { hosts, lockFile: scratchLock(), sharedStorage: { poolName: 'shared', path: '/srv/shared' } });
        for (let i = 0; i < vms; i++) new VirtualMachine(stack, `vm${i}`, { cluster, image: Image.fromFile('debian', '/srv/debian.qcow2'), dataDisk: { size: Size.gibibytes(1) } });
        const standalone = new Host(stack, 'solo');
        for (let i = 0; i < vms; i++) new VirtualMachine(stack, `solo${i}`, { host: standalone, image, dataDisk: { size: Size.gibibytes(1) } });
      });
      return spy.mock.calls.length;
    };
    try {
      const few = tracesFor(2);
      expect(few).toBeGreaterThan(0); // the spy sees cdktf's captures: the stack's own lazy values
      expect(tracesFor(40)).toBe(few);
    } finally {
      spy.mockRestore();
    }
  });
});
