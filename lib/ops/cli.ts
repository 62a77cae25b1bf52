#!/usr/bin/env node
/**
 * The package's command, `cdktf-libvirt-cluster`: `adopt` (existing domains into code and import
 * blocks; lib/ops/adopt.ts), `reconcile` (before every deploy: live
 * migrations, hot-add, tidying hosts; lib/ops/reconcile.ts), `plan-comment` (a saved plan and the
 * placement report as one pull-request comment; lib/ops/plan-comment.ts) and `controller` (the
 * long-running unattended actions; lib/ops/controller.ts) and `record` (the stack's decision record,
 * lib/ops/decision-record.ts). `--help` on each says what every option
 * does and its default. Parsing is commander's; this file only declares the options, checks what
 * commander cannot (pairs, the stack folder, the file given as a configuration) and maps outcomes
 * to exit codes: 0 done, 1 the command failed, 2 bad usage.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { CONTROLLER_FILE } from '../core/controller-file';
import { contradictions, DecisionRecord, withoutHostDecision } from '../core/decision-record';
import { Duration } from '../core/duration';
import { HostState } from '../core/model';
import { adopt } from './adopt';
import { acquireMutex, Controller } from './controller';
import { resolveConfig } from './controller-config';
import { parseStackFacts } from './controller-core';
import { DecisionStore, decisionStoreFor } from './decision-record';
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
  /** Hosts whose controller decision the person overrides (removed from the record); absent: none. */
  overrideDecisions?: string[];
}

