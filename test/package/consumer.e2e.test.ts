/**
 * The package as a user gets it: `npm pack`, then the tarball installed into fresh projects outside
 * the repository with only what a user adds from the registry, type-checked with skipLibCheck off
 * and synthesized. One project per CDK a user starts from:
 *
 * - cdktf 0.21: `npm install cdktf constructs <tarball>`
 * - CDK Terrain (cdktn 0.24): `npm install cdktn constructs <tarball>` (npm adds the cdktf peer,
 *   whose declarations the package's types refer to; the app runs on cdktn)
 *
 * Each is type-checked and run with TypeScript 7 (what `npm install typescript` gives) and
 * TypeScript 5.9 (beside it under an npm alias), each by its `tsc` binary, and run once more with
 * `tsx` as the README's app command does (it needs no TypeScript compiler). The app uses the constructs (hosts, a cluster, a failover group) and raw resources
 * from the generated bindings through the package's subpaths. Needs the npm registry (or a warm npm
 * cache); without it the test skips with the reason, and fails under REQUIRE_E2E=1.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '..', '..');
const TYPESCRIPT_5 = '5.9.3';
const TYPESCRIPT_7 = '7.0.2';
const CDKS = {
  cdktf: { install: ['cdktf@0.21.0', 'constructs@^10.4.2'], version: '0.21.0' },
  cdktn: { install: ['cdktn@0.24.0', 'constructs'], version: '0.24.0' },
} as const;
type CdkName = keyof typeof CDKS;

/** Environment for npm and the consumer's tools: none of the repository's npm_* settings leak in. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^npm_/i.test(k) && k !== 'INIT_CWD' && k !== 'CI' && k !== 'CDKTF_OUTDIR' && k !== 'CDKTF_LIBVIRT_CLUSTER_CDK') env[k] = v;
  }
  return { ...env, CHECKPOINT_DISABLE: '1', ...extra };
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = cleanEnv()): string {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: 5 * 60 * 1000 });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) failed (exit ${r.status}${r.signal ? `, ${r.signal}` : ''}):\n${r.stdout}\n${r.stderr}`);
  }
  return r.stdout;
}

/** Why the registry cannot be used, or undefined. */
function registryProblem(): string | undefined {
  const r = spawnSync('npm', ['view', 'cdktn@0.24.0', 'version', '--prefer-offline'], { env: cleanEnv(), encoding: 'utf8', timeout: 60_000 });
  return r.status === 0 && r.stdout.trim() === '0.24.0' ? undefined : `the npm registry does not answer (npm view cdktn: ${(r.stderr || String(r.error)).trim().split('\n')[0]})`;
}

/** The user's app: constructs, one raw generated resource through each subpath, `app.synth()`. */
function mainTs(cdk: CdkName): string {
  return `import { App, TerraformStack } from '${cdk}';
import { Construct } from 'constructs';
import { AntiAffinity, Cluster, DomainType, FailoverGroup, Host, Image, RestartPriority, Size } from 'cdktf-libvirt-cluster';
import { network } from 'cdktf-libvirt-cluster/providers/libvirt';
import { Volume } from 'cdktf-libvirt-cluster/providers/libvirt/volume';

class MailStack extends TerraformStack {
  constructor(scope: Construct, id: string) {
    super(scope, id);
    const capacity = { cores: 4, memory: Size.gibibytes(8) };
    const kvm1 = new Host(this, 'kvm1', { uri: 'qemu+ssh://admin@kvm1.example.net/system', domainType: DomainType.KVM, capacity });
    const kvm2 = new Host(this, 'kvm2', { uri: 'qemu+ssh://admin@kvm2.example.net/system', domainType: DomainType.KVM, capacity });
    const cluster = new Cluster(this, 'cluster', { hosts: [kvm1, kvm2], sharedStorage: { poolName: 'shared', path: '/srv/vmstore' } });
    new FailoverGroup(this, 'mail', {
      cluster,
      replicas: 2,
      antiAffinity: AntiAffinity.soft(),
      priority: RestartPriority.HIGH,
      template: { vcpus: 1, memory: Size.gibibytes(1), image: Image.blank('blank', Size.mebibytes(64)) },
    });
    const net: network.Network = new network.Network(this, 'backup-net', { provider: kvm1.provider, name: 'backup' });
    new Volume(this, 'scratch', { provider: kvm1.provider, name: 'scratch.qcow2', pool: 'shared', capacity: 1024 * 1024, dependsOn: [net] });
  }
}

const app = new App();
new MailStack(app, 'mail');
app.synth();
`;
}

