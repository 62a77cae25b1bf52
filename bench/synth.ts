/**
 * Synth cost of the library against the same resources declared directly with the generated
 * bindings, whole processes in the same run: `bench/synth-library.ts` (50 hosts in a cluster,
 * N VMs placed, validated, seed disks written) against `bench/synth-raw.ts` (the same resources,
 * hosts round-robin, seed disks as `libvirt_cloudinit_disk`). Prints, per N, the medians of
 * `runs` alternating runs: wall and CPU time, their ratios, and peak RSS.
 *
 *   npm run bench:synth                       # N = 1000, 5000 (3 runs each side), then 20000 on
 *                                             # 1,000 hosts: the library alone, and `npx cdktf synth`
 *   npm run bench:synth -- --runs=1           # one run a side (~10 min on 2 cores at low load)
 *   npm run bench:synth -- --sizes=300 --runs=1 --no-big
 *   npm run bench:synth -- --sizes=100 --runs=1 --big-vms=300 --big-hosts=20   # a quick check
 *
 * At 20,000 VMs the raw bindings need about 21 GiB (1 MiB a domain), more than a CI runner has:
 * that size runs the library side only, once precompiled and once as users run it, `npx cdktf
 * synth` with the `npx tsx` app command (cdktf.json), timed with its peak RSS (GNU time, where
 * installed) on a snapshot of the sources taken before the first run.
 *
 * Both sides are transpiled once, up front, into a temporary directory (TypeScript's
 * transpileModule, what `ts-node --transpile-only` does per file), and each measurement is a
 * fresh `node` process on that JavaScript: compiling the 700 KB of generated bindings is then in
 * neither side, and every run starts cold, as `cdktf synth` does. Not under ts-node itself: it
 * installs source-map-support, which maps every captured stack trace and makes both sides about
 * 5× slower. Each run writes into fresh directories (no lock, no seed disk yet: a first synth).
 * Both sides get the same V8 heap limit (`--heap=MiB`, default 3/4 of the machine's memory, at
 * most 16 GiB): each `libvirt_domain` of the bindings keeps ~400 nested objects with a captured
 * stack trace, about 1 MiB a VM, so 5,000 VMs do not fit node's default of ~4 GiB on either side.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from 'typescript';

const ROOT = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const option = (name: string): string | undefined => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const sizes = (option('sizes') ?? '1000,5000').split(',').map(Number);
const runs = Number(option('runs') ?? 3);
const big = !args.includes('--no-big');
const BIG = { vms: Number(option('big-vms') ?? 20_000), hosts: Number(option('big-hosts') ?? 1000) };
const heapMiB = Number(option('heap') ?? Math.min(16_384, Math.floor((os.totalmem() / 2 ** 20) * 0.75)));

interface Sample {
  readonly wallMs: number;
  readonly cpuMs: number;
  readonly rssMiB: number;
  /** Why the run failed (out of memory), if it did. */
  readonly failed?: string;
}

/** Transpiles lib/ and bench/ into `out`, with node_modules linked beside them; their sources go to `out/src`. */
function transpile(out: string): void {
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(file);
      else if (file.endsWith('.ts') && !file.endsWith('.d.ts')) {
        const js = ts.transpileModule(fs.readFileSync(file, 'utf8'), {
          fileName: file,
          compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS, esModuleInterop: true },
        }).outputText;
        const target = path.join(out, path.relative(ROOT, file)).replace(/\.ts$/, '.js');
        fs.mkdirSync(path.dirname(target), { recursive: true });
        fs.writeFileSync(target, js);
        const source = path.join(out, 'src', path.relative(ROOT, file));
        fs.mkdirSync(path.dirname(source), { recursive: true });
        fs.copyFileSync(file, source);
      }
    }
  };
  walk(path.join(ROOT, 'lib'));
  walk(path.join(ROOT, 'bench'));
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(out, 'node_modules'), 'dir');
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(out, 'src', 'node_modules'), 'dir');
  fs.copyFileSync(path.join(ROOT, 'tsconfig.json'), path.join(out, 'src', 'tsconfig.json'));
}