/** The options of `record`. */
export interface RecordArguments {
  stackDir: string;
  out?: string;
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

/** The options of `adopt`. */
export interface AdoptArguments {
  hosts: Record<string, string>;
  outDir: string;
  stateDirs: string[];
  engine?: string;
  skipUnmodelled: boolean;
  refresh: boolean;
  only?: RegExp;
  exclude: string[];
  library: string;
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
  record(args: RecordArguments, output: CliOutput): number | Promise<number>;
  adopt(args: AdoptArguments, output: CliOutput): number | Promise<number>;
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
    .option(
      '--override-decision <host>',
      "go against the controllers' decision about HOST (fenced, in standby, woken) that the code contradicts, and remove it from the stack's decision record; repeatable (default: none, a contradiction stops reconcile)",
      (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
    )
    .addHelpText(
      'after',
      [
        '',
        'Example:',
        '  cdktf-libvirt-cluster reconcile --stack-dir cdktf.out/stacks/mail --host kvm1=qemu+ssh://admin@kvm1/system --host kvm2=qemu+ssh://admin@kvm2/system',
        '',
        'Exit 1 when a move was refused or failed, a host lacks a bridge or device the NICs need, or the code contradicts a decision of the',
        "controllers (their decision record): do not deploy then. It holds the controllers' mutex of the stack while it runs.",
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

  program
    .command('record')
    .summary("the stack's decision record: what the controllers decided, incidents in progress")
    .description(
      [
        "Prints the decision record the controllers keep in the stack's state backend (PostgreSQL beside the state, or a file",
        'beside a local state): host states they decided, hosts they powered off, incidents in progress and their steps.',
        'With --out it also writes the record as JSON, for synth: the context libvirt-cluster:decision-record=<file> makes',
        "the synth apply the controllers' host states (docs/controller.md).",
      ].join(' '),
    )
    .option('--stack-dir <dir>', "the stack's folder in the synth output (only its backend block is read); required")
    .option('--out <file>', 'also write the record as JSON to FILE (default: print only)')
    .action((options: Record<string, unknown>) => done(actions.record(recordArguments(options), output)));

  program
    .command('adopt')
    .summary('write code and import blocks for domains that exist already, recreating nothing')
    .description(
      [
        'Reads each host over its libvirt URI (virsh dumpxml, domblklist, vol-dumpxml, pool-dumpxml, net-list)',
        'and asks provider 0.9.7 how it reads each domain (an import planned in a scratch folder, never',
        'applied), then writes adopted.ts (a Host per host with localPool: false, an AdoptedVirtualMachine per',
        'domain with its UUID, sizes, ceilings, disks as the existing volumes and NICs with their MACs),',
        'adopted/<host>/<vm>.domain.json (what the constructs do not model, kept verbatim, secrets taken out)',
        'and adopt-manifest.json. Each AdoptedVirtualMachine synthesizes an import block for its domain, so the',
        'first plan shows imports only. It prints what it imports, what it left alone and why, devices it does',
        'not model, and any change the first apply would make (with how to keep the original). Nothing it',
        'does changes a host or a guest. Run again: domains already in adopt-manifest.json are nothing new;',
        'domains in a state given by --state-dir are left alone. Volumes, pools and networks are referenced,',
        'not managed (provider 0.9.7 cannot import a volume). Docs: docs/adopt.md.',
      ].join(' '),
    )
    .option('--host <name=uri>', 'a host to adopt from: its name in the code (construct id, provider alias) and its libvirt URI; repeat for each host; at least one', pairs('--host'))
    .option(
      '--out <dir>',
      "the folder adopted.ts, adopted/ and adopt-manifest.json are written to, next to the stack's code; run adopt in the project folder (where cdktf.json is): adopted.ts reads its domain files relative to it (default: the current folder)",
    )
    .option(
      '--state-dir <dir>',
      'an initialized Terraform folder (a stack folder in the synth output, or any other) whose state is read: the domains it manages are left alone, never imported twice; repeatable (default: none)',
      (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
    )
    .option('--engine <command>', 'the engine that reads states and asks the provider: tofu or terraform (default: $TERRAFORM_BINARY_NAME, else the one installed, as reconcile chooses)')
    .option('--skip-unmodelled', 'leave domains with devices the constructs do not model (passthrough, NUMA, custom XML) out of the code, reported (default: off, such devices are kept verbatim)')
    .option(
      '--refresh',
      "rewrite the domain files of VMs adopted before with what the provider reads now: after a guest started again outside Terraform its pty, tap device or autoport VNC port changed (plans ignore those, AdoptedVirtualMachine's ignoreRuntimeValues), and after a change outside Terraform the file records it; adopted.ts is left as it is (default: off, adopted VMs' files are kept)",
    )
    .option('--only <regex>', 'adopt only domains whose name matches (default: every domain)', (value: string) => {
      try {
        return new RegExp(value);
      } catch (err) {
        throw new InvalidArgumentError(`--only takes a regular expression: ${(err as Error).message}`);
      }
    })
    .option('--exclude <name>', 'a domain never adopted, by name; repeatable (default: none)', (value: string, previous: string[] | undefined) => [...(previous ?? []), value])
    .option('--library <package>', 'the package adopted.ts imports the constructs from (default: cdktf-libvirt-cluster)')
    .addHelpText(
      'after',
      [
        '',
        'Example:',
        '  cdktf-libvirt-cluster adopt --host kvm1=qemu+ssh://admin@kvm1/system --host kvm2=qemu+ssh://admin@kvm2/system --state-dir cdktf.out/stacks/mail',
        '  then in main.ts: adoptedEstate(stack) from ./adopted; cdktf synth; plan: N to import, 0 to add, 0 to change, 0 to destroy',
        '',
        'Exit 1 when a host cannot be read, or a VM adopted before is not found (the code would lose it).',
      ].join('\n'),
    )
    .action((options: Record<string, unknown>) => done(actions.adopt(adoptArguments(options), output)));

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
    ...(o.overrideDecision !== undefined ? { overrideDecisions: o.overrideDecision as string[] } : {}),
  };
}

function recordArguments(o: Record<string, unknown>): RecordArguments {
  const stackDir = (o.stackDir as string | undefined) ?? '';
  if (!stackDir) throw new UsageError("give --stack-dir DIR: the stack's folder in the synth output");
  return { stackDir, ...(o.out !== undefined ? { out: o.out as string } : {}) };
}

function adoptArguments(o: Record<string, unknown>): AdoptArguments {
  const hosts = (o.host as Record<string, string>) ?? {};
  if (Object.keys(hosts).length === 0) throw new UsageError('give at least one --host NAME=URI');
  for (const name of Object.keys(hosts)) {
    if (!/^[a-z][a-z0-9-]{0,30}$/.test(name)) throw new UsageError(`--host ${name}=...: a host name starts with a letter and holds only a-z, 0-9 and '-' (at most 31); it becomes the construct id`);
  }
  return {
    hosts,
    outDir: (o.out as string | undefined) ?? '.',
    stateDirs: (o.stateDir as string[] | undefined) ?? [],
    ...(o.engine !== undefined ? { engine: o.engine as string } : {}),
    skipUnmodelled: o.skipUnmodelled === true,
    refresh: o.refresh === true,
    ...(o.only !== undefined ? { only: o.only as RegExp } : {}),
    exclude: (o.exclude as string[] | undefined) ?? [],
    library: (o.library as string | undefined) ?? 'cdktf-libvirt-cluster',
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
function parseOnly<T>(command: 'reconcile' | 'plan-comment' | 'controller' | 'record' | 'adopt', args: readonly string[]): T {
  let parsed: T | undefined;
  const keep = (a: unknown) => {
    parsed = a as T;
    return 0;
  };
  const silent: CliOutput = { out: () => undefined, err: () => undefined };
  try {
    buildProgram({ reconcile: keep, planComment: keep, controller: keep, record: keep, adopt: keep }, silent).parse([command, ...args], { from: 'user' });
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

/** The options of `adopt` from its command line; throws on a bad one. */
export function parseAdoptArguments(args: readonly string[]): AdoptArguments {
  return parseOnly('adopt', args);
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

/** The stack's decision record store; a backend that keeps none is bad usage. */
function storeOf(stackDir: string): DecisionStore {
  try {
    return decisionStoreFor(stackDir);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/**
 * Why reconcile must stop: the synthesized code contradicts a live decision of the controllers
 * (and no --override-decision names the host). Overridden decisions are removed from the record.
 */
function checkDecisions(args: ReconcileArguments, store: DecisionStore, output: CliOutput): string | undefined {
  const record = store.load();
  const overrides = args.overrideDecisions ?? [];
  const undecided = overrides.filter((host) => record?.decisions.hostStates[host] === undefined);
  if (undecided.length > 0) return `--override-decision ${undecided.join(', ')}: the decision record (${store.where}) has no decision about ${undecided.join(' or ')}; nothing done`;
  if (record === undefined) return undefined;
  let inCode: Record<string, `${HostState}`> = {};
  const file = path.join(args.stackDir, CONTROLLER_FILE);
  if (fs.existsSync(file)) {
    const facts = parseStackFacts(fs.readFileSync(file, 'utf8'), path.basename(args.stackDir));
    inCode = Object.fromEntries(facts.clusters.flatMap((c) => c.hosts.map((h) => [h.name, h.state])));
  }
  const found = contradictions(record, inCode).filter((c) => !overrides.includes(c.host));
  if (found.length > 0) {
    return `the code contradicts ${found.length === 1 ? 'a live decision' : `${found.length} live decisions`} of the controllers (${store.where}); nothing done, do not apply:\n${found.map((c) => c.message).join('\n')}`;
  }
  let current: DecisionRecord = record;
  for (const host of overrides) {
    if (args.dryRun) {
      output.out(`would remove the controllers' decision about ${host} (${current.decisions.hostStates[host]}) from the record\n`);
      continue;
    }
    const next = withoutHostDecision(current, host, `reconcile (${process.env.USER ?? 'a person'})`, Date.now());
    if (!store.write(next, current.revision)) return `the decision record changed while reconcile removed the decision about ${host}: run reconcile again`;
    output.out(`removed the controllers' decision about ${host} (${current.decisions.hostStates[host]}) from the record: the controllers now go by the code\n`);
    current = next;
  }
  return undefined;
}

/** The record in words: host states decided, hosts powered off, incidents in progress. */
function describeRecord(record: DecisionRecord | undefined, where: string): string {
  if (record === undefined) return `decision record (${where}): none written yet\n`;
  const lines = [`decision record (${where}): revision ${record.revision}, written ${record.updatedAt} by ${record.updatedBy}`];
  const states = Object.entries(record.decisions.hostStates).sort(([a], [b]) => a.localeCompare(b));
  if (states.length === 0) lines.push('  host states: as in code');
  for (const [host, state] of states) {
    const note = record.notes[host];
    lines.push(`  host ${host}: ${state}${record.decisions.poweredOff.includes(host) ? ', powered off' : ''}${note ? ` (${note.by} at ${note.at}: ${note.why})` : ''}`);
  }
  for (const i of record.incidents) {
    lines.push(`  incident in progress: ${i.purpose} of ${i.host}, opened by ${i.openedBy} at ${i.openedAt}, carried out by ${i.owner}`);
    for (const step of i.steps) lines.push(`    ${step.at} ${step.by}: ${step.name} ${step.state}${step.detail ? ` (${step.detail})` : ''}`);
  }
  if (record.incidents.length === 0) lines.push('  no incident in progress');
  const last = record.closed[record.closed.length - 1];
  if (last) lines.push(`  last incident closed: ${last.purpose} of ${last.host} at ${last.closedAt} (${last.steps.map((x) => `${x.name} ${x.state}`).join(', ')})`);
  return `${lines.join('\n')}\n`;
}

/** What the commands do for a user. */
const ACTIONS: CliActions = {
  async reconcile(args, output) {
    const engine = terraformEngine(args.stackDir);
    const problem = stackDirProblem(args.stackDir, engine.binary);
    if (problem) throw new UsageError(problem);
    output.out(`engine: ${engine.binary} (${engine.reason})\n`);
    const store = storeOf(args.stackDir);
    // The controllers' mutex: no controller reconciles or applies this stack meanwhile.
    const mutex = await acquireMutex(args.stackDir, engine.binary, process.env);
    if (typeof mutex === 'string') {
      output.err(`reconcile failed: ${mutex === 'locked' ? "the controllers' mutex of this stack is held: a controller (or another reconcile) is deploying it; run reconcile again once it is done" : mutex}\n`);
      return 1;
    }
    // SIGTERM/SIGINT: the step under way finishes and is recorded, then reconcile stops.
    const stop = new AbortController();
    const onSignal = (signal: string) => {
      output.out(`${signal}: stopping after the current step\n`);
      stop.abort();
    };
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, onSignal);
    try {
      const refusal = checkDecisions(args, store, output);
      if (refusal !== undefined) {
        output.err(`reconcile failed: ${refusal}\n`);
        return 1;
      }
      const actions = await reconcile({ ...args, terraformBinary: engine.binary, signal: stop.signal, log: (line) => output.out(`${line}\n`) });
      if (actions.length === 0) output.out('nothing to reconcile\n');
      return 0;
    } catch (err) {
      if (!(err instanceof ReconcileError)) throw err;
      output.err(`reconcile failed: ${err.message}\n`);
      return 1;
    } finally {
      for (const signal of ['SIGTERM', 'SIGINT'] as const) process.off(signal, onSignal);
      await mutex.release();
    }
  },
  planComment(args, output) {
    const problem = stackDirProblem(args.stackDir, terraformEngine(args.stackDir).binary);
    if (problem) throw new UsageError(problem);
    output.out(planComment(args.stackDir, args.plan));
    return 0;
  },
  record(args, output) {
    const store = storeOf(args.stackDir);
    const record = store.load();
    output.out(describeRecord(record, store.where));
    if (args.out !== undefined) {
      fs.writeFileSync(args.out, `${JSON.stringify(record ?? null, null, 2)}\n`);
      output.out(`written to ${args.out}\n`);
    }
    return 0;
  },
  adopt(args, output) {
    const engine = terraformEngine(args.stateDirs[0] ?? '.', args.engine);
    output.out(`engine: ${engine.binary} (${engine.reason})\n`);
    for (const dir of args.stateDirs) {
      const problem = stackDirProblem(dir, engine.binary);
      if (problem && !/no cdk\.tf\.json/.test(problem)) throw new UsageError(`--state-dir ${problem}`);
    }
    const result = adopt({ ...args, engine: engine.binary, log: (line) => output.out(`${line}\n`) });
    output.out(result.report);
    output.out(result.written.length > 0 ? `wrote ${result.written.join(', ')} in ${args.outDir}\n` : args.refresh ? 'nothing changed: no file written\n' : 'nothing new: no file written\n');
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
