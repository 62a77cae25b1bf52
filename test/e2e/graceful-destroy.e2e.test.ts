/**
 * Terraform's destroy of a VM, on a real lab host through OpenTofu: a VM that leaves the code is
 * shut down through ACPI (its guest powers off), not pulled; a guest that does not answer within
 * its `shutdownTimeout` is left running and the apply says why. What libvirt did is read from the
 * domain's own log on the host (`shutting down, reason=shutdown` or `reason=destroyed`).
 */
import * as fs from 'fs';
import * as path from 'path';
import { App, LocalBackend, TerraformStack } from 'cdktf';
import { DomainType, Duration, Host, Image, Size, VirtualMachine } from '../../lib';
import { Lab, labPrerequisites } from '../lab/lab';
import { guestDomainType, testGuestImage, waitForGuestReport } from './test-guest';
import { describeE2e, OPENTOFU, tofu } from './toolchain';

const lab = labPrerequisites();
const guest = testGuestImage();

describeE2e(
  'graceful destroy on a real libvirt host',
  () => {
    let theLab: Lab;
    let work: string;
    let stackDir: string;

    /** The stack with the VMs named, each as `vms` says. */
    function synth(vms: readonly ('calm' | 'legacy' | 'deaf')[]): void {
      const app = new App({ outdir: path.join(work, 'out') });
      const stack = new TerraformStack(app, 'graceful');
      new LocalBackend(stack, { path: path.join(work, 'terraform.tfstate') });
      const type = guestDomainType().type === 'kvm' ? DomainType.KVM : DomainType.QEMU;
      const host = new Host(stack, 'h1', { uri: theLab.host('h1').uri, domainType: type, poolPath: path.join(work, 'pool'), capacity: { cores: 2, memory: Size.gibibytes(2) } });
      const booting = Image.fromFile('guest', guest.ok ? guest.path : '/missing-test-guest.qcow2');
      const common = { host, memory: Size.mebibytes(96), network: false, console: { logToFile: true } } as const;
      // calm: the default for a new VM of a bootable image. legacy: as VMs made before the option.
      if (vms.includes('calm')) new VirtualMachine(stack, 'calm', { ...common, image: booting });
      if (vms.includes('legacy')) new VirtualMachine(stack, 'legacy', { ...common, image: booting, gracefulDestroy: false });
      // deaf: nothing in a blank disk hears ACPI, and it is asked to all the same.
      if (vms.includes('deaf')) new VirtualMachine(stack, 'deaf', { ...common, memory: Size.mebibytes(32), image: Image.blank('blank', Size.mebibytes(16)), gracefulDestroy: true, shutdownTimeout: Duration.seconds(5) });
      app.synth();
    }

    /** What libvirt wrote of the domain's last stop in its log on the host. */
    const stopReason = (vm: string) => {
      const log = fs.readFileSync(path.join(theLab.host('h1').dir, 'log', 'qemu', `${vm}.log`), 'utf8');
      return [...log.matchAll(/shutting down, reason=(\w+)/g)].map((m) => m[1]).pop();
    };

    beforeAll(async () => {
      theLab = await Lab.start({ hosts: 1, leases: false });
      work = path.join(theLab.root, 'graceful');
      fs.mkdirSync(path.join(work, 'pool'), { recursive: true, mode: 0o755 });
      fs.chmodSync(work, 0o755);
      stackDir = path.join(work, 'out', 'stacks', 'graceful');
      synth(['calm', 'legacy', 'deaf']);
      tofu(stackDir, ['init', '-input=false']);
      tofu(stackDir, ['apply', '-auto-approve', '-input=false']);
      // Booted, with acpid listening: each guest has written its first report.
      for (const vm of ['calm', 'legacy']) await waitForGuestReport(theLab.host('h1').consoleLog(vm), (r) => r.instanceId === vm, 180_000);
    });

    afterAll(async () => {
      await theLab?.teardown();
    });

    test('VMs taken out of the code: the default one shuts down through ACPI, the one without it is powered off, the deaf one keeps running and the apply says why', () => {
      expect(theLab.host('h1').domains().sort()).toEqual(['calm', 'deaf', 'legacy']);
      const started = Date.now();
      synth([]);
      let failure = '';
      try {
        tofu(stackDir, ['apply', '-auto-approve', '-input=false'], OPENTOFU);
      } catch (e) {
        failure = String((e as { stderr?: unknown }).stderr ?? e);
      }
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      console.log(`apply destroying calm, legacy and deaf: ${seconds} s; stop reasons: calm=${stopReason('calm')}, legacy=${stopReason('legacy')}; deaf ${theLab.host('h1').domains().join(',')}`);
      expect(stopReason('calm')).toBe('shutdown');
      expect(stopReason('legacy')).toBe('destroyed');
      expect(theLab.host('h1').domains()).toEqual(['deaf']);
      expect(failure).toMatch(/Timeout Waiting for Domain Shutdown/);
      expect(failure).toMatch(/did not reach shutoff state within 5s/);
    });
  },
  lab.ok ? undefined : lab.reason,
  guest.ok ? undefined : guest.reason,
);
