import { App, Testing, TerraformStack } from 'cdktf';
import { DomainType, GuestArchitecture, Host, Image, RemovalPolicy, Size, VirtualMachine } from '../lib';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbTDT0vB3vSzqmnMJV3B2mUj4dd3yp7PqAf6l0uVvJq ops@example';

function stackWith(build: (stack: TerraformStack, host: Host) => void): { app: App; stack: TerraformStack } {
  const app = Testing.app();
  const stack = new TerraformStack(app, 'test');
  const host = new Host(stack, 'kvm1', { domainType: DomainType.QEMU });
  build(stack, host);
  return { app, stack };
}

function synthJson(stack: TerraformStack): any {
  return JSON.parse(Testing.synth(stack));
}

describe('VirtualMachine', () => {
  test('synthesizes a domain, an overlay boot disk over the base image, a data disk and a cloud-init disk', () => {
    const { stack } = stackWith((s, host) => {
      new VirtualMachine(s, 'web', {
        host,
        vcpus: 2,
        memory: Size.gibibytes(1),
        architecture: GuestArchitecture.I686,
        image: Image.blank('base', Size.mebibytes(64)),
        dataDisk: { size: Size.gibibytes(2) },
        cloudInit: { users: [{ name: 'ops', sshAuthorizedKeys: [KEY] }] },
      });
    });
    const json = synthJson(stack);
    const [domain] = Object.values<any>(json.resource.libvirt_domain);
    expect(domain).toMatchObject({ name: 'web', vcpu: 2, memory: 1024, arch: 'i686', type: 'qemu', provider: 'libvirt.kvm1' });
    expect(domain.graphics).toMatchObject({ type: 'vnc', listen_type: 'address', listen_address: '127.0.0.1' });

    const volumes = json.resource.libvirt_volume;
    const byName = (n: string) => Object.entries<any>(volumes).find(([, v]) => v.name === n)!;
    const [baseKey] = byName('base-base.qcow2');
    const [bootKey, boot] = byName('web-boot.qcow2');
    const [dataKey, data] = byName('web-data.qcow2');
    expect(boot.base_volume_id).toBe(`\${libvirt_volume.${baseKey}.id}`);
    expect(data.size).toBe(2 * 1024 ** 3);
    expect(domain.disk).toEqual([{ volume_id: `\${libvirt_volume.${bootKey}.id}` }, { volume_id: `\${libvirt_volume.${dataKey}.id}` }]);

    const [cloudInitKey, cloudInit] = Object.entries<any>(json.resource.libvirt_cloudinit_disk)[0];
    expect(domain.cloudinit).toBe(`\${libvirt_cloudinit_disk.${cloudInitKey}.id}`);
    expect(cloudInit.user_data).toContain('"ssh_authorized_keys"');
    expect(cloudInit.user_data).toContain(KEY);
  });

  test('the domain is the construct\'s Resource, at an address that does not name its host', () => {
    let vm!: VirtualMachine;
    const { stack } = stackWith((s, host) => {
      vm = new VirtualMachine(s, 'web', { host, image: Image.blank('base', Size.mebibytes(64)) });
    });
    const json = synthJson(stack);
    const [address] = Object.keys(json.resource.libvirt_domain);
    expect(vm.resource!.node.path).toBe('test/web/Resource');
    expect(address).toBe(stack.getLogicalId(vm.resource!));
    expect(address).not.toContain('kvm1');
  });

  test('data disks are protected from destroy unless the VM opts out, and the opt-out is a warning', () => {
    const { stack } = stackWith((s, host) => {
      const image = Image.blank('base', Size.mebibytes(64));
      new VirtualMachine(s, 'kept', { host, image, dataDisk: { size: Size.gibibytes(1) } });
      new VirtualMachine(s, 'scratch', { host, image, dataDisk: { size: Size.gibibytes(1), removalPolicy: RemovalPolicy.DESTROY } });
    });
    const json = synthJson(stack);
    const volumes = Object.values<any>(json.resource.libvirt_volume);
    expect(volumes.find((v) => v.name === 'kept-data.qcow2').lifecycle).toEqual({ prevent_destroy: true });
    expect(volumes.find((v) => v.name === 'scratch-data.qcow2').lifecycle).toBeUndefined();
    const warnings = stack.node.findAll().flatMap((c) => c.node.metadata.filter((m) => m.type === '@cdktf/warn').map((m) => `${c.node.path}: ${m.data}`));
    expect(warnings).toEqual([expect.stringContaining('test/scratch: [data-disk-protection] opted out')]);
  });

  test('a console off localhost is an explicit opt-out, shown as a warning', () => {
    const { stack } = stackWith((s, host) => {
      new VirtualMachine(s, 'kiosk', { host, image: Image.blank('base', Size.mebibytes(64)), console: { listenAddress: '0.0.0.0' } });
    });
    const json = synthJson(stack);
    expect(Object.values<any>(json.resource.libvirt_domain)[0].graphics.listen_address).toBe('0.0.0.0');
    const warnings = stack.node.findAll().flatMap((c) => c.node.metadata.filter((m) => m.type === '@cdktf/warn').map((m) => String(m.data)));
    expect(warnings).toEqual(['[console-on-localhost] opted out: VNC console listens on 0.0.0.0, not on localhost']);
  });

  test('bad props are all reported at once, each with its construct path and a fix', () => {
    const { app } = stackWith((s, host) => {
      new VirtualMachine(s, 'bad', {
        host,
        vcpus: 0,
        memory: Size.mebibytes(8),
        image: Image.blank('bad image', Size.mebibytes(64)),
        bootDiskSize: Size.mebibytes(32),
        cloudInit: { users: [{ name: 'Root!', sshAuthorizedKeys: ['-----BEGIN OPENSSH PRIVATE KEY-----'] }] },
      });
    });
    let message = '';
    try {
      app.synth();
    } catch (err) {
      message = String(err);
    }
    expect(message).toContain('[test/bad] vcpus is 0; give a whole number, at least 1');
    expect(message).toContain('[test/bad] memory is 8 MiB; give at least Size.mebibytes(16)');
    expect(message).toContain("[test/bad] bootDiskSize 32 MiB is smaller than image 'bad image' (64 MiB)");
    expect(message).toContain("[test/bad] cloud-init user 'Root!' is not a valid login name");
    expect(message).toContain('has a private key in sshAuthorizedKeys');
    expect(message).toContain("[test/bad] image name 'bad image' must be letters");
  });
});
