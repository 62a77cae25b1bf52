/**
 * Adoption drill on two real lab hosts, with OpenTofu and with Terraform (where installed): the
 * test guest, with a data disk in a storage pool and a NIC on the lab bridge, is defined and
 * started on each host with `virsh define` (outside Terraform). Then, as a user would:
 * `cdktf-libvirt-cluster adopt` writes adopted.ts and the domain files, the app synthesizes, the
 * first plan shows imports only (2 to import, 0 to add, 0 to change, 0 to destroy), the apply
 * imports them, and each domain keeps its UUID and its guest the boot it had (boot id unchanged);
 * the next plan shows no changes; adopt again finds nothing new; a fresh adopt that is shown the
 * stack's state leaves both domains alone (managed by another state); a guest shut down and started
 * again outside Terraform (new tap device and pty) leaves the plan clean, and `adopt --refresh`
 * records its new values. Also proven: provider 0.9.7 cannot import a volume.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Lab, LabHost, labPrerequisites } from '../lab/lab';
import { GuestReport, guestDomainType, testGuestImage, waitForGuestReport } from './test-guest';
import { describeE2e, drillTest, Engine, OPENTOFU, terraformEngine, tofu, tofuEnv, tofuPlan, waitFor } from './toolchain';

const lab = labPrerequisites();
const guest = testGuestImage();
const terraform = terraformEngine();
const REPO = path.join(__dirname, '..', '..');
const TSX = path.join(REPO, 'node_modules', '.bin', 'tsx');

/** The guest as an administrator's `virsh define` would have it: a boot overlay and a data disk in the pool, a NIC on the bridge, VNC on localhost. */
function legacyXml(props: { name: string; type: string; boot: string; pool: string; bridge: string; mac: string }): string {
  return `<domain type='${props.type}'>
  <name>${props.name}</name>
  <memory unit='MiB'>128</memory>
  <currentMemory unit='MiB'>96</currentMemory>
  <vcpu current='1'>2</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <features><acpi/><apic/></features>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='${props.boot}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source pool='${props.pool}' volume='${props.name}-data.qcow2'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <interface type='bridge'>
      <mac address='${props.mac}'/>
      <source bridge='${props.bridge}'/>
      <model type='virtio'/>
    </interface>
    <console type='pty'>
      <target type='serial' port='0'/>
      <log file='/var/log/libvirt/qemu/${props.name}-console.log' append='on'/>
    </console>
    <graphics type='vnc' autoport='yes' listen='127.0.0.1'/>
    <memballoon model='virtio'/>
  </devices>
</domain>
`;
}