/** What a synthesized stack holds, to show both sides declare the same. */
function describeOutput(outdir: string): string {
  const dir = path.join(outdir, 'stacks', 'bench');
  const json = fs.readFileSync(path.join(dir, 'cdk.tf.json'), 'utf8');
  const doc = JSON.parse(json) as { resource: Record<string, Record<string, unknown>>; provider: Record<string, unknown[]> };
  const counts = Object.entries(doc.resource).map(([type, r]) => `${type.replace('libvirt_', '')} ${Object.keys(r).length}`);
  const total = Object.values(doc.resource).reduce((sum, r) => sum + Object.keys(r).length, 0);
  const seeds = path.join(dir, 'cloud-init');
  const isos = fs.existsSync(seeds) ? fs.readdirSync(seeds) : [];
  const isoBytes = isos.reduce((sum, f) => sum + fs.statSync(path.join(seeds, f)).size, 0);
  return (
    `${total} resources (${counts.join(', ')}), ${doc.provider.libvirt.length} provider aliases, JSON ${(json.length / 2 ** 20).toFixed(1)} MiB` +
    (isos.length > 0 ? `, ${isos.length} seed ISOs written (${(isoBytes / 2 ** 20).toFixed(0)} MiB)` : '')
  );
}

/** One cold synth in a fresh process and fresh directories. */
function measure(build: string, side: 'library' | 'raw', vms: number, hosts: number, describe: boolean): Sample {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `bench-synth-${side}-`));
  try {
    const outdir = path.join(work, 'cdktf.out');
    const start = process.hrtime.bigint();
    const script = path.join(build, 'bench', `synth-${side}.js`);
    const child = spawnSync(process.execPath, [`--max-old-space-size=${heapMiB}`, script, String(vms), outdir, work, String(hosts)], {
      cwd: work,
      encoding: 'utf8',
      maxBuffer: 64 * 2 ** 20,
    });
    const wallMs = Number(process.hrtime.bigint() - start) / 1e6;
    if (child.status !== 0) {
      const oom = /heap out of memory|Allocation failed/.test(child.stderr);
      if (!oom) throw new Error(`${side} ${vms} failed (${child.status ?? child.signal}):\n${child.stderr.slice(-4000)}`);
      return { wallMs: wallMs, cpuMs: NaN, rssMiB: NaN, failed: `out of memory with a ${heapMiB} MiB heap` };
    }
    const result = JSON.parse(child.stdout.trim().split('\n').pop()!) as { cpuMs: number; maxRssKiB: number };
    if (describe) console.log(`  ${side.padEnd(7)} N=${vms}: ${describeOutput(outdir)}`);
    return { wallMs, cpuMs: result.cpuMs, rssMiB: result.maxRssKiB / 1024 };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/**
 * The library side as a user runs it: `npx cdktf synth` in a project whose cdktf.json app is
 * `npx tsx bench/synth-library.ts ...` on the snapshot of the sources. Wall time of the whole
 * command; peak RSS of its largest process when GNU time is installed.
 */
function measureCdktfSynth(build: string, vms: number, hosts: number): { wallMs: number; rssMiB?: number; describe: string } {
  const project = path.join(build, 'src');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-synth-cli-'));
  try {
    const outdir = path.join(work, 'cdktf.out');
    fs.writeFileSync(
      path.join(project, 'cdktf.json'),
      JSON.stringify({ language: 'typescript', app: `npx tsx bench/synth-library.ts ${vms} '' ${work} ${hosts}`, terraformProviders: [], terraformModules: [], context: {} }),
    );
    const time = fs.existsSync('/usr/bin/time') ? ['/usr/bin/time', '-f', 'maxrss-kib=%M'] : [];
    const command = [...time, path.join(ROOT, 'node_modules', '.bin', 'cdktf'), 'synth', '--output', outdir];
    const start = process.hrtime.bigint();
    const child = spawnSync(command[0], command.slice(1), {
      cwd: project,
      encoding: 'utf8',
      maxBuffer: 64 * 2 ** 20,
      env: { ...process.env, CHECKPOINT_DISABLE: '1', CDKTF_DISABLE_PLUGIN_CACHE_ENV: '1', CI: '', FORCE_COLOR: '0' },
    });
    const wallMs = Number(process.hrtime.bigint() - start) / 1e6;
    if (child.status !== 0) throw new Error(`npx cdktf synth of ${vms} VMs failed (${child.status ?? child.signal}):\n${(child.stdout + child.stderr).slice(-4000)}`);
    const rss = /maxrss-kib=(\d+)/.exec(child.stderr)?.[1];
    return { wallMs, rssMiB: rss ? Number(rss) / 1024 : undefined, describe: describeOutput(outdir) };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

const median = (xs: readonly number[]): number => {
  if (xs.some((x) => Number.isNaN(x))) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const build = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-synth-build-'));
try {
  transpile(build);
  console.log(
    `node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ` +
      `load ${os.loadavg()[0].toFixed(1)}; heap limit ${heapMiB} MiB each side`,
  );
  const rows: string[] = [];
  const plan: { vms: number; hosts: number; runs: number; sides: readonly ('library' | 'raw')[] }[] = [
    ...sizes.map((vms) => ({ vms, hosts: 50, runs, sides: ['library', 'raw'] as const })),
    ...(big ? [{ ...BIG, runs: 1, sides: ['library'] as const }] : []),
  ];
  for (const { vms, hosts, runs: n, sides } of plan) {
    const samples = { library: [] as Sample[], raw: [] as Sample[] };
    if (sides.length === 1) console.log(`  N=${vms} on ${hosts} hosts: the raw side is left out (about 1 MiB a domain: ~21 GiB)`);
    for (let run = 0; run < n; run++) {
      // Alternate which side goes first, so drift in machine load hits both alike.
      const order = run % 2 === 0 ? sides : [...sides].reverse();
      for (const side of order) {
        const s = measure(build, side, vms, hosts, run === 0);
        samples[side].push(s);
        if (s.failed) console.log(`  ${side.padEnd(7)} N=${vms} run ${run + 1}: failed after ${(s.wallMs / 1000).toFixed(0)} s, ${s.failed}`);
        else console.log(`  ${side.padEnd(7)} N=${vms} run ${run + 1}: wall ${(s.wallMs / 1000).toFixed(2)} s, cpu ${(s.cpuMs / 1000).toFixed(2)} s, peak RSS ${s.rssMiB.toFixed(0)} MiB`);
      }
    }
    const m = (side: 'library' | 'raw', key: 'wallMs' | 'cpuMs' | 'rssMiB') =>
      samples[side].length === 0 ? NaN : median(samples[side].map((s) => (s.failed ? NaN : s[key])));
    rows.push(
      [
        String(vms).padStart(6),
        (m('library', 'wallMs') / 1000).toFixed(2).padStart(9),
        (m('raw', 'wallMs') / 1000).toFixed(2).padStart(7),
        `${(m('library', 'wallMs') / m('raw', 'wallMs')).toFixed(2)}×`.padStart(6),
        `${(m('library', 'cpuMs') / m('raw', 'cpuMs')).toFixed(2)}×`.padStart(9),
        m('library', 'rssMiB').toFixed(0).padStart(10),
        m('raw', 'rssMiB').toFixed(0).padStart(6),
        String(n).padStart(5),
      ].join(' | ') + (sides.length === 1 ? `  (${hosts} hosts; library cpu ${(m('library', 'cpuMs') / 1000).toFixed(2)} s; raw left out)` : ''),
    );
  }
  let cli: string | undefined;
  if (big) {
    console.log(`\n  npx cdktf synth, app \`npx tsx bench/synth-library.ts\`, N=${BIG.vms} on ${BIG.hosts} hosts, load ${os.loadavg()[0].toFixed(1)}:`);
    const r = measureCdktfSynth(build, BIG.vms, BIG.hosts);
    console.log(`  ${r.describe}`);
    cli = `npx cdktf synth of ${BIG.vms} VMs on ${BIG.hosts} hosts: wall ${(r.wallMs / 1000).toFixed(2)} s, peak RSS ${r.rssMiB === undefined ? 'unknown (no /usr/bin/time)' : `${r.rssMiB.toFixed(0)} MiB`}`;
  }
  console.log(`\n     N | library s |  raw s |  ratio | cpu ratio | library MB | raw MB | runs`);
  console.log(`-------|-----------|--------|--------|-----------|------------|--------|-----`);
  for (const row of rows) console.log(row);
  console.log('\nwall and CPU (user + system) time of whole processes, medians; MB is peak RSS in MiB; NaN: a run ran out of memory or was left out.');
  if (cli) console.log(cli);
  console.log(`load at the end ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
} finally {
  fs.rmSync(build, { recursive: true, force: true });
}
