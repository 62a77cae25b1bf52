/**
 * Failover drills: the mail-service stack, synthesized by the library and applied by OpenTofu,
 * on a lab of two real libvirt hosts with shared storage and disk leases. Each drill asserts
 * through virsh on every host, and prints how long it took.
 */
import { spawn } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { App } from 'cdktf';
import { reconcile, RemovalPolicy } from '../../lib';
import { stackEnvironment } from '../../stacks/environment';
import { MailServiceStack } from '../../stacks/mail-service';
import { Lab, labPrerequisites } from '../lab/lab';
import { GuestReport, guestDomainType, testGuestImage, waitForGuestReport } from './test-guest';
import { describeE2e, destroyAfterDrills, drillTest, TOFU, tofu, tofuEnv, tofuPlan } from './toolchain';

const VMS = ['directory-1', 'mail-1', 'mail-2', 'mail-3'];

/** The direct children of a process we started (read before it dies, while they are still its). */
function childPids(pid: number): number[] {
  const tasks = fs.readdirSync(`/proc/${pid}/task`);
  return tasks.flatMap((tid) =>
    fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(/\s+/).filter((x) => x).map(Number),
  );
}
const lab = labPrerequisites();
const guest = testGuestImage();
/** The LAN addresses the mail example gives each VM (stacks/mail-service.ts). */
const ADDRESSES: Record<string, string[]> = Object.fromEntries(
  VMS.map((vm, i) => [vm, [`192.0.2.${10 + i}/24`, `2001:db8:25::${10 + i}/64`]]),
);

