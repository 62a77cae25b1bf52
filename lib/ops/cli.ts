#!/usr/bin/env node
/**
 * cdktf-libvirt-cluster reconcile --stack-dir cdktf.out/stacks/<stack> --host h1=URI [--host h2=URI ...]
 *   [--migrate-uri h2=tcp://ADDRESS ...] [--migrate-bandwidth MIB_PER_S] [--migrate-timeout SECONDS]
 *   [--cold-when-refused] [--dry-run]
 *
 * Run before every `cdktf deploy`: it live-migrates VMs off reachable hosts they leave (cold, ACPI
 * shutdown first, when they cannot move live), hot-adds vCPUs and memory, tidies hosts that come
 * back, and fails, doing nothing, when a move's destination cannot take its VM or a host lacks a
 * bridge or device the NICs need. It exits 1 when a move was refused or failed, or a segment is
 * missing: do not deploy then. See lib/ops/reconcile.ts and docs/failover.md.
 *
 * cdktf-libvirt-cluster plan-comment --stack-dir cdktf.out/stacks/<stack> --plan FILE
 *
 * Prints a saved plan's changes and the stack's placement report as one Markdown comment for a
 * pull request (docs/ci.md).
 *
 * cdktf-libvirt-cluster controller --config FILE [--id ID] [--once] [--clock-offset-seconds N]
 *
 * Runs until SIGTERM/SIGINT: watches the hosts, fences and fails over, switches schedule windows and
 * puts hosts to standby, each only where enabled by name (lib/ops/controller.ts).
 */
import * as fs from 'fs';
import { Duration } from '../core/duration';
import { Controller } from './controller';
import { resolveConfig } from './controller-config';
import { terraformEngine } from './engine';
import { planComment } from './plan-comment';
import { reconcile, ReconcileError } from './reconcile';

const USAGE = [
  'usage: cdktf-libvirt-cluster reconcile --stack-dir DIR --host NAME=URI [--host NAME=URI ...]',
  '         [--migrate-uri NAME=URI ...] [--migrate-bandwidth MIB_PER_S] [--migrate-timeout SECONDS] [--cold-when-refused] [--dry-run]',
  '       cdktf-libvirt-cluster plan-comment --stack-dir DIR --plan FILE',
  '       cdktf-libvirt-cluster controller --config FILE [--id ID] [--once] [--clock-offset-seconds N]',
].join('\n');

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'plan-comment') return planCommentCommand(rest);
  if (command === 'controller') return controllerCommand(rest);
  if (command !== 'reconcile') {
    console.error(USAGE);
    return 2;
  }
  const args = parseReconcileArguments(rest);
  const engine = terraformEngine(args.stackDir);
  console.log(`engine: ${engine.binary} (${engine.reason})`);
  // SIGTERM/SIGINT: the step under way finishes and is recorded, then reconcile stops.
  const stop = new AbortController();
  const onSignal = (signal: string) => {
    console.log(`${signal}: stopping after the current step`);
    stop.abort();
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, onSignal);
  try {
    const actions = await reconcile({ ...args, terraformBinary: engine.binary, signal: stop.signal, log: (line) => console.log(line) });
    if (actions.length === 0) console.log('nothing to reconcile');
    return 0;
  } catch (err) {
    if (!(err instanceof ReconcileError)) throw err;
    console.error(`reconcile failed: ${err.message}`);
    return 1;
  } finally {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.off(signal, onSignal);
  }
}

