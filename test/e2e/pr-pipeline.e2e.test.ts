/**
 * The pull-request pipeline of docs/ci.md, step by step on this machine: a two-host lab, the state
 * in a real PostgreSQL, the cdktf CLI running pipeline-app.ts as a user's app.
 *
 * - main: a synth writes the placement lock, committed with the code.
 * - pull request: `CI=true` synth (frozen lock) with the schedule instant pinned by the pipeline
 *   (context `libvirt-cluster:instant` through CDKTF_CONTEXT_JSON), `tofu plan -lock=false -out`
 *   against PostgreSQL, `cdktf-libvirt-cluster plan-comment` for the one Markdown comment; the
 *   stack folder with the plan is the job's artifact. A change that would move placements fails
 *   the synth instead.
 * - after merge: the artifact in a fresh folder, `reconcile`, then `tofu apply <plan>`: exactly the
 *   reviewed plan. A plan made before another apply is refused as stale.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { MUTEX_WORKSPACE } from '../../lib/ops/controller';
import { Lab, labPrerequisites } from '../lab/lab';
import { Postgres, postgresMissing } from './postgres';
import { CACHE, describeE2e, TOFU, TOFU_RC } from './toolchain';

const ROOT = path.resolve(__dirname, '..', '..');
const TSX = path.join(ROOT, 'node_modules', '.bin', 'tsx');
const PEAK = '2026-11-27T09:00:00+01:00';
const EVENING = '2026-11-27T21:00:00+01:00';

const missing = (() => {
  const lab = labPrerequisites();
  return lab.ok ? postgresMissing() : lab.reason;
})();
describeE2e('the pull-request pipeline against a lab, with the state in PostgreSQL', () => {
  let lab: Lab;
  let pg: Postgres;
  let work: string;
  let lockFile: string;
  let lastApplied = '';
  const timings: string[] = [];

  /** The pipeline's environment: toolchain (`. ~/.cache/cdktf-libvirt-cluster/env`), PG_CONN_STR, the lab's hosts. */
  function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    const base: NodeJS.ProcessEnv = { ...process.env };
    for (const k of ['CI', 'CDKTF_CONTEXT_JSON', 'TERRAFORM_BINARY_NAME']) delete base[k];
    return {
      ...base,
      TF_CLI_CONFIG_FILE: TOFU_RC,
      TF_CLI_ARGS_providers_lock: `-fs-mirror=${path.join(CACHE, 'providers')}`,
      PATH: `${path.join(CACHE, 'bin')}${path.delimiter}${process.env.PATH}`,
      TF_IN_AUTOMATION: '1',
      CHECKPOINT_DISABLE: '1',
      PG_CONN_STR: pg.connStr,
      PIPELINE_HOSTS: ['h1', 'h2'].map((h) => `${h}=${lab.host(h).uri}`).join(','),
      PIPELINE_SHARED_PATH: path.join(lab.sharedDir, 'pool'),
      PIPELINE_LOCK_FILE: lockFile,
      ...extra,
    };
  }

  function run(what: string, cmd: string, args: string[], cwd: string, extra: NodeJS.ProcessEnv = {}): { status: number | null; output: string; stdout: string } {
    const started = Date.now();
    const r = spawnSync(cmd, args, { cwd, env: env(extra), encoding: 'utf8', timeout: 5 * 60 * 1000, maxBuffer: 64 * 1024 * 1024 });
    timings.push(`${what}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return { status: r.status, stdout: r.stdout, output: `${r.stdout}\n${r.stderr}`.replace(/\u001b\[[0-9;]*[A-Za-z]/g, '') };
  }

  function ok(what: string, cmd: string, args: string[], cwd: string, extra: NodeJS.ProcessEnv = {}): string {
    const r = run(what, cmd, args, cwd, extra);
    if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}):\n${r.output}`);
    return r.stdout;
  }

  /** `cdktf synth` as the pipeline runs it, the instant pinned in the context; returns the stack folder. */
  function synth(instant: string, extra: NodeJS.ProcessEnv = {}): { status: number | null; output: string } {
    return run(`cdktf synth (${instant})`, path.join(ROOT, 'node_modules', '.bin', 'cdktf'), ['synth'], work, {
      CDKTF_CONTEXT_JSON: JSON.stringify({ 'libvirt-cluster:instant': instant }),
      ...extra,
    });
  }
  const stackDir = () => path.join(work, 'cdktf.out', 'stacks', 'web');
  const tofu = (dir: string, ...args: string[]) => ok(`tofu ${args[0]}`, TOFU, [...args, '-no-color'], dir);
  const cli = (dir: string, ...args: string[]) => ok(`cdktf-libvirt-cluster ${args[0]}`, TSX, [path.join(ROOT, 'lib', 'ops', 'cli.ts'), ...args], dir);

  /** The pull-request job: frozen synth, plan against PostgreSQL, the comment; the stack folder as the artifact. */
  function pullRequest(name: string, instant: string): { artifact: string; comment: string } {
    const synthesized = synth(instant, { CI: 'true' });
    if (synthesized.status !== 0) throw new Error(`synth failed:\n${synthesized.output}`);
    tofu(stackDir(), 'init', '-input=false');
    tofu(stackDir(), 'plan', '-lock=false', '-input=false', '-out=plan.tfplan');
    const comment = cli(stackDir(), 'plan-comment', '--stack-dir', '.', '--plan', 'plan.tfplan');
    const artifact = path.join(work, 'artifacts', name);
    fs.cpSync(stackDir(), artifact, { recursive: true, filter: (src) => path.basename(src) !== '.terraform' });
    fs.writeFileSync(path.join(artifact, 'comment.md'), comment);
    return { artifact, comment };
  }

  /** The job after merge: the artifact in a fresh folder, reconcile, apply exactly its plan. */
  function afterMerge(artifact: string): { status: number | null; output: string; reconciled: string } {
    const dir = `${artifact}-applied`;
    fs.cpSync(artifact, dir, { recursive: true });
    tofu(dir, 'init', '-input=false');
    const reconciled = cli(dir, 'reconcile', '--stack-dir', '.', '--host', `h1=${lab.host('h1').uri}`, '--host', `h2=${lab.host('h2').uri}`);
    // One resource at a time: the lab's hosts share one network namespace, so two libvirtd creating
    // their isolated networks at once can both pick bridge virbr0 (separate machines cannot collide).
    const applied = run('tofu apply <plan>', TOFU, ['apply', '-input=false', '-no-color', '-parallelism=1', 'plan.tfplan'], dir);
    if (applied.status === 0) lastApplied = dir;
    return { ...applied, reconciled };
  }

  const running = () => ['h1', 'h2'].flatMap((h) => lab.host(h).runningDomains().map((d) => `${d}@${h}`)).sort();

  beforeAll(async () => {
    lab = await Lab.start({ hosts: 2 });
    pg = await Postgres.start();
    work = path.join(lab.root, 'pipeline');
    fs.mkdirSync(work);
    lockFile = path.join(work, 'web.placement-lock.json');
    const shared = path.join(lab.sharedDir, 'pool');
    fs.mkdirSync(shared);
    lab.defineSharedPool('shared', shared);
    fs.writeFileSync(path.join(work, 'cdktf.json'), JSON.stringify({ language: 'typescript', app: `${TSX} ${path.join(__dirname, 'pipeline-app.ts')}`, output: path.join(work, 'cdktf.out') }));
  });

  afterAll(async () => {
    try {
      if (lastApplied) tofu(lastApplied, 'destroy', '-auto-approve', '-input=false');
    } catch (err) {
      console.log(`cleanup destroy failed (the lab teardown removes everything anyway): ${err}`);
    } finally {
      await lab?.teardown();
      await pg?.stop();
      console.log(timings.join('\n'));
    }
  });

  test('main: a synth writes the placement lock, committed with the code', () => {
    const r = synth(PEAK);
    expect(r.status).toBe(0);
    expect(Object.keys(JSON.parse(fs.readFileSync(lockFile, 'utf8')))).not.toHaveLength(0);
  });

  let first: { artifact: string; comment: string };

  test('pull request: frozen synth at the pinned instant, plan -out against PostgreSQL, one comment with plan and placement report', () => {
    first = pullRequest('pr-1', PEAK);
    const { comment } = first;
    console.log(`the pull request's comment:\n${comment}`);
    expect(comment).toMatch(/^## Plan for stack `web`\n\n\*\*\d+ to add, 0 to change, 0 to destroy\*\* \(tofu \d+\.\d+\.\d+\)/);
    expect(comment).toMatch(/\+ libvirt_domain\.web_replica-1_/);
    expect(comment).toMatch(/\+ libvirt_domain\.web_replica-2_/);
    expect(comment).toContain('<summary>Placement report</summary>');
    expect(comment).toContain('2026-11-27'); // the report is for the pinned instant, not the clock
    // The plan ran with -lock=false and wrote no state: nothing is in PostgreSQL yet but the schema.
    expect(pg.psql(pg.database, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'cdktf_web'")).toBe('1');
    expect(pg.psql(pg.database, 'SELECT count(*) FROM cdktf_web.states')).toBe('0');
  });

  test('a pull request that would move placements fails at synth: the lock is frozen in CI', () => {
    const before = fs.readFileSync(lockFile, 'utf8');
    const r = synth(PEAK, { CI: 'true', PIPELINE_PEAK: '3' });
    expect(r.status).not.toBe(0);
    expect(r.output).toContain('synthesize locally, review and commit the lock file');
    expect(fs.readFileSync(lockFile, 'utf8')).toBe(before);
  });

  test('after merge: reconcile, then apply exactly the reviewed plan; the VMs run where the comment said', () => {
    const merged = afterMerge(first.artifact);
    expect(merged.reconciled.split('\n')[0]).toMatch(/^engine: tofu \(it initialized the stack folder/);
    expect(merged.output).toMatch(/Apply complete! Resources: \d+ added, 0 changed, 0 destroyed\./);
    expect(merged.status).toBe(0);
    const vms = running();
    expect(vms).toHaveLength(2);
    expect(new Set(vms.map((v) => v.split('@')[1])).size).toBe(2); // soft anti-affinity kept
    for (const vm of vms) {
      const [name, host] = vm.split('@');
      expect(first.comment).toMatch(new RegExp(`${name}[^\\n]*${host}`)); // the report's row for the VM names its host
    }
    // The stack's one state, and the empty workspace whose lock is the controllers' mutex (reconcile takes it).
    expect(pg.psql(pg.database, 'SELECT name FROM cdktf_web.states ORDER BY name').split('\n').sort()).toEqual([MUTEX_WORKSPACE, 'default'].sort());
  });

  test('a plan made before another apply is refused as stale: only the reviewed state is ever changed', () => {
    const older = pullRequest('pr-2', EVENING);
    const newer = pullRequest('pr-3', EVENING);
    expect(older.comment).toMatch(/0 to add, 0 to change, \d+ to destroy/);
    expect(afterMerge(newer.artifact).status).toBe(0);
    expect(running()).toHaveLength(1); // the evening window: one replica
    const stale = afterMerge(older.artifact);
    expect(stale.status).not.toBe(0);
    expect(stale.output).toContain('Saved plan is stale');
    expect(running()).toHaveLength(1);
  });
}, missing);
