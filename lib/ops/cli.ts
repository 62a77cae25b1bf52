#!/usr/bin/env node
/**
 * The package's command, `cdktf-libvirt-cluster`: `reconcile` (before every deploy: live
 * migrations, hot-add, tidying hosts; lib/ops/reconcile.ts), `plan-comment` (a saved plan and the
 * placement report as one pull-request comment; lib/ops/plan-comment.ts) and `controller` (the
 * long-running unattended actions; lib/ops/controller.ts). `--help` on each says what every option
 * does and its default. Parsing is commander's; this file only declares the options, checks what
 * commander cannot (pairs, the stack folder, the file given as a configuration) and maps outcomes
 * to exit codes: 0 done, 1 the command failed, 2 bad usage.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { Duration } from '../core/duration';
import { Controller } from './controller';
import { resolveConfig } from './controller-config';
import { terraformEngine } from './engine';
import { planComment } from './plan-comment';
import { reconcile, ReconcileError } from './reconcile';

/** Where the command writes; the process's streams unless a test gives others. */
export interface CliOutput {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

const PROCESS_OUTPUT: CliOutput = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

/** A mistake on the command line or in what it names: printed with a hint, exit 2. */
class UsageError extends Error {}

/** The options of `reconcile`. */
export interface ReconcileArguments {
  stackDir: string;
  hosts: Record<string, string>;
  migrateUris: Record<string, string>;
  migrationBandwidthMiBs?: number;
  migrationTimeout?: Duration;
  coldWhenLiveRefused: boolean;
  dryRun: boolean;
}

/** The options of `controller`. */
export interface ControllerArguments {
  config: string;
  id?: string;
  once: boolean;
  clockOffsetSeconds: number;
  dryRun: boolean;
}

/** The options of `plan-comment`. */
export interface PlanCommentArguments {
  stackDir: string;
  plan: string;
}

/** The package's version, from its package.json (two folders up from lib/ops in source and in dist/lib/ops). */
export function packageVersion(): string {
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (!fs.existsSync(file)) continue;
    const pkg = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (pkg.name === 'cdktf-libvirt-cluster') return String(pkg.version);
  }
  return 'unknown';
}

/** A parser of repeated `NAME=VALUE` options into one record. */
function pairs(flag: string): (value: string, previous: Record<string, string> | undefined) => Record<string, string> {
  return (value, previous) => {
    const at = value.indexOf('=');
    if (at < 1 || at === value.length - 1) throw new InvalidArgumentError(`${flag} takes NAME=URI, not '${value}' (e.g. ${flag} kvm1=qemu+ssh://admin@kvm1.example.net/system)`);
    return { ...previous, [value.slice(0, at)]: value.slice(at + 1) };
  };
}

function wholeSeconds(value: string): number {
  if (!/^[1-9]\d*$/.test(value)) throw new InvalidArgumentError(`--migrate-timeout takes seconds as a whole number above 0, not '${value}'`);
  return Number(value);
}

function wholeMiBs(value: string): number {
  if (!/^[1-9]\d*$/.test(value)) throw new InvalidArgumentError(`--migrate-bandwidth takes MiB/s as a whole number above 0, not '${value}'`);
  return Number(value);
}

function seconds(value: string): number {
  if (!/^-?\d+(\.\d+)?$/.test(value)) throw new InvalidArgumentError(`--clock-offset-seconds takes a number of seconds, not '${value}'`);
  return Number(value);
}

/** What each command does once its options are parsed; tests replace them. */
export interface CliActions {
  reconcile(args: ReconcileArguments, output: CliOutput): number | Promise<number>;
  planComment(args: PlanCommentArguments, output: CliOutput): number | Promise<number>;
  controller(args: ControllerArguments, output: CliOutput): number | Promise<number>;
}