describeE2e('failover drills on a two-host lab', () => {
  let theLab: Lab;
  let work: string;
  let stackDir: string;
  let lockFile: string;
  let applied = false;
  const durations: string[] = [];

  const host = (name: string) => theLab.host(name);
  const running = () => Object.fromEntries(['h1', 'h2'].map((h) => [h, host(h).isUp() ? host(h).runningDomains().sort() : []]));
  const runningEverywhere = () => Object.values(running()).flat().sort();
  /** Waits for every running VM's guest to report from its current host; checks what it read of its seed. */
  const guestsReport = async (since: Record<string, GuestReport> = {}) => {
    const reports: Record<string, GuestReport> = {};
    for (const [h, vms] of Object.entries(running())) {
      for (const vm of vms) {
        const nic = host(h).interfaces(vm)[0];
        const report = await waitForGuestReport(host(h).consoleLog(vm), (r) => r.instanceId === vm && (since[vm] === undefined || r.bootId !== since[vm].bootId || r.seq > since[vm].seq), 120_000);
        expect({ vm, hostname: report.hostname, macs: report.macs, addresses: report.addresses }).toEqual({ vm, hostname: vm, macs: [nic.mac], addresses: ADDRESSES[vm] });
        reports[vm] = report;
      }
    }
    return reports;
  };
  /** Each running VM's NICs as `virsh domiflist` shows them on its host: `type source mac`. */
  const nicsEverywhere = () =>
    Object.fromEntries(
      Object.entries(running()).flatMap(([h, vms]) => vms.map((vm) => [vm, host(h).interfaces(vm).map((i) => `${i.type} ${i.source} ${i.mac}`)])),
    );

  function synth(localTime: string, context: Record<string, unknown> = {}): void {
    const app = new App({ outdir: path.join(work, 'out'), context });
    new MailServiceStack(app, 'mail-service', {
      environment: stackEnvironment({
        LIBVIRT_HOSTS: `h1=${host('h1').uri},h2=${host('h2').uri}`,
        LIBVIRT_DOMAIN_TYPE: guestDomainType().type,
        // The real test guest, reporting on its serial console (copied to the host's log folder).
        LIBVIRT_IMAGE: guest.ok ? guest.path : '',
        LIBVIRT_CONSOLE_LOG: '1',
        LIBVIRT_SHARED_PATH: path.join(theLab.sharedDir, 'pool'),
        LIBVIRT_BRIDGE: theLab.bridge, // the LAN segment: one bridge every lab host has
      }),
      lockFile,
      instant: new Date(`2026-11-26T${localTime}:00+01:00`),
      frozenLock: false,
      dataRemovalPolicy: RemovalPolicy.DESTROY, // the drill ends with a destroy
    });
    app.synth();
  }

  const apply = () => {
    applied = true;
    return tofu(stackDir, ['apply', '-auto-approve', '-input=false']);
  };
  // The lab's shared pool is a plain folder, which libvirt does not know as shared storage: it
  // refuses every live migration, and the drills accept the cold moves (an ACPI shutdown first).
  const reconcileAll = (log?: (line: string) => void) =>
    reconcile({ stackDir, hosts: { h1: host('h1').uri, h2: host('h2').uri }, terraformBinary: TOFU, env: tofuEnv(), coldWhenLiveRefused: true, log });
  const dataChecksums = () => {
    const dir = path.join(theLab.sharedDir, 'pool');
    return Object.fromEntries(
      fs.readdirSync(dir).filter((f) => /-(data|boot)\.qcow2$/.test(f)).sort().map((f) => [f, createHash('sha256').update(fs.readFileSync(path.join(dir, f))).digest('hex')]),
    );
  };
  const drill = drillTest(durations);

  beforeAll(async () => {
    theLab = await Lab.start({ hosts: 2 });
    work = path.join(theLab.root, 'drills');
    fs.mkdirSync(work);
    stackDir = path.join(work, 'out', 'stacks', 'mail-service');
    lockFile = path.join(work, 'mail-service.placement-lock.json');
    // Shared storage is site infrastructure (an NFS mount in real life): the pool exists on every host beforehand.
    const shared = path.join(theLab.sharedDir, 'pool');
    fs.mkdirSync(shared);
    theLab.defineSharedPool('shared', shared);
  });

  afterAll(async () => {
    destroyAfterDrills(stackDir, applied);
    await theLab?.teardown();
    console.log(durations.join('\n'));
  });

  drill('deploy at 03:00: two mail replicas on different hosts, each guest reports its seed, a second plan shows no changes', async () => {
    synth('03:00');
    tofu(stackDir, ['init', '-input=false']);
    apply();
    const where = running();
    expect(runningEverywhere()).toEqual(['directory-1', 'mail-1', 'mail-2']);
    const mailHosts = ['mail-1', 'mail-2'].map((vm) => (where.h1.includes(vm) ? 'h1' : 'h2'));
    expect(new Set(mailHosts).size).toBe(2);
    for (const vm of ['mail-1', 'mail-2']) {
      const h = host(where.h1.includes(vm) ? 'h1' : 'h2');
      // The definition: the live XML shows the balloon's current size, which the guest's driver reaches only after boot.
      const xml = h.virsh('dumpxml', '--inactive', vm);
      expect(xml).toMatch(new RegExp(`<domain type='${guestDomainType().type}'`));
      // 1 of up to 2 vCPUs and 256 of up to 512 MiB: room to hot-add.
      expect(xml).toMatch(/<vcpu placement='static' current='1'>2<\/vcpu>/);
      expect(xml).toMatch(/<memory unit='KiB'>524288<\/memory>/);
      expect(xml).toMatch(/<currentMemory unit='KiB'>262144<\/currentMemory>/);
      expect(xml).toMatch(/<features>\s*<acpi\/>/);
      const disks = h.virsh('domblklist', vm, '--details');
      expect(disks).toMatch(new RegExp(`volume\\s+disk\\s+vda\\s+${vm}-boot\\.qcow2`));
      expect(disks).toMatch(new RegExp(`volume\\s+disk\\s+vdb\\s+${vm}-data\\.qcow2`));
      expect(disks).toMatch(new RegExp(`volume\\s+cdrom\\s+sda\\s+${vm}-cloudinit-[0-9a-f]{16}\\.iso`));
      expect(xml).toContain(`<source pool='shared' volume='${vm}-data.qcow2'`);
      expect(xml).toContain(`<source pool='shared' volume='${vm}-boot.qcow2'`);
    }
    const reports = await guestsReport();
    console.log(`guests after the deploy:\n${Object.entries(reports).map(([vm, r]) => `  ${vm}: ${JSON.stringify(r)}`).join('\n')}`);
    expect(tofuPlan(stackDir).code).toBe(0);
  });

  drill('a VM stopped outside Terraform: the plan does not see it, reconcile starts it', async () => {
    const where = running();
    const h = where.h1.includes('mail-1') ? 'h1' : 'h2';
    host(h).virsh('destroy', 'mail-1');
    expect(tofuPlan(stackDir).code).toBe(0); // provider 0.9.x applies `running` only at create
    const actions = (await reconcileAll()).filter((a) => a.action !== 'refresh-pool');
    expect(actions.map((a) => `${a.action} ${a.host}:${a.target}`)).toEqual([`start-domain ${h}:mail-1`]);
    expect(running()).toEqual(where);
  });

  drill('peak at 09:00: the third replica appears and nothing else is touched', () => {
    const before = running();
    const uuids = Object.fromEntries(Object.entries(before).flatMap(([h, vms]) => vms.map((vm) => [vm, host(h).virsh('domuuid', vm).trim()])));
    synth('09:00');
    const plan = tofuPlan(stackDir);
    expect(plan.code).toBe(2);
    expect(plan.output).toMatch(/Plan: 3 to add, 0 to change, 0 to destroy/);
    const touched = [...plan.output.matchAll(/# (\S+) (will|must) be/g)].map((m) => m[1]);
    expect(touched.length).toBe(3);
    for (const address of touched) expect(address).toContain('mail_replica-3');
    apply();
    expect(runningEverywhere()).toEqual(VMS);
    for (const [h, vms] of Object.entries(before)) for (const vm of vms) expect(host(h).virsh('domuuid', vm).trim()).toBe(uuids[vm]);
  });

  drill('host failure: h1 dies, is marked failed, and everything runs on h2 with the same data', async () => {
    const booted = await guestsReport();
    const checksums = dataChecksums();
    expect(Object.keys(checksums)).toHaveLength(3 + 4); // mail data disks and every boot disk
    const nics = nicsEverywhere();
    expect(Object.keys(nics).sort()).toEqual(VMS);
    for (const list of Object.values(nics)) expect(list).toEqual([expect.stringMatching(new RegExp(`^bridge ${theLab.bridge} 52:54(:[0-9a-f]{2}){4}$`))]);
    expect(new Set(Object.values(nics).flat()).size).toBe(VMS.length);
    const onH1 = running().h1;
    expect(onH1.length).toBeGreaterThan(0);
    await host('h1').stopHard();
    synth('09:00', { 'libvirt-cluster:host-state:h1': 'failed' });
    // h1 cannot be reached; on h2 reconcile refreshes the shared pool, so the disks h1 created are found.
    const actions = await reconcileAll();
    expect(actions.map((a) => `${a.action} ${a.host}:${a.target}`)).toEqual([`host-unreachable h1:${host('h1').uri}`, 'refresh-pool h2:shared']);
    const plan = tofuPlan(stackDir);
    fs.writeFileSync(path.join(work, 'failover-plan.txt'), plan.output);
    console.log(`plan after h1 failed:\n${plan.output}`);
    expect(plan.output).toMatch(/0 to destroy/);
    apply(); // h1's socket is gone: any contact with it would fail this apply
    expect(host('h2').runningDomains().sort()).toEqual(VMS);
    expect(dataChecksums()).toEqual(checksums);
    // Every moved VM is on the same bridge with the same MAC (checked with virsh domiflist on h2),
    // and its guest, booted again on h2, reports the same MAC and addresses.
    expect(nicsEverywhere()).toEqual(nics);
    const after = await guestsReport(booted);
    for (const vm of VMS) expect({ vm, rebooted: after[vm].bootId !== booted[vm].bootId }).toEqual({ vm, rebooted: onH1.includes(vm) });
    // What each mail guest wrote on its data disk before h1 died (a mark its first boot wrote), it
    // reads back after the failover, from an earlier boot than the one reading it; the directory has no data disk.
    for (const vm of VMS) {
      const wrote = booted[vm].data;
      if (vm === 'directory-1') {
        expect(wrote).toBe('');
        continue;
      }
      expect(wrote).toMatch(new RegExp(`^CDKTF-GUEST-DATA boot [0-9a-f-]{36} of ${vm}$`));
      expect({ vm, read: after[vm].data }).toEqual({ vm, read: wrote });
      if (onH1.includes(vm)) expect(wrote).not.toContain(after[vm].bootId);
    }
    console.log(`data disk marks read after the failover:\n${VMS.map((vm) => `  ${vm}: '${after[vm].data}' (now boot ${after[vm].bootId})`).join('\n')}`);
    console.log(`NICs after the failover, on h2:\n${Object.entries(nicsEverywhere()).map(([vm, l]) => `  ${vm}: ${l.join('; ')}`).join('\n')}`);
  });

  drill('host return: no second copy runs, and once h1 is active again nothing moves', async () => {
    await host('h1').restart();
    expect(host('h1').runningDomains()).toEqual([]);
    expect(runningEverywhere()).toEqual(VMS);
    const stale = host('h1').domains().filter((d) => VMS.includes(d));
    expect(stale.length).toBeGreaterThan(0);
    expect(() => host('h1').virsh('start', stale[0])).toThrow(/lock/i); // the lease (or QEMU's image lock) refuses it
    expect(runningEverywhere()).toEqual(VMS);

    synth('09:00');
    const actions = await reconcileAll();
    console.log(actions.map((a) => `${a.action} ${a.host}:${a.target}`).join('\n'));
    expect(actions.filter((a) => a.action === 'undefine-domain').map((a) => a.target).sort()).toEqual(stale.sort());
    expect(actions.some((a) => a.action === 'stop-and-undefine-domain' || a.action === 'cold-move')).toBe(false);
    const plan = tofuPlan(stackDir);
    expect(plan.output).not.toMatch(/# libvirt_domain\.\S+ (will|must) be/);
    expect(plan.output).toMatch(/to add, 0 to change, 0 to destroy/);
    apply();
    expect(host('h2').runningDomains().sort()).toEqual(VMS);
    expect(tofuPlan(stackDir).code).toBe(0);
  });

  drill('maintenance: marking h2 maintenance moves its VMs to h1 (and forgetting reconcile runs nothing twice)', async () => {
    synth('09:00', { 'libvirt-cluster:host-state:h2': 'maintenance' });
    // Deploying without reconcile: the new copies cannot start while the old ones hold their leases.
    expect(() => apply()).toThrow(/lock/i);
    expect(runningEverywhere()).toEqual(VMS);
    expect(running().h2).toEqual(VMS);
    const logSize = (vm: string) => (fs.existsSync(host('h2').consoleLog(vm)) ? fs.statSync(host('h2').consoleLog(vm)).size : 0);
    const before = Object.fromEntries(VMS.map((vm) => [vm, logSize(vm)]));
    const lines: string[] = [];
    const actions = await reconcileAll((line) => lines.push(line));
    console.log(`reconcile with h2 in maintenance:\n${lines.join('\n')}`);
    // libvirt refuses each live migration (a plain folder is not storage it knows as shared): each VM moves cold, allowed.
    expect(actions.filter((a) => a.action === 'cold-move').map((a) => a.target).sort()).toEqual(VMS);
    for (const vm of VMS) {
      expect(lines.join('\n')).toMatch(new RegExp(`^  ${vm} shut down through ACPI on h2 in [\\d.]+ s$`, 'm'));
      // The guest heard the power button and powered itself off: no power-off by libvirt.
      if (guest.ok) expect(fs.readFileSync(host('h2').consoleLog(vm)).subarray(before[vm]).toString('utf8')).toContain('test-guest: power button: powering off');
    }
    expect(lines.join('\n')).not.toContain('virsh destroy');
    apply();
    expect(running()).toEqual({ h1: VMS, h2: [] });
    expect(tofuPlan(stackDir).code).toBe(0);
  });

  drill('failure during apply: h2 dies mid-apply; after it returns the next apply converges', async () => {
    synth('09:00', { 'libvirt-cluster:rebalance': true });
    await reconcileAll();
    const child = spawn(TOFU, ['apply', '-auto-approve', '-input=false', '-no-color'], { cwd: stackDir, env: tofuEnv() });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const exited = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? -1)));
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && !host('h2').virsh('vol-list', 'cdktf-local').includes('-cloudinit-')) {
      await new Promise((r) => setTimeout(r, 25));
    }
    await host('h2').stopHard();
    // The provider retries a lost connection until its timeout (minutes): like an operator, we
    // interrupt the apply, and kill it if it still hangs (its state lock dies with it).
    const gone = (ms: number) => Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
    let ending = 'on its own';
    if (!(await gone(15_000))) {
      ending = 'after an interrupt';
      child.kill('SIGINT');
      if (!(await gone(30_000))) {
        ending = 'killed';
        // Its provider plugins would outlive it, hung on the dead connection: end them too, by pid.
        const plugins = childPids(child.pid!);
        child.kill('SIGKILL');
        for (const pid of plugins) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
    }
    const code = await exited;
    console.log(`apply interrupted by the death of h2 ended ${ending}, exit ${code}`);
    expect(code).not.toBe(0);

    await host('h2').restart();
    synth('09:00');
    await reconcileAll();
    apply();
    expect(tofuPlan(stackDir).code).toBe(0);
    const everywhere = runningEverywhere();
    expect(everywhere).toEqual(VMS); // each exactly once
    expect(running().h2.length).toBeGreaterThan(0);
    // No orphaned volume: every volume on every pool is one Terraform knows.
    const shown = JSON.parse(tofu(stackDir, ['show', '-json']));
    const known = new Set<string>(shown.values.root_module.resources.filter((r: any) => r.type === 'libvirt_volume').map((r: any) => r.values.name));
    for (const [h, pool] of [['h1', 'cdktf-local'], ['h2', 'cdktf-local'], ['h1', 'shared']]) {
      host(h).virsh('pool-refresh', pool);
      const volumes = host(h).virsh('vol-list', pool).split('\n').slice(2).map((l) => l.trim().split(/\s+/)[0]).filter((v) => v);
      for (const v of volumes) expect({ pool, volume: v, known: known.has(v) }).toEqual({ pool, volume: v, known: true });
    }
  });

  drill('destroy: nothing is left on any host', () => {
    tofu(stackDir, ['destroy', '-auto-approve', '-input=false']);
    applied = false;
    for (const h of ['h1', 'h2']) {
      expect(host(h).domains()).toEqual([]);
      expect(host(h).virsh('pool-list', '--all', '--name').trim()).toBe('shared');
      expect(host(h).virsh('net-list', '--all', '--name').trim()).toBe('');
    }
    host('h1').virsh('pool-refresh', 'shared');
    expect(host('h1').virsh('vol-list', 'shared').split('\n').slice(2).filter((l) => l.trim())).toEqual([]);
  });
}, lab.ok ? undefined : `lab unavailable: ${lab.reason}`, guest.ok ? undefined : `no test guest: ${guest.reason}`);
