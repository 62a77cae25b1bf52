/**
 * No data lost to a code change, on two real lab hosts, with OpenTofu and with Terraform (where
 * installed): each engine deploys a stack, then the code changes as a user's would, and each plan
 * is read before it is applied.
 *
 * 1. a VM with a data disk is deleted from the code and a group's replicas are lowered for good:
 *    no plan destroys a data disk, and the files stay on the hosts with the same checksums;
 * 2. a failover group and a standalone VM get new construct ids (same libvirt names): the plan has
 *    0 to destroy, and after the apply the domains have the same UUIDs and the guest did not reboot;
 * 3. a new image and a grown data disk: reconcile grows the disk through the running guest, the
 *    plan replaces the boot disk only, the apply succeeds, and the next plan shows no changes.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { App, LocalBackend, TerraformStack } from 'cdktf';
import { Cluster, DomainType, FailoverGroup, Host, Image, reconcile, Size, VirtualMachine } from '../../lib';
import { Lab, labPrerequisites } from '../lab/lab';
import { GuestReport, guestDomainType, testGuestImage, waitForGuestReport } from './test-guest';
import { describeE2e, Engine, OPENTOFU, terraformEngine, tofu, tofuEnv, tofuPlan } from './toolchain';

const lab = labPrerequisites();
const guest = testGuestImage();
const terraform = terraformEngine();
const MiB = 2 ** 20;

/** What the code says in each step. */
interface Version {
  /** Construct id of the standalone VM named `solo`. */
  readonly soloId: string;
  readonly soloImage: 'guest' | 'guest-v2';
  readonly soloDataMiB: number;
  /** Whether the standalone VM `gone` is still in the code. */
  readonly gone: boolean;
  /** Construct id of the group whose replicas are named grp-1, grp-2, ... */
  readonly groupId: string;
  readonly replicas: number;
}

const V1: Version = { soloId: 'solo', soloImage: 'guest', soloDataMiB: 16, gone: true, groupId: 'grp', replicas: 3 };

