/**
 * The command as a user meets it: `--help` on the command and each subcommand (exit 0, every option
 * with what it does and its default), `--version`, and errors that say what to do. The commands run
 * through `main` with the real parser; only the last step (reconcile, the controller) is replaced
 * where it would need hosts, except for the checks in front of it, which are the real ones.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CliActions, main, packageVersion } from '../../lib/ops/cli';
import { scratchDir } from '../synth';

interface Run {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** Runs the command in process; without `actions`, the real ones. */
async function cli(argv: string[], actions?: CliActions): Promise<Run> {
  let out = '';
  let err = '';
  const code = await main(argv, actions, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

/** The options a subcommand's help lists, from its Options section. */
function listedOptions(help: string): string[] {
  const section = help.split('\nOptions:\n')[1].split('\n\n')[0];
  return [...section.matchAll(/^ {2}(?:-\w, )?(--[a-z-]+)/gm)].map((m) => m[1]);
}

/** Each option's text in a help, joined across its wrapped lines. */
function optionText(help: string, option: string): string {
  const section = help.split('\nOptions:\n')[1].split('\n\n')[0];
  const at = section.indexOf(`  ${option}`);
  const rest = section.slice(at + 2);
  const next = rest.slice(1).search(/\n {2}-/);
  return (next < 0 ? rest : rest.slice(0, next + 1)).replace(/\s+/g, ' ');
}

const recorded: CliActions = {
  reconcile: () => 0,
  planComment: () => 0,
  controller: () => 0,
  record: () => 0,
  adopt: () => 0,
};

describe('cdktf-libvirt-cluster', () => {
  test('--help lists every command and exits 0; no arguments prints it to stderr and exits 2', async () => {
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    for (const command of ['adopt', 'reconcile', 'plan-comment', 'controller', 'record', '--version', '--help']) expect(help.out).toContain(command);
    expect(help.err).toBe('');
    const none = await cli([]);
    expect(none.code).toBe(2);
    expect(none.err).toContain('Usage: cdktf-libvirt-cluster [options] [command]');
  });

  test('--version and -V print the package version', async () => {
    const version = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')).version;
    expect(packageVersion()).toBe(version);
    for (const flag of ['--version', '-V']) expect(await cli([flag])).toEqual({ code: 0, out: `${version}\n`, err: '' });
  });

  const expected: Record<string, string[]> = {
    reconcile: ['--stack-dir', '--host', '--migrate-uri', '--migrate-bandwidth', '--migrate-timeout', '--cold-when-refused', '--dry-run', '--override-decision', '--help'],
    'plan-comment': ['--stack-dir', '--plan', '--help'],
    controller: ['--config', '--id', '--once', '--dry-run', '--clock-offset-seconds', '--help'],
    record: ['--stack-dir', '--out', '--help'],
    adopt: ['--host', '--out', '--state-dir', '--engine', '--skip-unmodelled', '--refresh', '--only', '--exclude', '--library', '--help'],
  };
  test.each(Object.keys(expected))('%s --help and -h exit 0 and describe every option, with its default or that it is required', async (command) => {
    const help = await cli([command, '--help']);
    expect(help.code).toBe(0);
    expect(help.out).toContain(`Usage: cdktf-libvirt-cluster ${command} [options]`);
    expect(listedOptions(help.out)).toEqual(expected[command]);
    for (const option of expected[command].filter((o) => o !== '--help')) {
      const text = optionText(help.out, option);
      // What it does (more than the flag's name), and what happens without it.
      expect([option, text.length > option.length + 40]).toEqual([option, true]);
      expect([option, /\(default: [^)]+\)|; required|at least one/.test(text)]).toEqual([option, true]);
    }
    expect(await cli([command, '-h'])).toEqual(help);
  });

  test('a usage error says what is wrong and where help is, exit 2', async () => {
    const unknown = await cli(['reconcile', '--stack-dir', 'x', '--host', 'a=b', '--bogus']);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toBe("error: unknown option '--bogus'\n(run `cdktf-libvirt-cluster reconcile --help` for every option)\n");
    const pair = await cli(['reconcile', '--stack-dir', 'x', '--host', 'kvm1'], recorded);
    expect(pair.code).toBe(2);
    expect(pair.err).toContain("--host takes NAME=URI, not 'kvm1' (e.g. --host kvm1=qemu+ssh://admin@kvm1.example.net/system)");
    const command = await cli(['deploy']);
    expect([command.code, command.err.split('\n')[0]]).toEqual([2, "error: unknown command 'deploy'"]);
    const missing = await cli(['controller'], recorded);
    expect(missing).toMatchObject({ code: 2, err: "error: give --config FILE: the controller's configuration (docs/controller.md)\n" });
  });

  describe('reconcile and plan-comment on a stack folder the engine cannot read yet', () => {
    test('not a synth output: says to give the stack folder after cdktf synth', async () => {
      const dir = scratchDir('empty-');
      const r = await cli(['reconcile', '--stack-dir', dir, '--host', 'h1=qemu:///system', '--dry-run']);
      expect(r).toEqual({ code: 2, out: '', err: `error: ${dir} has no cdk.tf.json: give the stack's folder in the synth output (cdktf.out/stacks/<stack>), after \`cdktf synth\`\n` });
    });

    test.each(['reconcile', 'plan-comment'])('%s before init: says to run init there first, and runs no engine', async (command) => {
      const dir = scratchDir('stack-');
      fs.writeFileSync(path.join(dir, 'cdk.tf.json'), '{}');
      const args = command === 'reconcile' ? ['--host', 'h1=qemu:///system', '--dry-run'] : ['--plan', 'plan.tfplan'];
      const r = await cli([command, '--stack-dir', dir, ...args]);
      expect(r.code).toBe(2);
      expect(r.out).toBe('');
      expect(r.err).toMatch(new RegExp(`^error: ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not initialized \\(no \\.terraform\\): run \`(tofu|terraform) init\` in it first \\(a first \`cdktf deploy\` does that too\\)\\n$`));
    });
  });

  describe('controller --config', () => {
    test("a stack's controller.json from cdktf.out: this is a synth output, not a controller config", async () => {
      const dir = scratchDir('out-');
      const file = path.join(dir, 'controller.json');
      fs.writeFileSync(file, JSON.stringify({ version: 1, stack: 'mail', clusters: [] }));
      const r = await cli(['controller', '--config', file, '--once']);
      expect(r.code).toBe(2);
      expect(r.err).toContain(`error: ${file} is a synth output (the controller.json that cdktf synth writes for stack mail, which the controller reads by itself), not a controller config:`);
      expect(r.err).toContain('docs/controller.md');
    });

    test("a configuration with mistakes lists every problem, exit 2", async () => {
      const file = path.join(scratchDir('cfg-'), 'controller.config.json');
      fs.writeFileSync(file, JSON.stringify({ stacks: [], hosts: {}, pollSeconds: -1 }));
      const r = await cli(['controller', '--config', file, '--once']);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(new RegExp(`^error: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: the controller's configuration has \\d+ problems?:\n`));
      expect(r.err).toContain('pollSeconds must be a number of seconds above 0');
    });

    test('a file that is missing or not JSON is named, with the reason', async () => {
      const missing = await cli(['controller', '--config', '/nonexistent/controller.config.json']);
      expect(missing.code).toBe(2);
      expect(missing.err).toContain("error: cannot read the controller's configuration /nonexistent/controller.config.json: ENOENT");
      const file = path.join(scratchDir('cfg-'), 'c.json');
      fs.writeFileSync(file, 'stacks: [mail]');
      expect((await cli(['controller', '--config', file])).err).toMatch(/^error: cannot read the controller's configuration .*c\.json: Unexpected token/);
    });
  });

  test('the parsed options reach the command, defaults filled in', async () => {
    const seen: unknown[] = [];
    const keep: CliActions = {
      reconcile: (a) => (seen.push(a), 0),
      planComment: (a) => (seen.push(a), 0),
      controller: (a) => (seen.push(a), 3),
      record: (a) => (seen.push(a), 4),
      adopt: (a) => (seen.push(a), 0),
    };
    expect((await cli(['reconcile', '--stack-dir', 'out', '--host', 'h1=qemu:///system'], keep)).code).toBe(0);
    expect((await cli(['controller', '--config', 'c.json'], keep)).code).toBe(3);
    expect((await cli(['reconcile', '--stack-dir', 'out', '--host', 'h1=x', '--override-decision', 'h1', '--override-decision', 'h2'], keep)).code).toBe(0);
    expect((await cli(['record', '--stack-dir', 'out', '--out', 'r.json'], keep)).code).toBe(4);
    expect((await cli(['adopt', '--host', 'kvm1=qemu:///system', '--state-dir', 'a', '--state-dir', 'b', '--exclude', 'x', '--only', '^web'], keep)).code).toBe(0);
    expect(seen).toEqual([
      { stackDir: 'out', hosts: { h1: 'qemu:///system' }, migrateUris: {}, migrationBandwidthMiBs: undefined, coldWhenLiveRefused: false, dryRun: false },
      { config: 'c.json', once: false, clockOffsetSeconds: 0, dryRun: false },
      { stackDir: 'out', hosts: { h1: 'x' }, migrateUris: {}, migrationBandwidthMiBs: undefined, coldWhenLiveRefused: false, dryRun: false, overrideDecisions: ['h1', 'h2'] },
      { stackDir: 'out', out: 'r.json' },
      { hosts: { kvm1: 'qemu:///system' }, outDir: '.', stateDirs: ['a', 'b'], skipUnmodelled: false, refresh: false, only: /^web/, exclude: ['x'], library: 'cdktf-libvirt-cluster' },
    ]);
  });

  test('adopt: without a host, or with a host name that cannot be a construct id, is bad usage', async () => {
    expect(await cli(['adopt'], recorded)).toMatchObject({ code: 2, err: 'error: give at least one --host NAME=URI\n' });
    const bad = await cli(['adopt', '--host', 'KVM_1=qemu:///system'], recorded);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("--host KVM_1=...: a host name starts with a letter");
    expect((await cli(['adopt', '--host', 'h1=qemu:///system', '--only', '('], recorded)).code).toBe(2);
  });
});
