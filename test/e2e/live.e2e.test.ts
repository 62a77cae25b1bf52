/**
 * Live operations drills: the mail-service stack on a lab of two real libvirt hosts, driven through
 * `cdktf-libvirt-cluster reconcile` as an operator runs it (the command, its output, its exit code):
 * maintenance drains a host by live migration, a raise of vCPUs and memory is hot-added, and a
 * migration whose destination dies half-way leaves the VM running on its source and fails the
 * command; after the host returns, the next reconcile completes the drain; a migration that runs
 * past its timeout is aborted, showing its progress first. Each drill prints its duration and the
 * command's output.
 *
 * Shared storage libvirt accepts for a live migration without --unsafe: libvirt 9.0 checks that a
 * disk's file system is one it knows as shared (NFS, GFS2, OCFS2, CIFS, Ceph, GPFS, ... or a FUSE
 * mount of type fuse.glusterfs or fuse.quobyte), whatever the cache mode. This kernel has no NFS,
 * CIFS or Ceph client, so the drills' shared pool is a FUSE passthrough (bindfs) of a folder,
 * mounted with the subtype `glusterfs`: one folder every lab host sees, typed as cluster storage.
 * It is mounted before the lab starts, so each host's mount namespace gets it.
 */
import { ChildProcess, execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App } from 'cdktf';
import { desiredDomains, RemovalPolicy, Size } from '../../lib';
import { stackEnvironment } from '../../stacks/environment';
import { MailServiceStack } from '../../stacks/mail-service';
import { Lab, labPrerequisites } from '../lab/lab';
import { guestDomainType, testGuestImage, waitForGuestReport } from './test-guest';
import { describeE2e, destroyAfterDrills, drillTest, TOFU, tofu, tofuEnv, tofuPlan, waitFor } from './toolchain';

const REPO = path.join(__dirname, '..', '..');
const HOSTS = ['h1', 'h2'];
const lab = labPrerequisites();
const bindfs = ['/usr/bin/bindfs', '/bin/bindfs'].find((p) => fs.existsSync(p));
const guest = testGuestImage();
const virt = guestDomainType();
const why = !lab.ok ? `lab unavailable: ${lab.reason}` : bindfs === undefined ? 'bindfs is not installed (apt-get install bindfs)' : undefined;