function engineDrills(engine: Engine | undefined): void {
  if (!engine) {
    // OpenTofu is required under REQUIRE_E2E=1; Terraform is checked where it is installed.
    describe.skip('code changes lose no data (Terraform) [skipped: terraform is not installed]', () => test('needs terraform', () => undefined));
    return;
  }
  describeE2e(`code changes lose no data (${engine.name})`, () => {
    let theLab: Lab;
    let work: string;
    let stackDir: string;
    const stackName = `changes-${engine.name.toLowerCase()}`;
    const h = (name: string) => theLab.host(name);
    const run = (args: string[]) => tofu(stackDir, args, engine);

    function synth(v: Version): void {
      // The resource lock is the e2e file's (test/e2e/setup-lock-context.js): one stack name per engine.
      const app = new App({ outdir: path.join(work, 'out') });
      const stack = new TerraformStack(app, stackName);
      new LocalBackend(stack, { path: path.join(work, 'terraform.tfstate') });
      const type = guestDomainType().type === 'kvm' ? DomainType.KVM : DomainType.QEMU;
      const capacity = { cores: 2, memory: Size.gibibytes(2) };
      const h1 = new Host(stack, 'h1', { uri: h('h1').uri, domainType: type, poolPath: path.join(work, 'pool-h1'), capacity });
      const h2 = new Host(stack, 'h2', { uri: h('h2').uri, domainType: type, poolPath: path.join(work, 'pool-h2'), capacity });
      const guestImage = Image.fromFile(v.soloImage, guest.ok ? guest.path : '/missing-test-guest.qcow2');
      new VirtualMachine(stack, v.soloId, {
        name: 'solo',
        host: h1,
        memory: Size.mebibytes(96),
        image: guestImage,
        dataDisk: { size: Size.mebibytes(v.soloDataMiB) },
        network: false,
        console: { logToFile: true },
      });
      const blank = Image.blank('blank', Size.mebibytes(16));
      if (v.gone) new VirtualMachine(stack, 'gone', { host: h1, memory: Size.mebibytes(32), image: blank, dataDisk: { size: Size.mebibytes(8) }, network: false });
      const cluster = new Cluster(stack, 'cluster', { hosts: [h2], failuresToTolerate: 0, lockFile: path.join(work, 'placement-lock.json'), frozenLock: false });
      new FailoverGroup(stack, v.groupId, { cluster, namePrefix: 'grp', replicas: v.replicas, template: { memory: Size.mebibytes(32), image: blank, dataDisk: { size: Size.mebibytes(8) } } });
      app.synth();
    }

    /** The plan's resource changes, from `show -json` of a saved plan. */
    function plan(): { changes: { address: string; actions: string[]; previous?: string; name?: string }[]; text: string } {
      const text = run(['plan', '-input=false', '-out=plan.bin']);
      const shown = JSON.parse(run(['show', '-json', 'plan.bin']));
      const changes = (shown.resource_changes ?? []).map((c: any) => ({
        address: c.address,
        actions: c.change.actions,
        previous: c.previous_address,
        name: c.change.before?.name ?? c.change.after?.name,
      }));
      return { changes, text };
    }
    const apply = () => run(['apply', '-input=false', 'plan.bin']);
    const dataFiles = () =>
      Object.fromEntries(
        ['pool-h1', 'pool-h2'].flatMap((pool) =>
          fs.readdirSync(path.join(work, pool)).filter((f) => f.endsWith('-data.qcow2')).sort().map((f) => [f, createHash('sha256').update(fs.readFileSync(path.join(work, pool, f))).digest('hex')]),
        ),
      );
    const uuid = (host: string, domain: string) => h(host).virsh('domuuid', domain).trim();
    let firstBoot: GuestReport;
    let checksums: Record<string, string>;

    beforeAll(async () => {
      theLab = await Lab.start({ hosts: 2, leases: false });
      work = path.join(theLab.root, 'changes');
      for (const pool of ['pool-h1', 'pool-h2']) fs.mkdirSync(path.join(work, pool), { recursive: true, mode: 0o755 });
      fs.chmodSync(work, 0o755);
      stackDir = path.join(work, 'out', 'stacks', stackName);
      synth(V1);
      run(['init', '-input=false']);
      run(['apply', '-auto-approve', '-input=false']);
      firstBoot = await waitForGuestReport(h('h1').consoleLog('solo'), (r) => r.instanceId === 'solo', 180_000);
      checksums = dataFiles();
    });

    afterAll(async () => {
      await theLab?.teardown();
    });

    test('a VM deleted and a group lowered: no data disk destroyed, the files stay with the same bytes', () => {
      const started = Date.now();
      expect(Object.keys(checksums).sort()).toEqual(['gone-data.qcow2', 'grp-1-data.qcow2', 'grp-2-data.qcow2', 'grp-3-data.qcow2', 'solo-data.qcow2']);
      synth({ ...V1, gone: false, replicas: 2 });
      const { changes, text } = plan();
      const deleted = changes.filter((c) => c.actions.includes('delete'));
      expect(deleted.filter((c) => /-data\.qcow2$/.test(c.name ?? ''))).toEqual([]);
      // What leaves the code goes (the VMs and their boot and seed disks); their data disks are forgotten.
      expect(deleted.map((c) => c.name).sort()).toEqual(expect.arrayContaining(['gone', 'grp-3', 'gone-boot.qcow2', 'grp-3-boot.qcow2']));
      const forgotten = changes.filter((c) => c.actions.includes('forget')).map((c) => c.name).sort();
      expect(forgotten).toEqual(['gone-data.qcow2', 'grp-3-data.qcow2']);
      console.log(`plan after deleting gone and lowering grp to 2 (${engine.name}):\n${text.split('\n').filter((l) => /will be|Plan:|forget/.test(l)).join('\n')}`);
      apply();
      expect(dataFiles()).toEqual(checksums);
      expect(h('h1').domains()).toEqual(['solo']);
      expect(h('h2').domains().sort()).toEqual(['grp-1', 'grp-2']);
      console.log(`data disks kept (${engine.name}): ${((Date.now() - started) / 1000).toFixed(1)} s`);
    });

    test('a group and a standalone VM renamed in the code: 0 to destroy, same UUIDs, the guest did not reboot', async () => {
      const started = Date.now();
      const before = { solo: uuid('h1', 'solo'), 'grp-1': uuid('h2', 'grp-1'), 'grp-2': uuid('h2', 'grp-2') };
      synth({ ...V1, gone: false, replicas: 2, soloId: 'single', groupId: 'group' });
      const { changes, text } = plan();
      expect(changes.filter((c) => c.actions.includes('delete'))).toEqual([]);
      expect(text).toMatch(/0 to destroy/);
      expect(changes.filter((c) => c.previous !== undefined).length).toBe(12); // 3 VMs × domain, boot, seed, data
      console.log(`plan after the renames (${engine.name}): ${text.split('\n').find((l) => l.startsWith('Plan:')) ?? text.split('\n').filter((l) => /No changes|moved/.test(l)).join(' ')}`);
      apply();
      expect({ solo: uuid('h1', 'solo'), 'grp-1': uuid('h2', 'grp-1'), 'grp-2': uuid('h2', 'grp-2') }).toEqual(before);
      const now = await waitForGuestReport(h('h1').consoleLog('solo'), (r) => r.seq > firstBoot.seq || r.bootId !== firstBoot.bootId, 60_000, firstBoot);
      expect(now.bootId).toBe(firstBoot.bootId);
      expect(dataFiles()).toEqual(checksums);
      console.log(`renames (${engine.name}): ${((Date.now() - started) / 1000).toFixed(1)} s`);
    });

    test('a new image and a grown data disk: the boot disk is replaced, the data disk grown in place, then no changes', async () => {
      const started = Date.now();
      const renamed = { ...V1, gone: false, replicas: 2, soloId: 'single', groupId: 'group' };
      const soloUuid = uuid('h1', 'solo');
      synth({ ...renamed, soloImage: 'guest-v2', soloDataMiB: 32 });
      const actions = await reconcile({ stackDir, hosts: { h1: h('h1').uri, h2: h('h2').uri }, terraformBinary: engine.binary, env: tofuEnv() });
      expect(actions.filter((a) => a.action === 'grow-volume').map((a) => `${a.host}:${a.target}`)).toEqual(['h1:cdktf-local/solo-data.qcow2']);
      expect(h('h1').virsh('vol-info', '--pool', 'cdktf-local', 'solo-data.qcow2', '--bytes')).toMatch(new RegExp(`Capacity:\\s+${32 * MiB} bytes`));
      const { changes, text } = plan();
      const changed = changes.filter((c) => !c.actions.includes('no-op') && !c.actions.includes('read'));
      const byName = Object.fromEntries(changed.map((c) => [c.name, c.actions.join('+')]));
      // The boot disk is replaced under its new name over the new image's base volume (the old
      // image's, now unused, goes); the domain, which names the boot disk, is updated in place.
      expect(byName).toEqual({ solo: 'update', 'base-guest-v2.qcow2': 'create', 'base-guest.qcow2': 'delete', 'solo-boot.qcow2': 'delete+create' });
      expect(changed.find((c) => /solo_BootDisk|single_BootDisk/.test(c.address))?.actions.sort()).toEqual(['create', 'delete']);
      expect(changed.some((c) => c.address.includes('DataDisk'))).toBe(false);
      console.log(`plan after a new image and a grown data disk (${engine.name}): ${text.split('\n').find((l) => l.startsWith('Plan:'))}`);
      // Provider 0.9.7 restarts a domain it updates, whose runtime id then changes, and reports that
      // as an inconsistent result (fixed upstream after 0.9.7, as in demo.e2e.test.ts): the update
      // is applied and recorded all the same; that one error is the only one accepted.
      try {
        apply();
      } catch (err) {
        expect(String(err)).toMatch(/Provider produced inconsistent result after apply[\s\S]*\.id: was cty\.NumberIntVal\(\d+\), but now\s+cty\.NumberIntVal\(\d+\)/);
        expect(String(err).match(/Error: /g)).toHaveLength(2);
      }
      expect(h('h1').domainState('solo')).toBe('running');
      expect(uuid('h1', 'solo')).toBe(soloUuid);
      expect(h('h1').virsh('domblklist', 'solo')).toMatch(/vda\s+\S*solo-boot-[0-9a-f]{8}\.qcow2/);
      const final = tofuPlan(stackDir, [], engine);
      expect({ code: final.code, changes: final.output.split('\n').filter((l) => /^\s+[~+-] |will be|must be/.test(l)) }).toEqual({ code: 0, changes: [] });
      console.log(`new image and grown disk (${engine.name}): ${((Date.now() - started) / 1000).toFixed(1)} s`);
    });
  }, lab.ok ? undefined : lab.reason, guest.ok ? undefined : guest.reason);
}

engineDrills(OPENTOFU);
engineDrills(terraform);
