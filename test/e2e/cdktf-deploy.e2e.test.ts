/**
 * `cdktf deploy` itself, as the README tells a user to run it, with each engine through the
 * toolchain's filesystem mirror and no network: `. ~/.cache/cdktf-libvirt-cluster/env`, then
 * `TERRAFORM_BINARY_NAME=tofu npx cdktf deploy demo --auto-approve`, twice, then destroy. The demo
 * stack goes to a one-host lab (its own libvirtd), so it never meets the demo test's VM on
 * qemu:///system. The registry is made unreachable (a proxy on a closed loopback port): every
 * provider comes from the mirror. `reconcile` on the deployed stack says which engine it reads the
 * state with.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Lab, LabHost, labPrerequisites } from '../lab/lab';
import { CACHE, describeE2e, TOFU_RC, terraformEngine } from './toolchain';

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(CACHE, 'bin');
const MIRROR = path.join(CACHE, 'providers');

interface Engine {
  readonly name: string;
  /** What TERRAFORM_BINARY_NAME says, as a user sets it. */
  readonly binaryName: string;
  /** The registry its lock file names. */
  readonly registry: string;
}

const OPENTOFU: Engine = { name: 'OpenTofu', binaryName: 'tofu', registry: 'registry.opentofu.org' };
const TERRAFORM: Engine = { name: 'Terraform', binaryName: 'terraform', registry: 'registry.terraform.io' };

