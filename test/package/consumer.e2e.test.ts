/**
 * The package as a user gets it: `npm pack`, then the README's quick start run as written in fresh
 * projects outside the repository, one per CDK (CDK Terrain 0.24 with its CLI on Node 22 from the
 * npm registry's `node` package, and cdktf 0.21), with the tarball in place of the registry's
 * package. The README's example, extracted from README.md, is the app. In each project:
 *
 * - the quick start's own `npx tsc --noEmit` (TypeScript 7, `tsc --init`'s defaults) and the CLI's
 *   `synth`; the example also type-checks under the CLI's template tsconfig, under `strict` +
 *   `exactOptionalPropertyTypes` + `skipLibCheck: false`, and (cdktf) under TypeScript 5.9;
 * - a second synth writes the same bytes in every file (within one schedule window);
 * - a broken example fails through the CLI with its problem list and no stack frames;
 * - an app using raw bindings through the package's subpaths type-checks and synthesizes;
 * - the package's command answers `--help` and `--version`.
 *
 * Needs the npm registry (or a warm npm cache); without it the test skips with the reason, and
 * fails under REQUIRE_E2E=1.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { files } from '../files';

const ROOT = path.resolve(__dirname, '..', '..');
const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const VERSION: string = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version;
const TYPESCRIPT_5 = '5.9.3';
const CDKS = {
  cdktn: { heading: '### CDK Terrain 0.24 (new projects)', cli: 'cdktn', cliPackage: 'cdktn-cli', version: /^0\.24\.\d+$/ },
  cdktf: { heading: '### cdktf 0.21 (existing cdktf projects)', cli: 'cdktf', cliPackage: 'cdktf-cli', version: /^0\.21\.\d+$/ },
} as const;
type CdkName = keyof typeof CDKS;

/** The first fenced block of `lang` after `heading` in the README. */
function readmeBlock(heading: string, lang: string): string {
  const at = README.indexOf(`${heading}\n`);
  if (at < 0) throw new Error(`README.md has no heading '${heading}'`);
  const block = README.slice(at).match(new RegExp('```' + lang + '\\n([\\s\\S]*?)```'));
  if (!block) throw new Error(`README.md has no ${lang} block after '${heading}'`);
  return block[1];
}

/** The README's example as a `cdk` project writes it into main.ts. */
function example(cdk: CdkName): string {
  const ts = readmeBlock('## Example', 'ts');
  expect(ts).toContain("from 'cdktn'");
  return cdk === 'cdktn' ? ts : ts.replace(/from 'cdktn'/g, "from 'cdktf'");
}

/** Environment for npm and the consumer's tools: none of the repository's npm_* settings leak in. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^npm_/i.test(k) && !['INIT_CWD', 'CI', 'CDKTF_OUTDIR', 'CDKTF_LIBVIRT_CLUSTER_CDK', 'CHECKPOINT_DISABLE'].includes(k)) env[k] = v;
  }
  // A CLI configuration file that does not exist makes the engine's version check warn in every synth.
  if (env.TF_CLI_CONFIG_FILE && !fs.existsSync(env.TF_CLI_CONFIG_FILE)) delete env.TF_CLI_CONFIG_FILE;
  return { ...env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_prefer_offline: 'true', ...extra };
}

interface Result {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function exec(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = cleanEnv()): Result {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: 5 * 60 * 1000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function run(cmd: string, args: string[], cwd: string, env?: NodeJS.ProcessEnv): string {
  const r = exec(cmd, args, cwd, env);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Why the registry cannot be used, or undefined. */
function registryProblem(): string | undefined {
  const r = spawnSync('npm', ['view', 'cdktn@0.24', 'version', '--prefer-offline'], { env: cleanEnv(), encoding: 'utf8', timeout: 60_000 });
  return r.status === 0 && /0\.24\.\d+/.test(r.stdout) ? undefined : `the npm registry does not answer (npm view cdktn: ${(r.stderr || 'no answer').trim().split('\n')[0]})`;
}