/** The command with its subcommands, options and help; `actions` run the parsed commands. */
export function buildProgram(actions: CliActions, output: CliOutput = PROCESS_OUTPUT, record?: (code: number | Promise<number>) => void): Command {
  // Returns nothing: a promise handed back to commander's sync parse() would be left unhandled.
  const done = (code: number | Promise<number>): void => {
    record?.(code);
  };
  const program = new Command('cdktf-libvirt-cluster')
    .description('Operations on the libvirt hosts of a cdktf-libvirt-cluster stack, around cdktf synth and deploy.')
    .version(packageVersion(), '-V, --version', "print the package's version and exit")
    .helpOption('-h, --help', 'print this help and exit')
    .helpCommand(false)
    .configureOutput({ writeOut: output.out, writeErr: output.err, outputError: (text, write) => write(text) })
    .showHelpAfterError('(run with --help for every option)')
    .exitOverride()
    .addHelpText(
      'after',
      [
        '',
        'Run `cdktf-libvirt-cluster <command> --help` for a command\'s options and defaults.',
        'Exit codes: 0 done, 1 the command failed (see its message), 2 bad usage.',
        'Docs: docs/failover.md, docs/live-operations.md, docs/ci.md and docs/controller.md in the package\'s repository.',
      ].join('\n'),
    );

  program
    .command('reconcile')
    .summary('before a deploy: live-migrate, hot-add, tidy returning hosts')
    .description(
      [
        'Run before every `cdktf deploy`: live-migrates VMs off reachable hosts they leave (cold when',
        'they cannot move live), hot-adds vCPUs and memory raised within their ceilings, removes stale',
        'copies from hosts that come back, refreshes shared pools and starts VMs stopped outside',
        'Terraform. It reads the state with the engine the stack uses ($TERRAFORM_BINARY_NAME, else the',
        "one that initialized the stack folder, else the one installed) and prints which first.",
      ].join(' '),
    )
    .option('--stack-dir <dir>', 'the stack\'s folder in the synth output (cdktf.out/stacks/<stack>), initialized by `tofu init`, `terraform init` or a first `cdktf deploy`; required')
    .option('--host <name=uri>', "a host of the stack and the libvirt URI to reach it at (the real one, even while the stack marks the host failed); repeat for each host; at least one", pairs('--host'))
    .option(
      '--migrate-uri <name=uri>',
      "where live migrations to host NAME send their stream (virsh migrate --migrateuri, e.g. h2=tcp://10.0.0.2) when its hostname does not resolve to the right address; repeatable (default: libvirt's choice, the destination's hostname)",
      pairs('--migrate-uri'),
    )
    .option('--migrate-bandwidth <mib-per-s>', 'limit of each live migration, in MiB/s (default: no limit)', wholeMiBs)
    .option('--migrate-timeout <seconds>', 'how long one live migration may take before it is cancelled; the VM keeps running on its source (default: 600)', wholeSeconds)
    .option(
      '--cold-when-refused',
      'when libvirt refuses a live migration, move the VM cold instead (ACPI shutdown first, bounded by its shutdown timeout) once its destination is checked (default: off, a refusal fails the run)',
    )
    .option('--dry-run', 'print what would be done and change nothing (default: off, reconcile acts)')
    .addHelpText(
      'after',
      [
        '',
        'Example:',
        '  cdktf-libvirt-cluster reconcile --stack-dir cdktf.out/stacks/mail --host kvm1=qemu+ssh://admin@kvm1/system --host kvm2=qemu+ssh://admin@kvm2/system',
        '',
        'Exit 1 when a move was refused or failed, or a host lacks a bridge or device the NICs need: do not deploy then.',
        'SIGTERM or SIGINT: the step under way finishes and is recorded, then reconcile stops (exit 1).',
      ].join('\n'),
    )
    .action((options: Record<string, unknown>) => done(actions.reconcile(reconcileArguments(options), output)));

  program
    .command('plan-comment')
    .summary("a saved plan's changes and the placement report as one pull-request comment")
    .description("Prints a saved plan's changes (each VM update named live or restart) and the stack's placement report as one Markdown comment for a pull request (docs/ci.md).")
    .option('--stack-dir <dir>', "the stack's folder in the synth output, initialized, where the plan was made; required")
    .option('--plan <file>', 'the saved plan (`tofu plan -out FILE` or `terraform plan -out FILE`), relative to the stack folder; required')
    .action((options: Record<string, unknown>) => done(actions.planComment(planCommentArguments(options), output)));

  program
    .command('controller')
    .summary('the long-running watcher: fence and fail over, switch schedule windows, standby power')
    .description(
      [
        'Runs until SIGTERM or SIGINT: watches the hosts, fences and fails over, switches schedule',
        'windows and puts hosts to standby, each only where the stack or the configuration enables it',
        'by name (docs/controller.md). Each action is a synth, `reconcile` and apply under the state lock,',
        'logged as JSON lines.',
      ].join(' '),
    )
    .option('--config <file>', "the controller's configuration (JSON: stacks, hosts with URIs and fence agents; docs/controller.md), not a stack's controller.json; required")
    .option('--id <id>', "this controller's name in logs and decisions (default: the configuration's id, else <hostname>-<pid>)")
    .option('--once', 'run one cycle and exit (default: off, run until stopped)')
    .option('--dry-run', 'observe only: probe, read the membership, synth, and log each step it would take (event `would`); fence, reconcile, apply and record nothing (default: off, it acts)')
    .option('--clock-offset-seconds <n>', "seconds added to the controller's clock, for drills of schedule windows (default: 0)", seconds)
    .action((options: Record<string, unknown>) => done(actions.controller(controllerArguments(options), output)));

  for (const command of program.commands) {
    command
      .helpOption('-h, --help', 'print this help and exit')
      .configureOutput({ writeOut: output.out, writeErr: output.err, outputError: (text, write) => write(text) })
      .showHelpAfterError(`(run \`cdktf-libvirt-cluster ${command.name()} --help\` for every option)`)
      .exitOverride();
  }
  return program;
}