/** Runs a TypeScript file or the package's command under tsx, as a user's shell would; returns stdout, throws with both streams. */
function runTsx(cwd: string, args: string[]): string {
  const r = spawnSync(TSX, args, { cwd, env: { ...tofuEnv(), NODE_PATH: path.join(REPO, 'node_modules') }, encoding: 'utf8', timeout: 5 * 60_000 });
  if (r.status !== 0) throw new Error(`tsx ${args.join(' ')} failed (exit ${r.status}):\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

function drill(engine: Engine | undefined): void {
  if (!engine) {
    describe.skip('adoption drill (Terraform) [skipped: terraform is not installed]', () => test('needs terraform', () => undefined));
    return;
  }
  describeE2e(
    `adoption of guests made outside Terraform (${engine.name})`,
    () => {
      const durations: string[] = [];
      const step = drillTest(durations);
      const virt = guestDomainType();
      let theLab: Lab;
      let work: string;
      let stackDir: string;
      const booted = new Map<string, GuestReport>();
      const uuids = new Map<string, string>();
      const guests = [
        { host: 'h1', name: 'legacy1', mac: '52:54:00:ad:00:01' },
        { host: 'h2', name: 'legacy2', mac: '52:54:00:ad:00:02' },
      ];
      const h = (name: string): LabHost => theLab.host(name);
      // Run in the project folder, as a user would: adopted.ts reads its domain files relative to it.
      const adoptCli = (project: string, extra: string[] = []) =>
        runTsx(project, [path.join(REPO, 'lib', 'ops', 'cli.ts'), 'adopt', '--host', `h1=${h('h1').uri}`, '--host', `h2=${h('h2').uri}`, '--engine', engine.binary, '--library', path.join(REPO, 'lib'), ...extra]);

      beforeAll(async () => {
        theLab = await Lab.start({ hosts: 2, leases: false });
        work = path.join(theLab.root, 'adopt');
        fs.mkdirSync(work, { recursive: true, mode: 0o755 });
        for (const g of guests) {
          const poolDir = path.join(theLab.root, `${g.host}-legacy`);
          fs.mkdirSync(poolDir, { mode: 0o755 });
          const host = h(g.host);
          host.virsh('pool-define-as', 'legacy', 'dir', '--target', poolDir);
          host.virsh('pool-start', 'legacy');
          const boot = path.join(poolDir, `${g.name}.qcow2`);
          execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', guest.ok ? guest.path : '/missing', boot]);
          host.virsh('vol-create-as', 'legacy', `${g.name}-data.qcow2`, '16M', '--format', 'qcow2');
          host.virsh('pool-refresh', 'legacy');
          host.virsh('define', theLab.writeFile(`${g.name}.xml`, legacyXml({ name: g.name, type: virt.type, boot, pool: 'legacy', bridge: theLab.bridge, mac: g.mac })));
          host.virsh('start', g.name);
          uuids.set(g.name, host.virsh('domuuid', g.name).trim());
        }
        for (const g of guests) booted.set(g.name, await waitForGuestReport(h(g.host).consoleLog(g.name), (r) => r.data !== '', 180_000));
      });

      afterAll(async () => {
        console.log(durations.join('\n'));
        await theLab?.teardown();
      });

      step('adopt writes the code, the domain files and the manifest, and says what it imports', () => {
        const out = adoptCli(work);
        console.log(`adopt (${engine.name}):\n${out}`);
        expect(out).toContain('2 domains to import, 0 already in the code, 0 left alone');
        for (const g of guests) expect(out).toContain(`import ${g.host}/${g.name}: libvirt_domain ${g.name} uuid ${uuids.get(g.name)} (1/2 vCPUs, 96/128 MiB, 2 disks, 1 NICs)`);
        expect(out).toContain('wrote adopted/h1/legacy1.domain.json, adopted/h2/legacy2.domain.json, adopted.ts, adopt-manifest.json in .');
        const code = fs.readFileSync(path.join(work, 'adopted.ts'), 'utf8');
        console.log(`adopted.ts (${engine.name}):\n${code}`);
        expect(code).toContain(`{ target: "vdb", volume: ExistingVolume.inPool("legacy", "legacy1-data.qcow2"), size: Size.mebibytes(16) }`);
        expect(code).toContain(`{ segment: Segment.hostBridge("${theLab.bridge}", "${theLab.bridge}"), mac: "52:54:00:ad:00:01" }`);
      });

      step('synth, then the first plan imports both domains and adds, changes and destroys nothing', () => {
        fs.writeFileSync(
          path.join(work, 'main.ts'),
          [
            "import { App, LocalBackend, TerraformStack } from 'cdktf';",
            "import { adoptedEstate } from './adopted';",
            "const app = new App({ outdir: 'out' });",
            "const stack = new TerraformStack(app, 'estate');",
            "new LocalBackend(stack, { path: '../../../terraform.tfstate' });",
            'adoptedEstate(stack);',
            'app.synth();',
            '',
          ].join('\n'),
        );
        runTsx(work, ['main.ts']);
        stackDir = path.join(work, 'out', 'stacks', 'estate');
        const json = JSON.parse(fs.readFileSync(path.join(stackDir, 'cdk.tf.json'), 'utf8'));
        expect(Object.keys(json.resource)).toEqual(['libvirt_domain']);
        expect(JSON.stringify(json)).not.toMatch(/passwd/);
        tofu(stackDir, ['init', '-input=false'], engine);
        const text = tofu(stackDir, ['plan', '-input=false', '-out=plan.bin'], engine);
        console.log(`first plan (${engine.name}):\n${text}`);
        expect(text).toContain('Plan: 2 to import, 0 to add, 0 to change, 0 to destroy.');
        const shown = JSON.parse(tofu(stackDir, ['show', '-json', 'plan.bin'], engine));
        const changes = (shown.resource_changes ?? []).map((c: any) => [c.change.actions.join(','), c.change.importing?.id]);
        expect(changes.sort()).toEqual([...uuids.values()].map((u) => ['no-op', u]).sort());
      });

      step('the apply imports them: same UUIDs, still running, each guest on the boot it had; the next plan shows no changes', async () => {
        const applied = tofu(stackDir, ['apply', '-input=false', 'plan.bin'], engine);
        console.log(`apply (${engine.name}):\n${applied}`);
        expect(applied).toMatch(/Apply complete! Resources: 2 imported, 0 added, 0 changed, 0 destroyed/);
        for (const g of guests) {
          expect(h(g.host).virsh('domuuid', g.name).trim()).toBe(uuids.get(g.name));
          expect(h(g.host).domainState(g.name)).toBe('running');
          const before = booted.get(g.name)!;
          // A report written after the apply, from the same boot.
          const after = await waitForGuestReport(h(g.host).consoleLog(g.name), () => true, 30_000, before);
          expect(after.bootId).toBe(before.bootId);
        }
        const next = tofuPlan(stackDir, [], engine);
        console.log(`next plan (${engine.name}):\n${next.output}`);
        expect([next.code, next.output]).toEqual([0, expect.stringContaining('No changes.')]);
      });

      step('why the disks stay unmanaged: provider 0.9.7 cannot import a volume (its import sets id, its read looks the volume up by key)', () => {
        const dir = path.join(theLab.root, `volume-import-${engine.name}`);
        fs.mkdirSync(dir);
        const key = h('h1').virsh('vol-key', '--pool', 'legacy', 'legacy1-data.qcow2').trim();
        fs.writeFileSync(
          path.join(dir, 'main.tf.json'),
          JSON.stringify({
            terraform: { required_providers: { libvirt: { source: 'dmacvicar/libvirt', version: '0.9.7' } } },
            provider: { libvirt: [{ uri: h('h1').uri }] },
            resource: { libvirt_volume: { data: { name: 'legacy1-data.qcow2', pool: 'legacy' } } },
            import: [{ to: 'libvirt_volume.data', id: key }],
          }),
        );
        tofu(dir, ['init', '-input=false'], engine);
        expect(() => tofu(dir, ['plan', '-input=false'], engine)).toThrow(/Cannot import non-existent remote object/);
      });

      step('adopt again finds nothing new and writes nothing; shown the stack\'s state, a fresh adopt leaves both domains alone', () => {
        const code = fs.readFileSync(path.join(work, 'adopted.ts'), 'utf8');
        const again = adoptCli(work);
        console.log(`adopt again (${engine.name}):\n${again}`);
        expect(again).toContain('0 domains to import, 2 already in the code, 0 left alone');
        expect(again).toContain('nothing new: no file written');
        expect(fs.readFileSync(path.join(work, 'adopted.ts'), 'utf8')).toBe(code);
        const fresh = path.join(theLab.root, 'adopt-fresh');
        fs.mkdirSync(fresh);
        const other = adoptCli(fresh, ['--state-dir', stackDir]);
        console.log(`adopt shown the stack's state (${engine.name}):\n${other}`);
        for (const g of guests) expect(other).toContain(`left alone ${g.host}/${g.name} (${uuids.get(g.name)}): managed by another Terraform state (the state of ${stackDir})`);
        expect(fs.existsSync(path.join(fresh, 'adopted.ts'))).toBe(false);
      });

      step('a guest started again outside Terraform gets a new tap device and pty: the plan ignores them (no restart loop); adopt --refresh records them, and the plan stays clean', async () => {
        const h1 = h('h1');
        const tapBefore = h1.interfaces('legacy1')[0].interface;
        h1.virsh('shutdown', 'legacy1'); // ACPI: the test guest powers off
        await waitFor(() => h1.domainState('legacy1') === 'shut off', 'legacy1 to shut down', 60_000);
        h1.virsh('start', 'legacy1');
        const tapAfter = h1.interfaces('legacy1')[0].interface;
        expect(tapAfter).not.toBe(tapBefore); // libvirt 9 does not reuse a tap name at once
        const after = tofuPlan(stackDir, [], engine);
        console.log(`plan after a start outside Terraform (${engine.name}):\n${after.output}`);
        expect([after.code, after.output]).toEqual([0, expect.stringContaining('No changes.')]);
        const refreshed = adoptCli(work, ['--refresh']);
        console.log(`adopt --refresh (${engine.name}):\n${refreshed}`);
        expect(refreshed).toContain(`devices.interfaces[0].target.dev = ${tapAfter}`);
        expect(refreshed).toContain('wrote adopted/h1/legacy1.domain.json in .');
        runTsx(work, ['main.ts']);
        const clean = tofuPlan(stackDir, [], engine);
        expect([clean.code, clean.output]).toEqual([0, expect.stringContaining('No changes.')]);
      });

    },
    lab.ok ? undefined : lab.reason,
    guest.ok ? undefined : guest.reason,
  );
}

drill(OPENTOFU);
drill(terraform);