/** cdktf's own TypeScript template (cdktf-cli 0.21), with skipLibCheck off and no incremental file. */
function tsconfig(): string {
  return JSON.stringify(
    {
      compilerOptions: {
        alwaysStrict: true,
        declaration: true,
        experimentalDecorators: true,
        inlineSourceMap: true,
        inlineSources: true,
        lib: ['es2018'],
        module: 'CommonJS',
        noEmitOnError: true,
        noFallthroughCasesInSwitch: true,
        noImplicitAny: true,
        noImplicitReturns: true,
        noImplicitThis: true,
        noUnusedLocals: true,
        noUnusedParameters: true,
        resolveJsonModule: true,
        strict: true,
        strictNullChecks: true,
        strictPropertyInitialization: true,
        stripInternal: true,
        target: 'ES2018',
        skipLibCheck: false,
      },
      include: ['main.ts'],
    },
    null,
    2,
  );
}

interface Synthesized {
  readonly json: Record<string, unknown>;
  readonly dir: string;
}

/** Checks one synth of the app by `cdk` and returns its JSON without the CDK's metadata, the project folder as `<project>`. */
function checkSynth(cdk: CdkName, project: string, outdir: string): Synthesized {
  const dir = path.join(outdir, 'stacks', 'mail');
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'cdk.tf.json'), 'utf8').split(project).join('<project>'));
  expect(json['//'].metadata.version).toBe(CDKS[cdk].version);
  expect(json.terraform.required_providers.libvirt).toEqual({ source: 'dmacvicar/libvirt', version: '0.9.7' });
  expect(Object.keys(json.resource.libvirt_domain)).toHaveLength(2);
  expect(json.resource.libvirt_network).toHaveProperty(['backup-net', 'name'], 'backup');
  expect(json.resource.libvirt_volume).toHaveProperty(['scratch', 'depends_on'], ['libvirt_network.backup-net']);
  // The library's synth steps ran (an aspect): placement report and seed disks next to the JSON.
  expect(fs.readFileSync(path.join(dir, 'placement-report.md'), 'utf8')).toContain('mail');
  expect(fs.readdirSync(path.join(dir, 'cloud-init')).filter((f) => f.endsWith('.iso'))).toHaveLength(2);
  delete json['//'];
  return { json, dir };
}

function describeWithRegistry(name: string, body: () => void): void {
  const problem = registryProblem();
  if (!problem) describe(name, body);
  else if (process.env.REQUIRE_E2E === '1') {
    describe(name, () => {
      test('prerequisites (REQUIRE_E2E=1)', () => {
        throw new Error(`REQUIRE_E2E=1 but ${problem}`);
      });
    });
  } else describe.skip(`${name} [skipped: ${problem}]`, body);
}

