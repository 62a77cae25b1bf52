/**
 * The test guest (scripts/test-guest.sh) on a real libvirt host of the lab: it boots from its image
 * under an overlay, reads the NoCloud seed our own ISO writer made, shows its NIC, takes a vCPU and
 * memory live, and powers off on ACPI shutdown. What other tests rely on when they use it.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { buildIso } from '../../lib/core/iso9660';
import { Lab, LabHost, labPrerequisites } from '../lab/lab';
import { GuestReport, guestDomainType, guestReports, testGuestImage, waitForGuestReport } from './test-guest';
import { describeE2e, waitFor } from './toolchain';

const image = testGuestImage();
const lab = labPrerequisites();
const MAC = '52:54:00:7e:57:01';
const ADDRESSES = ['10.0.0.5/24', 'fd00::5/64'];
const NETWORK_CONFIG = `network:
  version: 2
  ethernets:
    lan:
      match:
        macaddress: '${MAC}'
      set-name: lan0
      addresses: [${ADDRESSES[0]}, '${ADDRESSES[1]}']
      nameservers:
        addresses: [10.0.0.1]
`;

/** A domain of the guest: 1 of 2 vCPUs, 256 of 512 MiB, the seed on a SATA cdrom, one NIC that carries nothing. */
function guestXml(props: { name: string; type: 'kvm' | 'qemu'; disk: string; seed: string }): string {
  return `<domain type='${props.type}'>
  <name>${props.name}</name>
  <memory unit='MiB'>512</memory>
  <currentMemory unit='MiB'>256</currentMemory>
  <vcpu current='1'>2</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <features><acpi/><apic/></features>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='${props.disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='${props.seed}'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <interface type='ethernet'>
      <mac address='${MAC}'/>
      <model type='virtio'/>
      <link state='down'/>
    </interface>
    <console type='pty'>
      <target type='serial' port='0'/>
      <log file='/var/log/libvirt/qemu/${props.name}-console.log' append='on'/>
    </console>
    <memballoon model='virtio'/>
  </devices>
</domain>
`;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

describeE2e('the test guest on a real libvirt host', () => {
  const base = image.ok ? image.path : '';
  const virt = guestDomainType();
  let lab: Lab;
  let h1: LabHost;

  beforeAll(async () => {
    lab = await Lab.start({ hosts: 1 });
    h1 = lab.host('h1');
  });

  afterAll(async () => {
    await lab?.teardown();
  });

  /** Defines and starts a guest; returns its console log (as seen from here) and when it was started. */
  function startGuest(name: string, type: 'kvm' | 'qemu'): { log: string; started: number } {
    const disk = path.join(lab.sharedDir, `${name}.qcow2`);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', base, disk]);
    const seed = path.join(lab.sharedDir, `${name}-seed.iso`);
    fs.writeFileSync(
      seed,
      buildIso('cidata', [
        { name: 'meta-data', content: `instance-id: iid-${name}\nlocal-hostname: ${name}\n` },
        { name: 'user-data', content: '#cloud-config\n' },
        { name: 'network-config', content: NETWORK_CONFIG },
      ]),
    );
    h1.virsh('define', lab.writeFile(`${name}.xml`, guestXml({ name, type, disk, seed })));
    const started = Date.now();
    h1.virsh('start', name);
    return { log: h1.consoleLog(name), started };
  }

  describe(`booted as <domain type='${virt.type}'> (${virt.reason})`, () => {
    const name = 'guest1';
    let log: string;
    let booted: GuestReport;

    test('boots and reports its seed and its NIC', async () => {
      const start = startGuest(name, virt.type);
      log = start.log;
      const first = await waitForGuestReport(log, () => true, 90_000);
      const firstAt = Date.now();
      booted = await waitForGuestReport(log, (r) => r.instanceId !== '' && r.macs.length > 0, 30_000);
      console.log(
        `test guest (${virt.type}): first report ${seconds(firstAt - start.started)} after virsh start (guest uptime ${first.uptimeS} s), ` +
          `seed and NIC in report ${booted.seq}`,
      );
      expect(booted).toMatchObject({ instanceId: `iid-${name}`, hostname: name, macs: [MAC], addresses: ADDRESSES, cpusOnline: 1 });
      // The NIC's link is down on the host side too: nothing can leave through it.
      expect(h1.virsh('domif-getlink', name, MAC).trim()).toMatch(/down$/);
    });

    test('a vCPU added live comes online in the same boot', async () => {
      const started = Date.now();
      h1.virsh('setvcpus', name, '2', '--live');
      const report = await waitForGuestReport(log, (r) => r.cpusOnline === 2, 30_000, booted);
      console.log(`test guest (${virt.type}): vCPU 2 online ${seconds(Date.now() - started)} after virsh setvcpus --live 2`);
      expect(report.bootId).toBe(booted.bootId);
    });

    test('memory raised live reaches the guest through its balloon', async () => {
      // First the balloon takes the guest from its 512 MiB ceiling down to its 256 MiB.
      const ballooned = await waitForGuestReport(log, (r) => r.memTotalKib < 300 * 1024, 30_000);
      const started = Date.now();
      h1.virsh('setmem', name, '384M', '--live');
      const raised = await waitForGuestReport(log, (r) => r.memTotalKib > ballooned.memTotalKib + 100 * 1024, 30_000, ballooned);
      console.log(
        `test guest (${virt.type}): MemTotal ${ballooned.memTotalKib} -> ${raised.memTotalKib} KiB ${seconds(Date.now() - started)} after virsh setmem --live 384M`,
      );
      expect(raised.bootId).toBe(booted.bootId);
      expect(raised.cpusOnline).toBe(2);
    });

    test('powers off on ACPI shutdown', async () => {
      const started = Date.now();
      h1.virsh('shutdown', name);
      await waitFor(() => h1.domainState(name) === 'shut off', `${name} to shut off`, 20_000);
      console.log(`test guest (${virt.type}): shut off ${seconds(Date.now() - started)} after virsh shutdown`);
      expect(guestReports(log).every((r) => r.bootId === booted.bootId)).toBe(true);
    });
  });

  // Where KVM runs the guest above, TCG (the fallback of machines without it) is checked here too.
  (virt.type === 'kvm' ? test : test.skip)(`boots under TCG too${virt.type === 'kvm' ? '' : ` [skipped: the guest above already ran under TCG: ${virt.reason}]`}`, async () => {
    const start = startGuest('guest-tcg', 'qemu');
    const report = await waitForGuestReport(start.log, (r) => r.instanceId !== '', 90_000);
    console.log(`test guest (qemu, TCG): seed in report ${seconds(Date.now() - start.started)} after virsh start`);
    expect(report.instanceId).toBe('iid-guest-tcg');
    h1.virsh('destroy', 'guest-tcg');
  });
}, lab.ok ? undefined : lab.reason, image.ok ? undefined : image.reason);