function reconcileArguments(o: Record<string, unknown>): ReconcileArguments {
  const stackDir = (o.stackDir as string | undefined) ?? '';
  const hosts = (o.host as Record<string, string>) ?? {};
  const migrateUris = (o.migrateUri as Record<string, string>) ?? {};
  if (!stackDir || Object.keys(hosts).length === 0) throw new UsageError('give --stack-dir and at least one --host NAME=URI');
  for (const host of Object.keys(migrateUris)) {
    if (!(host in hosts)) throw new UsageError(`--migrate-uri names ${host}, which no --host gives; add --host ${host}=URI or fix the name`);
  }
  return {
    stackDir,
    hosts,
    migrateUris,
    migrationBandwidthMiBs: o.migrateBandwidth as number | undefined,
    ...(o.migrateTimeout !== undefined ? { migrationTimeout: Duration.seconds(o.migrateTimeout as number) } : {}),
    coldWhenLiveRefused: o.coldWhenRefused === true,
    dryRun: o.dryRun === true,
  };
}

function planCommentArguments(o: Record<string, unknown>): PlanCommentArguments {
  const stackDir = (o.stackDir as string | undefined) ?? '';
  const plan = (o.plan as string | undefined) ?? '';
  if (!stackDir || !plan) throw new UsageError('give --stack-dir DIR and --plan FILE');
  return { stackDir, plan };
}

function controllerArguments(o: Record<string, unknown>): ControllerArguments {
  const config = (o.config as string | undefined) ?? '';
  if (!config) throw new UsageError("give --config FILE: the controller's configuration (docs/controller.md)");
  return { config, ...(o.id === undefined ? {} : { id: o.id as string }), once: o.once === true, clockOffsetSeconds: (o.clockOffsetSeconds as number | undefined) ?? 0, dryRun: o.dryRun === true };
}

/** Parses one command's arguments (without the command's name) with its real options; throws the message a user would see. */
function parseOnly<T>(command: 'reconcile' | 'plan-comment' | 'controller', args: readonly string[]): T {
  let parsed: T | undefined;
  const keep = (a: unknown) => {
    parsed = a as T;
    return 0;
  };
  const silent: CliOutput = { out: () => undefined, err: () => undefined };
  try {
    buildProgram({ reconcile: keep, planComment: keep, controller: keep }, silent).parse([command, ...args], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) throw new Error(err.message.replace(/^error: /, ''));
    throw err;
  }
  return parsed as T;
}

/** The options of `reconcile` from its command line; throws on a bad one. */
export function parseReconcileArguments(args: readonly string[]): ReconcileArguments {
  return parseOnly('reconcile', args);
}

/** The options of `controller` from its command line; throws on a bad one. */
export function parseControllerArguments(args: readonly string[]): ControllerArguments {
  return parseOnly('controller', args);
}

/**
 * A stack folder the engine can read: the synth output, initialized. Without this check the
 * engine prints "Backend initialization required" with no hint of what to run.
 */