describeWithRegistry('the packed library in a fresh project', () => {
  let work: string;
  let tarball: string;
  const projects = new Map<CdkName, string>();
  const synths = new Map<string, Synthesized>();

  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'consumer-'));
    const started = Date.now();
    // `npm pack` runs the package's prepare script: the build is part of packing.
    const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], ROOT, { ...process.env, CHECKPOINT_DISABLE: '1' }).replace(/^[\s\S]*?(?=\[\s*\{)/, ''));
    tarball = path.join(work, packed[0].filename);
    console.log(`npm pack: ${packed[0].entryCount} files, ${(packed[0].size / 1024).toFixed(0)} kB, ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });

  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test('the tarball holds the built code, declarations, the bindings subpath, the CLI and the license', () => {
    const files = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' }).split('\n');
    for (const f of ['LICENSE', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/generated/libvirt/index.d.ts', 'dist/lib/ops/cli.js']) {
      expect(files).toContain(`package/${f}`);
    }
    expect(files.filter((f) => /\.ts$/.test(f) && !/\.d\.ts$/.test(f))).toEqual([]);
    expect(execFileSync('tar', ['xzOf', tarball, 'package/LICENSE'], { encoding: 'utf8' })).toContain('Apache License\n                           Version 2.0, January 2004');
  });

  for (const cdk of Object.keys(CDKS) as CdkName[]) {
    test(`npm install of the tarball next to ${cdk} ${CDKS[cdk].version} (no --legacy-peer-deps)`, () => {
      const dir = path.join(work, `app-${cdk}`);
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: `consumer-${cdk}`, version: '1.0.0', private: true }, null, 2));
      fs.writeFileSync(path.join(dir, 'main.ts'), mainTs(cdk));
      fs.writeFileSync(path.join(dir, 'tsconfig.json'), tsconfig());
      const started = Date.now();
      run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball, ...CDKS[cdk].install], dir);
      run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--save-dev', `typescript@${TYPESCRIPT_7}`, `typescript-5@npm:typescript@${TYPESCRIPT_5}`, 'tsx@4', '@types/node@20'], dir);
      console.log(`${cdk}: npm install ${((Date.now() - started) / 1000).toFixed(1)} s`);
      projects.set(cdk, dir);
      const installed = (name: string) => JSON.parse(fs.readFileSync(path.join(dir, 'node_modules', name, 'package.json'), 'utf8')).version;
      expect(installed(cdk)).toBe(CDKS[cdk].version);
      expect(installed('typescript')).toBe(TYPESCRIPT_7); // what `npm install typescript` gives today
      expect(installed('typescript-5')).toBe(TYPESCRIPT_5);
      // The command-line tool is on the project's PATH and runs (usage, exit 2).
      const cli = spawnSync(path.join(dir, 'node_modules', '.bin', 'cdktf-libvirt-cluster'), [], { cwd: dir, env: cleanEnv(), encoding: 'utf8' });
      expect(cli.stderr).toContain('usage: cdktf-libvirt-cluster reconcile');
      expect(cli.status).toBe(2);
    });

    const runs: [string, (dir: string) => string[]][] = [
      [`TypeScript ${TYPESCRIPT_5}`, () => ['node_modules/typescript-5/bin/tsc', '-p', '.', '--outDir', 'out-ts5']],
      [`TypeScript ${TYPESCRIPT_7}`, () => ['node_modules/typescript/bin/tsc', '-p', '.', '--outDir', 'out-ts7']],
    ];
    for (const [ts, tscArgs] of runs) {
      test(`${cdk}: ${ts} type-checks the app with skipLibCheck off, and the built app synthesizes`, () => {
        const dir = projects.get(cdk)!;
        const [tsc, ...args] = tscArgs(dir);
        const started = Date.now();
        run(tsc, args, dir);
        const checked = Date.now();
        const outDir = args[args.length - 1];
        const outdir = path.join(dir, `cdktf.out-${outDir}`);
        run('node', [path.join(outDir, 'main.js')], dir, cleanEnv({ CDKTF_OUTDIR: outdir }));
        console.log(`${cdk}: ${ts} type-check + emit ${((checked - started) / 1000).toFixed(1)} s, synth ${((Date.now() - checked) / 1000).toFixed(1)} s`);
        synths.set(`${cdk} ${ts}`, checkSynth(cdk, dir, outdir));
      });
    }

    test(`${cdk}: the README's app command (npx tsx main.ts) synthesizes`, () => {
      const dir = projects.get(cdk)!;
      const outdir = path.join(dir, 'cdktf.out-tsx');
      run('npx', ['--no-install', 'tsx', 'main.ts'], dir, cleanEnv({ CDKTF_OUTDIR: outdir }));
      synths.set(`${cdk} tsx`, checkSynth(cdk, dir, outdir));
    });
  }

  test('a cdktn app cannot synthesize the library on cdktf classes: why the package follows the app', () => {
    const dir = projects.get('cdktn')!;
    const r = spawnSync('npx', ['--no-install', 'tsx', 'main.ts'], {
      cwd: dir,
      env: cleanEnv({ CDKTF_OUTDIR: path.join(dir, 'cdktf.out-mixed'), CDKTF_LIBVIRT_CLUSTER_CDK: 'cdktf' }),
      encoding: 'utf8',
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('_resetResolveDiscoveredProviderFeatureUsage is not a function');
  });

  test('every run, on either CDK and either TypeScript, synthesizes the same JSON', () => {
    const [first, ...rest] = [...synths.entries()];
    expect(synths.size).toBe(6);
    for (const [name, s] of rest) expect([name, s.json]).toEqual([name, first[1].json]);
  });
});
