#!/usr/bin/env node
/**
 * cdktf-libvirt-cluster reconcile --stack-dir cdktf.out/stacks/<stack> --host h1=URI [--host h2=URI ...] [--dry-run]
 *
 * Run before `cdktf deploy` when a VM moves off a reachable host, or when a failed or standby host
 * comes back. See lib/reconcile.ts and docs/failover.md.
 */
import { terraformEngine } from './engine';
import { reconcile } from './reconcile';

function main(argv: string[]): number {
  const [command, ...rest] = argv;
  if (command !== 'reconcile') {
    console.error('usage: cdktf-libvirt-cluster reconcile --stack-dir DIR --host NAME=URI [--host NAME=URI ...] [--dry-run]');
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

if (require.main === module) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    console.error(String((err as Error).message ?? err));
    process.exitCode = 2;
  }
}
