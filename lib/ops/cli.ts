#!/usr/bin/env node
/**
 * cdktf-libvirt-cluster reconcile --stack-dir cdktf.out/stacks/<stack> --host h1=URI [--host h2=URI ...] [--dry-run]
 *
 * Run before `cdktf deploy` when a VM moves off a reachable host, or when a failed or standby host
 * comes back. See lib/reconcile.ts and docs/failover.md.
 *
 * cdktf-libvirt-cluster plan-comment --stack-dir cdktf.out/stacks/<stack> --plan FILE
 *
 * Prints a saved plan's changes and the stack's placement report as one Markdown comment for a
 * pull request (docs/ci.md).
 */
import { terraformEngine } from './engine';
import { planComment } from './plan-comment';
import { reconcile } from './reconcile';

const USAGE = [
  'usage: cdktf-libvirt-cluster reconcile --stack-dir DIR --host NAME=URI [--host NAME=URI ...] [--dry-run]',
  '       cdktf-libvirt-cluster plan-comment --stack-dir DIR --plan FILE',
].join('\n');

function main(argv: string[]): number {
  const [command, ...rest] = argv;
  if (command === 'plan-comment') return planCommentCommand(rest);
  if (command !== 'reconcile') {
    console.error(USAGE);
    return 2;
  }
  let stackDir = '';
  let dryRun = false;
  const hosts: Record<string, string> = {};
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    if (arg === '--stack-dir') stackDir = rest[++i] ?? '';
    else if (arg === '--dry-run') dryRun = true;
    else if (arg === '--host') {
      const pair = rest[++i] ?? '';
      const at = pair.indexOf('=');
      if (at < 1) throw new Error(`--host takes NAME=URI, not '${pair}'`);
      hosts[pair.slice(0, at)] = pair.slice(at + 1);
    } else throw new Error(`unknown argument '${arg}'`);
  }
  if (!stackDir || Object.keys(hosts).length === 0) throw new Error('give --stack-dir and at least one --host');
  const engine = terraformEngine(stackDir);
  console.log(`engine: ${engine.binary} (${engine.reason})`);
  const actions = reconcile({ stackDir, hosts, dryRun, terraformBinary: engine.binary });
  for (const a of actions) console.log(`${dryRun ? 'would ' : ''}${a.action} ${a.host}:${a.target} (${a.reason})`);
  if (actions.length === 0) console.log('nothing to reconcile');
  return 0;
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

if (require.main === module) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    console.error(String((err as Error).message ?? err));
    process.exitCode = 2;
  }
}
