/**
 * Moves that are safe by construction, on a two-host lab with the real test guest, driven through
 * `cdktf-libvirt-cluster reconcile` as an operator runs it. The cluster has no shared storage, so
 * every move is cold. Two VMs: `guest` (the test guest, which powers off on the ACPI power button)
 * and `stubborn` (a blank disk that boots nothing, so nothing hears the button; a 5 s
 * `shutdownTimeout`). Both start on h1.
 *
 * - a cold move whose destination lacks the bridge: reconcile refuses both moves, one line per VM
 *   with what to fix, does nothing, exits 1; both keep running on h1, the guest with the same boot id;
 * - the cold move: `--dry-run` lists both as cold with the reason; reconcile shuts the guest down
 *   through ACPI (its console shows it heard the button) and powers `stubborn` off only after its
 *   5 s; the apply starts both on h2;
 * - SIGTERM while the first VM is being stopped: that step finishes, the other VM is not touched,
 *   reconcile exits 1 listing what it did not do; the next run completes the move.
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { App, LocalBackend, TerraformStack } from 'cdktf';
import { Cluster, DomainType, Duration, FailoverGroup, Host, HostState, Image, Segment, Size } from '../../lib';
import { Lab, labPrerequisites } from '../lab/lab';
import { guestDomainType, GuestReport, testGuestImage, waitForGuestReport } from './test-guest';
import { describeE2e, destroyAfterDrills, drillTest, TOFU, tofu, tofuEnv, tofuPlan, waitFor } from './toolchain';

const REPO = path.join(__dirname, '..', '..');
const HOSTS = ['h1', 'h2'];
const VMS = ['guest-1', 'stubborn-1'];
const lab = labPrerequisites();
const guest = testGuestImage();
const virt = guestDomainType();

describeE2e(`safe moves on a two-host lab (${virt.type}: ${virt.reason})`, () => {
  let theLab: Lab;
  let work: string;
  let stackDir: string;
  let applied = false;
  let booted: GuestReport;
  const durations: string[] = [];
  const host = (name: string) => theLab.host(name);
  const drill = drillTest(durations);

  /** The stack with `from` in maintenance (its VMs go to the other host) and the LAN on `bridge`. */
  function synth(maintenance: string, bridge = theLab.bridge): void {
    const app = new App({ outdir: path.join(work, 'out'), context: { [`libvirt-cluster:host-state:${maintenance}`]: 'maintenance' } });
    const stack = new TerraformStack(app, 'moves');
    new LocalBackend(stack, { path: path.join(work, 'terraform.tfstate') });
    const capacity = { cores: 2, memory: Size.gibibytes(2), reservedMemory: Size.mebibytes(256) };
    const hosts = HOSTS.map((h) => new Host(stack, h, { uri: host(h).uri, domainType: virt.type === 'kvm' ? DomainType.KVM : DomainType.QEMU, capacity, state: HostState.ACTIVE }));
    const lan = Segment.hostBridge('lan', bridge);
    const cluster = new Cluster(stack, 'cluster', { hosts, segments: [lan], failuresToTolerate: 1, lockFile: path.join(work, 'placement-lock.json'), frozenLock: false });
    const console = { logToFile: true };
    new FailoverGroup(stack, 'guest', { cluster, nics: [{ segment: lan }], template: { vcpus: 1, memory: Size.mebibytes(128), image: Image.fromFile('guest', guest.ok ? guest.path : ''), console } });
    new FailoverGroup(stack, 'stubborn', { cluster, nics: [{ segment: lan }], template: { vcpus: 1, memory: Size.mebibytes(64), image: Image.blank('blank', Size.mebibytes(16)), console, shutdownTimeout: Duration.seconds(5) } });
    app.synth();
  }

  /** `cdktf-libvirt-cluster reconcile` as an operator runs it; `onOutput` sees its output as it comes, with the child. */
  function reconcileCommand(extra: string[] = [], onOutput?: (output: string, child: ChildProcess) => void): Promise<{ code: number; output: string }> {
    const args = [path.join(REPO, 'lib', 'ops', 'cli.ts'), 'reconcile', '--stack-dir', stackDir];
    for (const h of HOSTS) args.push('--host', `${h}=${host(h).uri}`);
    // One process (tsx as a loader), so a signal reaches reconcile itself: the tsx command relays
    // it to its child and kills that child if it has not answered within 30 ms, which a loaded
    // machine misses.
    const child = spawn(process.execPath, ['--import', 'tsx', ...args, ...extra], { cwd: REPO, env: { ...tofuEnv(), TERRAFORM_BINARY_NAME: TOFU } });
    let output = '';
    const add = (d: Buffer) => {
      output += d;
      onOutput?.(output, child);
    };
    child.stdout.on('data', add);
    child.stderr.on('data', add);
    return new Promise((resolve) => child.on('exit', (code) => resolve({ code: code ?? -1, output: output.replace(/\n$/, '') })));
  }
  const running = (h: string) => host(h).runningDomains().sort();
  const logSize = (h: string, vm: string) => (fs.existsSync(host(h).consoleLog(vm)) ? fs.statSync(host(h).consoleLog(vm)).size : 0);

  beforeAll(async () => {
    theLab = await Lab.start({ hosts: 2 });
    work = path.join(theLab.root, 'moves');
    fs.mkdirSync(work);
    stackDir = path.join(work, 'out', 'stacks', 'moves');
    synth('h2');
    tofu(stackDir, ['init', '-input=false']);
    applied = true;
    tofu(stackDir, ['apply', '-auto-approve', '-input=false']);
    expect({ h1: running('h1'), h2: running('h2') }).toEqual({ h1: VMS, h2: [] });
    booted = await waitForGuestReport(host('h1').consoleLog('guest-1'), (r) => r.instanceId === 'guest-1', 120_000);
  });

  afterAll(async () => {
    destroyAfterDrills(stackDir, applied);
    await theLab?.teardown();
    console.log(durations.join('\n'));
  });

  drill('a cold move whose destination lacks the bridge is refused: both VMs keep running on h1, the guest on the same boot, and nothing is done', async () => {
    const uuids = VMS.map((vm) => host('h1').virsh('domuuid', vm).trim());
    synth('h1', 'br-missing');
    const { code, output } = await reconcileCommand();
    console.log(`reconcile with h1 in maintenance and the LAN on br-missing (exit ${code}):\n${output}`);
    expect(code).toBe(1);
    for (const vm of VMS) {
      expect(output).toContain(
        `refuse-move h1:${vm} → h2 (the configuration places ${vm} on h2; refused: bridge br-missing is not on h2: create it there (docs/networking.md), or place ${vm} elsewhere; ${vm} keeps running on h1)`,
      );
    }
    expect(output).toContain('reconcile failed: nothing done: 2 moves are refused (the VMs keep running where they are); do not apply');
    expect(output).not.toMatch(/shutting|shut down|virsh destroy|undefine/);
    expect({ h1: running('h1'), h2: running('h2') }).toEqual({ h1: VMS, h2: [] });
    expect(VMS.map((vm) => host('h1').virsh('domuuid', vm).trim())).toEqual(uuids);
    // Still the same boot, still reporting (a report newer than the one before the run).
    const later = await waitForGuestReport(host('h1').consoleLog('guest-1'), () => true, 30_000, booted);
    expect(later.bootId).toBe(booted.bootId);
  });

  drill('a cold move: listed as cold by --dry-run; the guest shuts down through ACPI, the one that ignores it is powered off after its 5 s; the apply starts both on h2', async () => {
    synth('h1');
    const dry = await reconcileCommand(['--dry-run']);
    console.log(`reconcile --dry-run with h1 in maintenance (exit ${dry.code}):\n${dry.output}`);
    expect(dry.code).toBe(0);
    expect(dry.output).toContain('would cold-move h1:guest-1 → h2 (the configuration places guest-1 on h2; cold: disk vda is not on shared storage (pool cdktf-local); shut down through ACPI (up to 30 s), then created on h2 by the apply)');
    expect(dry.output).toContain('would cold-move h1:stubborn-1 → h2 (the configuration places stubborn-1 on h2; cold: disk vda is not on shared storage (pool cdktf-local); shut down through ACPI (up to 5 s), then created on h2 by the apply)');
    expect(running('h1')).toEqual(VMS);

    const before = logSize('h1', 'guest-1');
    const started = Date.now();
    const { code, output } = await reconcileCommand();
    console.log(`reconcile with h1 in maintenance (exit ${code}, ${((Date.now() - started) / 1000).toFixed(1)} s):\n${output}`);
    expect(code).toBe(0);
    expect(output).toMatch(/^ {2}guest-1 shut down through ACPI on h1 in [\d.]+ s$/m);
    const stubborn = /^ {2}stubborn-1 did not shut down within 5 s of the ACPI request on h1: powered off \(virsh destroy\) after ([\d.]+) s$/m.exec(output);
    expect(stubborn).not.toBeNull();
    expect(Number(stubborn![1])).toBeGreaterThanOrEqual(5);
    // The guest heard the power button and powered itself off.
    const heard = fs.readFileSync(host('h1').consoleLog('guest-1')).subarray(before).toString('utf8');
    expect(heard).toContain('test-guest: power button: powering off');
    expect(host('h1').domains()).toEqual([]);

    tofu(stackDir, ['apply', '-auto-approve', '-input=false']);
    expect({ h1: running('h1'), h2: running('h2') }).toEqual({ h1: [], h2: VMS });
    const again = await waitForGuestReport(host('h2').consoleLog('guest-1'), (r) => r.instanceId === 'guest-1', 120_000);
    expect(again.bootId).not.toBe(booted.bootId); // a cold move: a new boot on h2
    expect(tofuPlan(stackDir).code).toBe(0);
  });

  drill('SIGTERM during a cold move: the VM being stopped finishes its move, the other is not touched, the command fails listing it; the next run completes', async () => {
    // reconcile takes a host's running domains in virsh's order, by domain id: guest-1 started again
    // comes after stubborn-1, whose 5 s wait for an ACPI shutdown nothing hears is where SIGTERM lands
    // (guest-1 shuts down in under a second, too fast for a signal sent on its first line).
    host('h2').virsh('shutdown', '--mode', 'acpi', 'guest-1');
    await waitFor(() => host('h2').virsh('domstate', 'guest-1').trim() === 'shut off', 'guest-1 shut off on h2', 60_000);
    host('h2').virsh('start', 'guest-1');
    synth('h2');
    let signalled = false;
    const { code, output } = await reconcileCommand([], (out, child) => {
      if (!signalled && /^ {2}shutting \S+ down on h2/m.test(out)) {
        signalled = true;
        child.kill('SIGTERM');
      }
    });
    console.log(`reconcile with h2 in maintenance, SIGTERM during the first shutdown (exit ${code}):\n${output}`);
    expect(signalled).toBe(true);
    expect(code).toBe(1);
    const first = /^ {2}shutting (\S+) down on h2/m.exec(output)![1];
    const other = VMS.find((vm) => vm !== first)!;
    expect(output).toContain('SIGTERM: stopping after the current step');
    expect(output).toMatch(new RegExp(`^ {2}${first} (shut down through ACPI|did not shut down within)`, 'm'));
    expect(output).toMatch(new RegExp(`reconcile failed: stopped by a signal after \\d+ steps?; not done, do not apply:\n(.*\n)*cold-move h2:${other} → h1`));
    expect(output).not.toMatch(new RegExp(`shutting ${other}`));
    expect(host('h2').domains()).toEqual([other]);
    expect(running('h2')).toEqual([other]); // untouched, still running

    const again = await reconcileCommand();
    console.log(`reconcile again (exit ${again.code}):\n${again.output}`);
    expect(again.code).toBe(0);
    expect(again.output).toContain(`cold-move h2:${other} → h1`);
    expect(host('h2').domains()).toEqual([]);
    tofu(stackDir, ['apply', '-auto-approve', '-input=false']);
    expect({ h1: running('h1'), h2: running('h2') }).toEqual({ h1: VMS, h2: [] });
  });
}, lab.ok ? undefined : `lab unavailable: ${lab.reason}`, guest.ok ? undefined : `no test guest: ${guest.reason}`);