/** An app with raw resources from the generated bindings through both subpaths, beside the constructs. */
function bindingsApp(cdk: CdkName): string {
  return `import { App, TerraformStack } from '${cdk}';
import { Construct } from 'constructs';
import { Cluster, DomainType, FailoverGroup, Host, Image, Size } from 'cdktf-libvirt-cluster';
import { network } from 'cdktf-libvirt-cluster/providers/libvirt';
import { Volume } from 'cdktf-libvirt-cluster/providers/libvirt/volume';

class RawStack extends TerraformStack {
  constructor(scope: Construct, id: string) {
    super(scope, id);
    const capacity = { cores: 4, memory: Size.gibibytes(8) };
    const kvm1 = new Host(this, 'kvm1', { uri: 'qemu+ssh://admin@kvm1.example.net/system', domainType: DomainType.KVM, capacity });
    const kvm2 = new Host(this, 'kvm2', { uri: 'qemu+ssh://admin@kvm2.example.net/system', domainType: DomainType.KVM, capacity });
    const cluster = new Cluster(this, 'cluster', { hosts: [kvm1, kvm2], sharedStorage: { poolName: 'shared', path: '/srv/vmstore' }, lockFile: 'raw.lock.json' });
    new FailoverGroup(this, 'web', { cluster, replicas: 2, template: { vcpus: 1, memory: Size.gibibytes(1), image: Image.blank('blank', Size.mebibytes(64)) } });
    const net: network.Network = new network.Network(this, 'backup-net', { provider: kvm1.provider, name: 'backup' });
    new Volume(this, 'scratch', { provider: kvm1.provider, name: 'scratch.qcow2', pool: 'shared', capacity: 1024 * 1024, dependsOn: [net] });
  }
}

const app = new App();
new RawStack(app, 'raw');
app.synth();
`;
}