export function stackDirProblem(stackDir: string, engine: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (!fs.existsSync(path.join(stackDir, 'cdk.tf.json'))) {
    return `${stackDir} has no cdk.tf.json: give the stack's folder in the synth output (cdktf.out/stacks/<stack>), after \`cdktf synth\``;
  }
  const dataDir = path.resolve(stackDir, env.TF_DATA_DIR ?? '.terraform');
  if (!fs.existsSync(dataDir)) {
    return `${stackDir} is not initialized (no ${path.relative(stackDir, dataDir) || dataDir}): run \`${path.basename(engine)} init\` in it first (a first \`cdktf deploy\` does that too)`;
  }
  return undefined;
}

/** Why `file`, given to `controller --config`, is not a controller configuration, when it is a stack's controller.json. */
export function synthOutputProblem(file: string, json: unknown): string | undefined {
  const j = json as { version?: unknown; stack?: unknown; clusters?: unknown } | null;
  if (j === null || typeof j !== 'object' || j.version !== 1 || typeof j.stack !== 'string' || !Array.isArray(j.clusters)) return undefined;
  return (
    `${file} is a synth output (the controller.json that cdktf synth writes for stack ${j.stack}, which the controller reads by itself), ` +
    'not a controller config: write a configuration (stacks, hosts with their URIs and fence agents; docs/controller.md) and give that to --config'
  );
}

/** What the commands do for a user. */
const ACTIONS: CliActions = {
  async reconcile(args, output) {
    const engine = terraformEngine(args.stackDir);
    const problem = stackDirProblem(args.stackDir, engine.binary);
    if (problem) throw new UsageError(problem);
    output.out(`engine: ${engine.binary} (${engine.reason})\n`);
    // SIGTERM/SIGINT: the step under way finishes and is recorded, then reconcile stops.
    const stop = new AbortController();
    const onSignal = (signal: string) => {
      output.out(`${signal}: stopping after the current step\n`);
      stop.abort();
    };
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, onSignal);
    try {
      const actions = await reconcile({ ...args, terraformBinary: engine.binary, signal: stop.signal, log: (line) => output.out(`${line}\n`) });
      if (actions.length === 0) output.out('nothing to reconcile\n');
      return 0;
    } catch (err) {
      if (!(err instanceof ReconcileError)) throw err;
      output.err(`reconcile failed: ${err.message}\n`);
      return 1;
    } finally {
      for (const signal of ['SIGTERM', 'SIGINT'] as const) process.off(signal, onSignal);
    }
  },
  planComment(args, output) {
    const problem = stackDirProblem(args.stackDir, terraformEngine(args.stackDir).binary);
    if (problem) throw new UsageError(problem);
    output.out(planComment(args.stackDir, args.plan));
    return 0;
  },
  async controller(args) {
    let json: unknown;
    try {
      json = JSON.parse(fs.readFileSync(args.config, 'utf8'));
    } catch (err) {
      throw new UsageError(`cannot read the controller's configuration ${args.config}: ${(err as Error).message}`);
    }
    const problem = synthOutputProblem(args.config, json);
    if (problem) throw new UsageError(problem);
    let config: ReturnType<typeof resolveConfig>;
    try {
      config = resolveConfig(json, { cwd: process.cwd(), ...(args.id === undefined ? {} : { id: args.id }) });
    } catch (err) {
      // Every problem of the file, listed: a mistake in what the user gave, as bad usage.
      throw new UsageError(`${args.config}: ${(err as Error).message}`);
    }
    const controller = new Controller({ config, clockOffsetMs: args.clockOffsetSeconds * 1000, once: args.once, dryRun: args.dryRun });
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => controller.stop());
    return controller.run();
  },
};

/** Runs the command line `argv` (without node and the script); resolves with the exit code. */
export async function main(argv: readonly string[], actions: CliActions = ACTIONS, output: CliOutput = PROCESS_OUTPUT): Promise<number> {
  let result: number | Promise<number> | undefined;
  const program = buildProgram(actions, output, (code) => (result = code));
  try {
    if (argv.length === 0) {
      program.outputHelp({ error: true });
      return 2;
    }
    program.parse(argv, { from: 'user' });
    return await (result ?? 0);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are answers (exit 0); everything else commander refuses is bad usage.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return err.exitCode === 0 ? 0 : 2;
      return 2;
    }
    if (err instanceof UsageError) {
      output.err(`error: ${err.message}\n`);
      return 2;
    }
    output.err(`error: ${(err as Error)?.message ?? String(err)}\n`);
    return 1;
  }
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