describeE2e(`live operations on a two-host lab (${guest.ok ? 'test guest' : `blank image: ${guest.reason}`}; ${virt.type}: ${virt.reason})`, () => {
  let theLab: Lab;
  let scratch: string;
  let sharedMount: string;
  let fuse: ChildProcess | undefined;
  let work: string;
  let stackDir: string;
  let applied = false;
  const durations: string[] = [];
  const host = (name: string) => theLab.host(name);

  function synth(props: { vcpus?: number; memoryMiB?: number; context?: Record<string, unknown>; bridge?: string } = {}): void {
    const app = new App({ outdir: path.join(work, 'out'), context: props.context ?? {} });
    new MailServiceStack(app, 'mail-service', {
      environment: stackEnvironment({
        LIBVIRT_HOSTS: HOSTS.map((h) => `${h}=${host(h).uri}`).join(','),
        LIBVIRT_DOMAIN_TYPE: virt.type,
        LIBVIRT_SHARED_PATH: path.join(sharedMount, 'pool'),
        LIBVIRT_BRIDGE: props.bridge ?? theLab.bridge,
        LIBVIRT_CONSOLE_LOG: '1',
        ...(guest.ok ? { LIBVIRT_IMAGE: guest.path } : {}),
      }),
      lockFile: path.join(work, 'mail-service.placement-lock.json'),
      instant: new Date('2026-11-26T03:00:00+01:00'),
      frozenLock: false,
      dataRemovalPolicy: RemovalPolicy.DESTROY,
      mailVcpus: props.vcpus,
      mailMemory: props.memoryMiB !== undefined ? Size.mebibytes(props.memoryMiB) : undefined,
    });
    app.synth();
  }

  /** Where the synthesized configuration places each VM. */
  const placements = () =>
    Object.fromEntries([...desiredDomains(JSON.parse(fs.readFileSync(path.join(stackDir, 'cdk.tf.json'), 'utf8'))).values()].map((d) => [d.name, d.host]));
  const runningOn = () => Object.fromEntries(HOSTS.map((h) => [h, host(h).isUp() ? host(h).runningDomains().sort() : []]));
  /** Every running VM and its host; throws if one runs twice. */
  const where = () => {
    const found: Record<string, string> = {};
    for (const [h, vms] of Object.entries(runningOn())) {
      for (const vm of vms) {
        if (found[vm] !== undefined) throw new Error(`${vm} runs on ${found[vm]} and ${h}`);
        found[vm] = h;
      }
    }
    return found;
  };
  const uuids = () => Object.fromEntries(Object.entries(where()).map(([vm, h]) => [vm, host(h).virsh('domuuid', vm).trim()]));

  function apply(): void {
    applied = true;
    tofu(stackDir, ['apply', '-auto-approve', '-input=false']);
  }

  /** `cdktf-libvirt-cluster reconcile` as an operator runs it; resolves with its exit code and output. */
  function reconcileCommand(extra: string[] = [], started?: (child: ChildProcess) => void): Promise<{ code: number; output: string }> {
    const args = [path.join(REPO, 'lib', 'ops', 'cli.ts'), 'reconcile', '--stack-dir', stackDir];
    for (const h of HOSTS) args.push('--host', `${h}=${host(h).uri}`, '--migrate-uri', `${h}=tcp://127.0.0.1`);
    const child = spawn(path.join(REPO, 'node_modules', '.bin', 'tsx'), [...args, ...extra], {
      cwd: REPO,
      env: { ...tofuEnv(), TERRAFORM_BINARY_NAME: TOFU },
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    started?.(child);
    return new Promise((resolve) => child.on('exit', (code) => resolve({ code: code ?? -1, output: output.replace(/\n$/, '') })));
  }

  const drill = drillTest(durations);

  beforeAll(async () => {
    // Without the guest the drills still prove the migrations through virsh; CI insists on the guest's own view.
    if (!guest.ok && process.env.REQUIRE_E2E === '1') throw new Error(`REQUIRE_E2E=1 but ${guest.reason}`);
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'cdktf-live-'));
    const store = path.join(scratch, 'store');
    sharedMount = path.join(scratch, 'shared');
    fs.mkdirSync(store);
    fs.mkdirSync(sharedMount);
    // -f: bindfs stays our child, ended by its pid.
    fuse = spawn(bindfs!, ['-f', '-o', 'subtype=glusterfs,fsname=cdktf-live-shared', store, sharedMount], { stdio: 'ignore' });
    const mounted = () => fs.readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === sharedMount && l.split(' ')[2] === 'fuse.glusterfs');
    await waitFor(mounted, 'the FUSE mount of the shared storage', 10_000);
    theLab = await Lab.start({ hosts: 2 });
    work = path.join(theLab.root, 'live');
    fs.mkdirSync(work);
    stackDir = path.join(work, 'out', 'stacks', 'mail-service');
    fs.mkdirSync(path.join(sharedMount, 'pool'));
    theLab.defineSharedPool('shared', path.join(sharedMount, 'pool'), { autostart: true }); // back by itself after a reboot, like a site's NFS pool
    synth();
    tofu(stackDir, ['init', '-input=false']);
    apply();
  });

  afterAll(async () => {
    destroyAfterDrills(stackDir, applied);
    await theLab?.teardown();
    try {
      execFileSync('fusermount', ['-u', sharedMount]);
    } catch (err) {
      console.log(`fusermount -u ${sharedMount}: ${err}`);
    }
    if (fuse?.pid !== undefined && fuse.exitCode === null) fuse.kill('SIGTERM');
    fs.rmSync(scratch, { recursive: true, force: true });
    console.log(durations.join('\n'));
  });

  drill('maintenance: reconcile live-migrates the mail replicas off the host, every VM keeps running, and the plan shows no changes', async () => {
    const before = where();
    expect(Object.keys(before).sort()).toEqual(['directory-1', 'mail-1', 'mail-2']);
    const drained = before['mail-1'];
    const ids = uuids();
    const moving = Object.keys(before).filter((vm) => before[vm] === drained);
    const nics = Object.fromEntries(moving.map((vm) => [vm, host(drained).interfaces(vm).map((i) => `${i.type} ${i.source} ${i.model} ${i.mac}`)]));
    const reports = Object.fromEntries(guest.ok ? await Promise.all(moving.map(async (vm) => [vm, await waitForGuestReport(host(drained).consoleLog(vm), () => true, 90_000)])) : []);

    synth({ context: { [`libvirt-cluster:host-state:${drained}`]: 'maintenance' } });
    const { code, output } = await reconcileCommand();
    console.log(`reconcile with ${drained} in maintenance (exit ${code}):\n${output}`);
    expect(code).toBe(0);
    for (const vm of moving) expect(output).toMatch(new RegExp(`^  migrated ${vm} from ${drained} to h\\d in [\\d.]+ s; libvirt: \\d+ ms elapsed, downtime \\d+ ms$`, 'm'));
    expect(output).not.toMatch(/stop-and-undefine-domain|cold-move/);

    const after = where();
    expect(after).toEqual(Object.fromEntries(Object.keys(before).map((vm) => [vm, placements()[vm]])));
    expect(runningOn()[drained]).toEqual([]);
    expect(host(drained).domains()).toEqual([]); // --undefinesource: no stale definition left
    expect(uuids()).toEqual(ids);
    // Each NIC kept its MAC and bridge through the migration (virsh domiflist on the destination).
    for (const vm of moving) {
      expect(nics[vm]).toEqual([expect.stringMatching(new RegExp(`^bridge ${theLab.bridge} virtio 52:54(:[0-9a-f]{2}){4}$`))]);
      expect(host(after[vm]).interfaces(vm).map((i) => `${i.type} ${i.source} ${i.model} ${i.mac}`)).toEqual(nics[vm]);
    }
    const plan = tofuPlan(stackDir);
    expect(plan.output).toContain('No changes.');
    expect(plan.code).toBe(0);
    for (const vm of Object.keys(reports)) {
      // The guest did not reboot: the same boot, reporting on from its new host.
      const next = await waitForGuestReport(host(after[vm]).consoleLog(vm), () => true, 30_000);
      expect(next.bootId).toBe(reports[vm].bootId);
      expect({ macs: next.macs, addresses: next.addresses }).toEqual({ macs: reports[vm].macs, addresses: reports[vm].addresses });
    }
  });

  drill('hot-add: mail replicas 1 → 2 vCPUs and 256 → 384 MiB live, recorded in the state, never restarted', async () => {
    const placed = where();
    const mails = ['mail-1', 'mail-2'];
    const pids = Object.fromEntries(mails.map((vm) => [vm, host(placed[vm]).qemuPid(vm)]));
    const reports = Object.fromEntries(guest.ok ? await Promise.all(mails.map(async (vm) => [vm, await waitForGuestReport(host(placed[vm]).consoleLog(vm), () => true, 30_000)])) : []);
    const maintenance = Object.fromEntries(HOSTS.filter((h) => runningOn()[h].length === 0).map((h) => [`libvirt-cluster:host-state:${h}`, 'maintenance']));

    synth({ vcpus: 2, memoryMiB: 384, context: maintenance });
    const planBefore = tofuPlan(stackDir);
    expect(planBefore.output).toMatch(/Plan: 0 to add, 2 to change, 0 to destroy/); // what the apply would do: restart both
    const { code, output } = await reconcileCommand();
    console.log(`reconcile after mailVcpus 1 → 2, mailMemory 256 → 384 MiB (exit ${code}):\n${output}`);
    expect(code).toBe(0);
    for (const vm of mails) expect(output).toContain(`hot-add ${placed[vm]}:${vm} (vCPUs 1 → 2 of 2, memory 256 → 384 of 512 MiB)`);

    for (const vm of mails) {
      const h = host(placed[vm]);
      expect(h.virsh('vcpucount', vm, '--live', '--current').trim()).toBe('2');
      expect(h.virsh('dumpxml', '--inactive', vm)).toContain("<currentMemory unit='KiB'>393216</currentMemory>");
      expect(h.virsh('dominfo', vm)).toMatch(/CPU\(s\):\s+2\n/);
      expect(h.qemuPid(vm)).toBe(pids[vm]); // the same QEMU process: never restarted
    }
    const plan = tofuPlan(stackDir);
    expect(plan.output).toContain('No changes.');
    for (const vm of Object.keys(reports)) {
      const grown = await waitForGuestReport(host(placed[vm]).consoleLog(vm), (r) => r.cpusOnline === 2 && r.memTotalKib > reports[vm].memTotalKib, 60_000, reports[vm]);
      expect(grown.bootId).toBe(reports[vm].bootId);
      console.log(`${vm} in the guest: ${reports[vm].cpusOnline} → ${grown.cpusOnline} CPUs online, MemTotal ${reports[vm].memTotalKib} → ${grown.memTotalKib} KiB`);
    }

    // Lowering is left to the apply, which restarts the VM: reconcile says so and changes nothing.
    synth({ vcpus: 2, memoryMiB: 256, context: maintenance });
    const lowered = await reconcileCommand(['--dry-run']);
    console.log(`reconcile --dry-run after mailMemory 384 → 256 MiB (exit ${lowered.code}):\n${lowered.output}`);
    for (const vm of mails) expect(lowered.output).toContain(`would restart-on-apply ${placed[vm]}:${vm} (memory lowered 384 → 256 MiB)`);
    synth({ vcpus: 2, memoryMiB: 384, context: maintenance });
    expect(tofuPlan(stackDir).code).toBe(0);
  });

  drill('a migration that fails half-way: the VM stays on its source, nothing runs twice, the command fails; after the host returns reconcile completes the drain', async () => {
    const before = where();
    const source = Object.values(before)[0];
    const destination = HOSTS.find((h) => h !== source)!;
    const ids = uuids();
    synth({ vcpus: 2, memoryMiB: 384, context: { [`libvirt-cluster:host-state:${source}`]: 'maintenance' } });
    // 1 MiB/s: slow enough for the destination to die while the first migration runs.
    let killed = '';
    const run = reconcileCommand(['--migrate-bandwidth', '1'], () => undefined);
    await waitFor(
      () => Object.keys(before).some((vm) => {
        try {
          return /Job type:\s+Unbounded/.test(host(source).virsh('domjobinfo', vm));
        } catch {
          return false;
        }
      }),
      'a migration job on the source',
      60_000,
    );
    await host(destination).stopHard();
    killed = `${destination} killed while a migration ran`;
    const { code, output } = await run;
    console.log(`reconcile while ${killed} (exit ${code}):\n${output}`);
    expect(code).toBe(1);
    expect(output).toMatch(new RegExp(`live migration of \\S+ from ${source} to ${destination} failed: .+; \\S+ is running on ${source}`));
    expect(output).toContain('failed; nothing else was done; do not apply');
    expect(where()).toEqual(before); // every VM still runs, once, on its source
    expect(uuids()).toEqual(ids);

    await host(destination).restart();
    expect(host(destination).runningDomains()).toEqual([]);
    const done = await reconcileCommand();
    console.log(`reconcile after ${destination} returned (exit ${done.code}):\n${done.output}`);
    expect(done.code).toBe(0);
    expect(where()).toEqual(Object.fromEntries(Object.keys(before).map((vm) => [vm, destination])));
    expect(uuids()).toEqual(ids);
    const plan = tofuPlan(stackDir);
    expect(plan.output).toContain('No changes.');
  });

  drill('a bridge missing on the hosts: reconcile does nothing at all and fails, listing it per host', async () => {
    const before = where();
    const ids = uuids();
    const active = Object.values(before)[0];
    const maintenance = { [`libvirt-cluster:host-state:${HOSTS.find((h) => h !== active)}`]: 'maintenance' };
    synth({ vcpus: 2, memoryMiB: 384, bridge: 'br-missing', context: maintenance });
    const { code, output } = await reconcileCommand();
    console.log(`reconcile with the LAN on bridge br-missing (exit ${code}):\n${output}`);
    expect(code).toBe(1);
    expect(output).toContain(`missing-segment ${active}:bridge br-missing (bridge br-missing is not on this host; directory-1, mail-1, mail-2 need it)`);
    expect(output).not.toMatch(/refresh-pool|migrate-domain|hot-add/);
    expect(where()).toEqual(before);
    expect(uuids()).toEqual(ids);
    synth({ vcpus: 2, memoryMiB: 384, context: maintenance });
  });

  drill('a migration that runs past --migrate-timeout is aborted: its progress is shown, every VM stays on its source, the command fails', async () => {
    const before = where();
    const ids = uuids();
    const active = Object.values(before)[0];
    const other = HOSTS.find((h) => h !== active)!;
    synth({ vcpus: 2, memoryMiB: 384, context: { [`libvirt-cluster:host-state:${active}`]: 'maintenance' } });
    // 1 MiB/s: a few hundred MiB of guest memory take minutes, the timeout is 8 s.
    const { code, output } = await reconcileCommand(['--migrate-bandwidth', '1', '--migrate-timeout', '8']);
    console.log(`reconcile with --migrate-bandwidth 1 --migrate-timeout 8 (exit ${code}):\n${output}`);
    expect(code).toBe(1);
    expect(output).toMatch(/^ {2}\S+: \d+% \(\d+ of \d+ MiB copied, \d+ MiB left\) after \d+ s$/m);
    expect(output).toMatch(/^ {2}\S+: the migration runs longer than 8 s: aborting it \(virsh domjobabort\)$/m);
    for (const vm of Object.keys(before)) expect(output).toMatch(new RegExp(`live migration of ${vm} from ${active} to ${other} failed: aborted after 8 s \\(.*\\); ${vm} is running on ${active}`));
    expect(output).not.toMatch(/cold-move|shutting/);
    expect(where()).toEqual(before);
    expect(uuids()).toEqual(ids);
    synth({ vcpus: 2, memoryMiB: 384, context: { [`libvirt-cluster:host-state:${other}`]: 'maintenance' } });
    expect(tofuPlan(stackDir).code).toBe(0);
  });
}, why);