/** The options of `reconcile` from its command line; throws on a bad one. */
export function parseReconcileArguments(args: readonly string[]): {
  stackDir: string;
  hosts: Record<string, string>;
  migrateUris: Record<string, string>;
  migrationBandwidthMiBs?: number;
  migrationTimeout?: Duration;
  coldWhenLiveRefused: boolean;
  dryRun: boolean;
} {
  let stackDir = '';
  let dryRun = false;
  let migrationBandwidthMiBs: number | undefined;
  let migrationTimeout: Duration | undefined;
  let coldWhenLiveRefused = false;
  const hosts: Record<string, string> = {};
  const migrateUris: Record<string, string> = {};
  const pair = (flag: string, value: string | undefined, into: Record<string, string>) => {
    const at = (value ?? '').indexOf('=');
    if (value === undefined || at < 1 || at === value.length - 1) throw new Error(`${flag} takes NAME=URI, not '${value ?? ''}'`);
    into[value.slice(0, at)] = value.slice(at + 1);
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--stack-dir') stackDir = args[++i] ?? '';
    else if (arg === '--dry-run') dryRun = true;
    else if (arg === '--host') pair(arg, args[++i], hosts);
    else if (arg === '--migrate-uri') pair(arg, args[++i], migrateUris);
    else if (arg === '--migrate-bandwidth') {
      const value = args[++i] ?? '';
      if (!/^[1-9]\d*$/.test(value)) throw new Error(`--migrate-bandwidth takes MiB/s as a whole number above 0, not '${value}'`);
      migrationBandwidthMiBs = Number(value);
    } else if (arg === '--migrate-timeout') {
      const value = args[++i] ?? '';
      if (!/^[1-9]\d*$/.test(value)) throw new Error(`--migrate-timeout takes seconds as a whole number above 0, not '${value}'`);
      migrationTimeout = Duration.seconds(Number(value));
    } else if (arg === '--cold-when-refused') coldWhenLiveRefused = true;
    else throw new Error(`unknown argument '${arg}'`);
  }
  if (!stackDir || Object.keys(hosts).length === 0) throw new Error('give --stack-dir and at least one --host');
  for (const host of Object.keys(migrateUris)) {
    if (!(host in hosts)) throw new Error(`--migrate-uri names ${host}, which no --host gives`);
  }
  return { stackDir, hosts, migrateUris, migrationBandwidthMiBs, migrationTimeout, coldWhenLiveRefused, dryRun };
}

function planCommentCommand(args: string[]): number {
  let stackDir = '';
  let plan = '';
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--stack-dir') stackDir = args[++i] ?? '';
    else if (args[i] === '--plan') plan = args[++i] ?? '';
    else throw new Error(`unknown argument '${args[i]}'`);
  }
  if (!stackDir || !plan) throw new Error('give --stack-dir and --plan');
  process.stdout.write(planComment(stackDir, plan));
  return 0;
}

/** The options of `controller` from its command line; throws on a bad one. */
export function parseControllerArguments(args: readonly string[]): { config: string; id?: string; once: boolean; clockOffsetSeconds: number } {
  let config = '';
  let id: string | undefined;
  let once = false;
  let clockOffsetSeconds = 0;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--config') config = args[++i] ?? '';
    else if (arg === '--id') id = args[++i] ?? '';
    else if (arg === '--once') once = true;
    else if (arg === '--clock-offset-seconds') {
      const value = args[++i] ?? '';
      if (!/^-?\d+(\.\d+)?$/.test(value)) throw new Error(`--clock-offset-seconds takes a number of seconds, not '${value}'`);
      clockOffsetSeconds = Number(value);
    } else throw new Error(`unknown argument '${arg}'`);
  }
  if (!config) throw new Error('give --config FILE');
  return { config, id, once, clockOffsetSeconds };
}

async function controllerCommand(args: string[]): Promise<number> {
  const parsed = parseControllerArguments(args);
  const config = resolveConfig(JSON.parse(fs.readFileSync(parsed.config, 'utf8')), { cwd: process.cwd(), id: parsed.id });
  const controller = new Controller({ config, clockOffsetMs: parsed.clockOffsetSeconds * 1000, once: parsed.once });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => controller.stop());
  return controller.run();
}

if (require.main === module) {
  Promise.resolve()
    .then(() => main(process.argv.slice(2)))
    .then((code) => {
      process.exitCode = code;
    })
    .catch((err) => {
      console.error(String((err as Error).message ?? err));
      process.exitCode = 2;
    });
}