function deploySuite(engine: Engine): void {
  let lab: Lab;
  let host: LabHost;
  let work: string;
  let deployed = false;

  /** What `. ~/.cache/cdktf-libvirt-cluster/env` sets (scripts/toolchain.sh), plus the demo stack's host. */
  function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    const base: NodeJS.ProcessEnv = { ...process.env };
    delete base.TERRAFORM_BINARY_NAME;
    return {
      ...base,
      TF_CLI_CONFIG_FILE: TOFU_RC,
      TF_CLI_ARGS_providers_lock: `-fs-mirror=${MIRROR}`,
      PATH: `${BIN}${path.delimiter}${process.env.PATH}`,
      CHECKPOINT_DISABLE: '1',
      HTTPS_PROXY: 'http://127.0.0.1:9',
      HTTP_PROXY: 'http://127.0.0.1:9',
      LIBVIRT_URI: host.uri,
      LIBVIRT_POOL_PATH: path.join(work, 'pool'),
      LIBVIRT_DOMAIN_TYPE: 'qemu',
      ...extra,
    };
  }

  /** Runs the cdktf CLI in the work folder; returns its exit code and its output without colours. */
  function runCdktf(args: string[], extra: NodeJS.ProcessEnv = {}): { status: number | null; output: string } {
    const started = Date.now();
    const r = spawnSync(path.join(ROOT, 'node_modules', '.bin', 'cdktf'), args, {
      cwd: work,
      env: env({ TERRAFORM_BINARY_NAME: engine.binaryName, ...extra }),
      encoding: 'utf8',
      timeout: 5 * 60 * 1000,
      maxBuffer: 64 * 1024 * 1024,
    });
    console.log(`${engine.name}: cdktf ${args.join(' ')} took ${((Date.now() - started) / 1000).toFixed(1)} s (exit ${r.status})`);
    // cdktf colours its output even when it is not a terminal.
    return { status: r.status, output: `${r.stdout}\n${r.stderr}`.replace(/\u001b\[[0-9;]*[A-Za-z]/g, '') };
  }

  function cdktf(...args: string[]): string {
    const r = runCdktf(args);
    if (r.status !== 0) throw new Error(`cdktf ${args.join(' ')} failed (exit ${r.status}):\n${r.output}`);
    return r.output;
  }

  beforeAll(async () => {
    lab = await Lab.start({ hosts: 1, leases: false });
    host = lab.host('h1');
    work = fs.mkdtempSync(path.join(os.tmpdir(), `cdktf-deploy-${engine.binaryName}-`));
    fs.chmodSync(work, 0o755); // QEMU reaches the pool below
    // The repository's app, with the output in this folder: cdktf.json as a user's, tsx as its app command.
    fs.writeFileSync(
      path.join(work, 'cdktf.json'),
      JSON.stringify({ language: 'typescript', app: `${path.join(ROOT, 'node_modules', '.bin', 'tsx')} ${path.join(ROOT, 'stacks', 'main.ts')}`, output: path.join(work, 'cdktf.out') }),
    );
  });

  afterAll(async () => {
    try {
      if (deployed) cdktf('destroy', 'demo', '--auto-approve');
    } finally {
      await lab?.teardown();
      if (work) fs.rmSync(work, { recursive: true, force: true });
    }
  });

  test('without TF_CLI_ARGS_providers_lock, the first deploy fails: cdktf runs `providers lock`, which asks the registry', () => {
    const r = runCdktf(['deploy', 'demo', '--auto-approve'], { TF_CLI_ARGS_providers_lock: undefined });
    expect(r.status).not.toBe(0);
    expect(r.output).toMatch(/Could not retrieve providers for locking[\s\S]*dmacvicar\/libvirt/);
    expect(host.domains()).toEqual([]);
  });

  test(`TERRAFORM_BINARY_NAME=${engine.binaryName} cdktf deploy demo --auto-approve works twice in a row, with no flags and no registry`, () => {
    deployed = true;
    expect(cdktf('deploy', 'demo', '--auto-approve')).toContain('Apply complete! Resources: 7 added, 0 changed, 0 destroyed.');
    expect(host.domainState('demo-vm')).toBe('running');
    const again = cdktf('deploy', 'demo', '--auto-approve');
    expect(again).toContain('No changes.');
    expect(again).toContain('Apply complete! Resources: 0 added, 0 changed, 0 destroyed.');
    const lockFile = fs.readFileSync(path.join(work, 'cdktf.out', 'stacks', 'demo', '.terraform.lock.hcl'), 'utf8');
    expect(lockFile).toContain(`provider "${engine.registry}/dmacvicar/libvirt"`);
  });

  test('reconcile reads the state with the engine that initialized the stack folder, and says so', () => {
    const cli = (extra: NodeJS.ProcessEnv) =>
      spawnSync(path.join(ROOT, 'node_modules', '.bin', 'tsx'), [path.join(ROOT, 'lib', 'ops', 'cli.ts'), 'reconcile', '--stack-dir', path.join(work, 'cdktf.out', 'stacks', 'demo'), '--host', `demo=${host.uri}`, '--dry-run'], {
        cwd: work,
        env: env(extra),
        encoding: 'utf8',
      });
    const byLockFile = cli({});
    expect(byLockFile.stderr).toBe('');
    expect(byLockFile.stdout.split('\n')[0]).toBe(`engine: ${engine.binaryName} (it initialized the stack folder: .terraform.lock.hcl names ${engine === OPENTOFU ? "OpenTofu's" : "Terraform's"} registry)`);
    expect(byLockFile.stdout).toContain('nothing to reconcile');
    expect(cli({ TERRAFORM_BINARY_NAME: engine.binaryName }).stdout.split('\n')[0]).toBe(`engine: ${engine.binaryName} (from TERRAFORM_BINARY_NAME)`);
  });

  test('cdktf destroy demo leaves nothing on the host', () => {
    expect(cdktf('destroy', 'demo', '--auto-approve')).toContain('Destroy complete! Resources: 7 destroyed.');
    deployed = false;
    expect(host.domains()).toEqual([]);
  });
}

const labCheck = labPrerequisites();
const describeLab = (name: string, body: () => void) => describeE2e(name, body, labCheck.ok ? undefined : labCheck.reason);

describeLab('cdktf deploy with OpenTofu through the mirror', () => deploySuite(OPENTOFU));
if (terraformEngine()) {
  describeLab('cdktf deploy with Terraform through the mirror', () => deploySuite(TERRAFORM));
} else {
  describe.skip('cdktf deploy with Terraform through the mirror [skipped: no terraform on PATH]', () => deploySuite(TERRAFORM));
}