/** A stack's JSON without the CDK's metadata, the project folder written as `<project>`. */
function stackJson(project: string, outdir: string, stack: string): Record<string, unknown> {
  const json = JSON.parse(fs.readFileSync(path.join(outdir, 'stacks', stack, 'cdk.tf.json'), 'utf8').split(project).join('<project>'));
  delete json['//'];
  return json;
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

describeWithRegistry('the packed library in fresh projects, following the README', () => {
  let work: string;
  let tarball: string;
  const projects = new Map<CdkName, string>();
  const exampleJson = new Map<CdkName, Record<string, unknown>>();
  const rawJson = new Map<CdkName, Record<string, unknown>>();

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
    const listed = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' }).split('\n');
    for (const f of ['LICENSE', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/generated/libvirt/index.d.ts', 'dist/lib/ops/cli.js']) {
      expect(listed).toContain(`package/${f}`);
    }
    expect(listed.filter((f) => /\.ts$/.test(f) && !/\.d\.ts$/.test(f))).toEqual([]);
    expect(execFileSync('tar', ['xzOf', tarball, 'package/LICENSE'], { encoding: 'utf8' })).toContain('Apache License\n                           Version 2.0, January 2004');
  });

  for (const cdk of Object.keys(CDKS) as CdkName[]) {
    const { cli, cliPackage } = CDKS[cdk];

    test(`${cdk}: the README's quick start, run as written (the tarball for the package), type-checks and synthesizes with \`npx ${cli} synth\``, () => {
      const dir = path.join(work, `app-${cdk}`);
      fs.mkdirSync(dir);
      const steps = readmeBlock(CDKS[cdk].heading, 'sh').split('\n').filter((l) => l.trim() !== '');
      expect(steps.some((l) => /^CHECKPOINT_DISABLE=1 npx \S+ synth$/.test(l))).toBe(true);
      const started = Date.now();
      const timings: string[] = [];
      for (const step of steps) {
        // The user pastes the example here; the test writes the README's.
        if (/^cat > main\.ts/.test(step)) {
          fs.writeFileSync(path.join(dir, 'main.ts'), example(cdk));
          continue;
        }
        const command = step.replace(/^(npm install .*?)\bcdktf-libvirt-cluster\b/, `$1${tarball}`);
        const at = Date.now();
        const r = exec('bash', ['-c', command], dir);
        if (r.status !== 0) throw new Error(`README step \`${step}\` failed (exit ${r.status}) in ${dir}:\n${r.stdout}\n${r.stderr}`);
        if (/ synth$/.test(step)) {
          // Offline, the CLI's version check would print ENOTFOUND: the README's variable keeps it quiet.
          expect(r.stdout + r.stderr).not.toMatch(/ENOTFOUND|EAI_AGAIN/);
          expect(r.stdout).toContain('Generated Terraform code for the stacks: mail');
        }
        timings.push(`${step.split(' ').slice(0, 3).join(' ')} ${((Date.now() - at) / 1000).toFixed(1)} s`);
      }
      console.log(`${cdk}: quick start ${((Date.now() - started) / 1000).toFixed(1)} s (${timings.join('; ')})`);
      projects.set(cdk, dir);
      const installed = (name: string) => JSON.parse(fs.readFileSync(path.join(dir, 'node_modules', name, 'package.json'), 'utf8')).version;
      expect(installed(cdk)).toMatch(CDKS[cdk].version);
      expect(installed(cliPackage)).toMatch(CDKS[cdk].version);
      expect(installed('typescript')).toMatch(/^7\./); // what `npm install typescript` gives today
      const tsconfig = fs.readFileSync(path.join(dir, 'tsconfig.json'), 'utf8');
      expect(tsconfig).toMatch(/"exactOptionalPropertyTypes": true/);
      const outdir = path.join(dir, 'cdktf.out');
      const json = stackJson(dir, outdir, 'mail');
      expect(json).toHaveProperty(['terraform', 'required_providers', 'libvirt'], { source: 'dmacvicar/libvirt', version: '0.9.7' });
      expect(Object.keys((json as any).resource.libvirt_domain).length).toBeGreaterThanOrEqual(2);
      expect(fs.readFileSync(path.join(outdir, 'stacks', 'mail', 'placement-report.md'), 'utf8')).toContain('mail');
      exampleJson.set(cdk, json);
    });

    test(`${cdk}: the CLI ran on a Node its engines accept${cdk === 'cdktn' ? ' (Node 22 from the npm registry)' : ''}`, () => {
      const dir = projects.get(cdk)!;
      const engines = JSON.parse(fs.readFileSync(path.join(dir, 'node_modules', cliPackage, 'package.json'), 'utf8')).engines?.node ?? '*';
      // What `npx` runs a command under: the project's node_modules/.bin first on the path.
      const node = run('npm', ['exec', '--call', 'node --version'], dir).trim();
      const semver = require(path.join(dir, 'node_modules', 'semver'));
      expect([engines, node, semver.satisfies(node, engines)]).toEqual([engines, node, true]);
      const ours = JSON.parse(fs.readFileSync(path.join(dir, 'node_modules', 'cdktf-libvirt-cluster', 'package.json'), 'utf8')).engines.node;
      expect(semver.satisfies(node, ours)).toBe(true);
      if (cdk === 'cdktn') expect(node).toMatch(/^v22\./);
    });

    test(`${cdk}: a second \`npx ${cli} synth\` of the unchanged example writes the same bytes in every file`, () => {
      const dir = projects.get(cdk)!;
      const outdir = path.join(dir, 'cdktf.out');
      const window = () => JSON.parse(fs.readFileSync(path.join(outdir, 'stacks', 'mail', 'controller.json'), 'utf8')).clusters[0].nextWindowStart;
      let first = files(outdir);
      let boundary = window();
      run('npx', [cli, 'synth'], dir, cleanEnv({ CHECKPOINT_DISABLE: '1' }));
      if (window() !== boundary) {
        // A window boundary passed between the two: synthesize once more, within the new window.
        first = files(outdir);
        boundary = window();
        run('npx', [cli, 'synth'], dir, cleanEnv({ CHECKPOINT_DISABLE: '1' }));
      }
      const second = files(outdir);
      expect([...second.keys()].sort()).toEqual([...first.keys()].sort());
      expect([...first.keys()]).toEqual(expect.arrayContaining(['manifest.json', 'stacks/mail/cdk.tf.json', 'stacks/mail/placement-report.md', 'stacks/mail/placement-report.svg', 'stacks/mail/controller.json']));
      expect([...first.keys()].filter((f) => f.endsWith('.iso')).length).toBeGreaterThan(0);
      const differ = [...first].filter(([name, bytes]) => !second.get(name)!.equals(bytes)).map(([name]) => name);
      expect(differ).toEqual([]);
    });

    test(`${cdk}: the example type-checks under the CLI's template tsconfig, under strict + exactOptionalPropertyTypes + skipLibCheck: false${cdk === 'cdktf' ? `, and under TypeScript ${TYPESCRIPT_5}` : ''}`, () => {
      const dir = projects.get(cdk)!;
      fs.writeFileSync(path.join(dir, 'raw.ts'), bindingsApp(cdk));
      const template = JSON.parse(fs.readFileSync(path.join(dir, 'node_modules', cliPackage, 'bundle', 'templates', 'typescript', 'tsconfig.json'), 'utf8'));
      delete template.compilerOptions.incremental;
      const configs: Record<string, unknown> = {
        'tsconfig.template.json': { ...template, include: ['main.ts', 'raw.ts'] },
        'tsconfig.template-libcheck.json': { ...template, compilerOptions: { ...template.compilerOptions, skipLibCheck: false }, include: ['main.ts', 'raw.ts'] },
        'tsconfig.strict.json': {
          compilerOptions: { strict: true, exactOptionalPropertyTypes: true, skipLibCheck: false, module: 'nodenext', target: 'es2022', noEmit: true },
          include: ['main.ts', 'raw.ts'],
        },
      };
      const tsc7 = path.join(dir, 'node_modules', 'typescript', 'bin', 'tsc');
      const started = Date.now();
      // tsc --init's own configuration (the project's tsconfig.json), now with the raw-bindings app too.
      run(tsc7, ['-p', '.', '--noEmit'], dir);
      for (const [file, config] of Object.entries(configs)) {
        fs.writeFileSync(path.join(dir, file), JSON.stringify(config, null, 2));
        run(tsc7, ['-p', file, '--noEmit'], dir);
      }
      const ts7 = Date.now();
      if (cdk === 'cdktf') {
        run('npm', ['install', '--save-dev', `typescript-5@npm:typescript@${TYPESCRIPT_5}`], dir);
        run(path.join(dir, 'node_modules', 'typescript-5', 'bin', 'tsc'), ['-p', 'tsconfig.template-libcheck.json', '--noEmit'], dir);
      }
      console.log(`${cdk}: TypeScript 7 under 4 configurations ${((ts7 - started) / 1000).toFixed(1)} s${cdk === 'cdktf' ? `, TypeScript ${TYPESCRIPT_5} install + check ${((Date.now() - ts7) / 1000).toFixed(1)} s` : ''}`);
    });

    test(`${cdk}: raw bindings through the package's subpaths synthesize beside the constructs`, () => {
      const dir = projects.get(cdk)!;
      const outdir = path.join(dir, 'cdktf.out-raw');
      run('npx', ['--no-install', 'tsx', 'raw.ts'], dir, cleanEnv({ CDKTF_OUTDIR: outdir }));
      const json = stackJson(dir, outdir, 'raw') as any;
      expect(Object.keys(json.resource.libvirt_domain)).toHaveLength(2);
      expect(json.resource.libvirt_network).toHaveProperty(['backup-net', 'name'], 'backup');
      expect(json.resource.libvirt_volume).toHaveProperty(['scratch', 'depends_on'], ['libvirt_network.backup-net']);
      expect(fs.readdirSync(path.join(outdir, 'stacks', 'raw', 'cloud-init')).filter((f) => f.endsWith('.iso'))).toHaveLength(2);
      rawJson.set(cdk, json);
    });

    test(`${cdk}: a broken example fails through \`npx ${cli} synth\` with its problem list and no stack frames`, () => {
      const dir = projects.get(cdk)!;
      const broken = example(cdk).replace('vcpus: 2, memory: Size.gibibytes(4)', 'vcpus: 2, memory: Size.gibibytes(400)');
      expect(broken).not.toBe(example(cdk));
      fs.writeFileSync(path.join(dir, 'broken.ts'), broken);
      const r = exec('npx', [cli, 'synth', '--app', 'npx tsx broken.ts', '--output', 'cdktf.out-broken'], dir, cleanEnv({ CHECKPOINT_DISABLE: '1' }));
      const output = r.stdout + r.stderr;
      expect(r.status).not.toBe(0);
      const header = output.match(/synth failed: (\d+) problems?, each with its construct path and how to fix it:/);
      expect(header).not.toBeNull();
      const problems = output.split('\n').filter((l) => /^\s*\[mail\/[^\]]*\] \[/.test(l));
      expect(problems.some((l) => l.includes('[capacity]'))).toBe(true);
      expect(problems.length).toBe(2 * Number(header![1])); // once from the app, once in the CLI's summary
      expect(output).not.toMatch(/^\s+at /m);
      expect(output).not.toContain('skipValidation');
      // cdktf's spinner writes a frame per line when the output is not a terminal: those are not counted.
      const lines = output.split('\n').filter((l) => l.trim() !== '' && !/Synthesizing|Starting|^(\x1b\[[0-9;]*[A-Za-z])+$/.test(l));
      console.log(`${cdk}: a failed synth prints ${lines.length} lines for ${header![1]} problems (blank lines and spinner frames aside)`);
    });

    test(`${cdk}: the package's command answers --help and --version (exit 0)`, () => {
      const dir = projects.get(cdk)!;
      const help = exec('npx', ['--no-install', 'cdktf-libvirt-cluster', '--help'], dir);
      expect([help.status, help.stdout]).toEqual([0, expect.stringContaining('reconcile')]);
      const reconcile = exec('npx', ['--no-install', 'cdktf-libvirt-cluster', 'reconcile', '--help'], dir);
      expect(reconcile.status).toBe(0);
      for (const option of ['--stack-dir', '--host', '--migrate-uri', '--migrate-bandwidth', '--dry-run']) expect(reconcile.stdout).toContain(option);
      expect(exec('npx', ['--no-install', 'cdktf-libvirt-cluster', '--version'], dir)).toMatchObject({ status: 0, stdout: `${VERSION}\n` });
    });
  }

  test('cdktf and CDK Terrain synthesize the same JSON, for the README example and for the raw bindings', () => {
    expect(exampleJson.get('cdktn')).toEqual(exampleJson.get('cdktf'));
    expect(rawJson.get('cdktn')).toEqual(rawJson.get('cdktf'));
  });

  test('a cdktn app cannot synthesize the library on cdktf classes: why the package follows the app', () => {
    const dir = projects.get('cdktn')!;
    const r = exec('npx', ['--no-install', 'tsx', 'raw.ts'], dir, cleanEnv({ CDKTF_OUTDIR: path.join(dir, 'cdktf.out-mixed'), CDKTF_LIBVIRT_CLUSTER_CDK: 'cdktf' }));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('_resetResolveDiscoveredProviderFeatureUsage is not a function');
  });
});
