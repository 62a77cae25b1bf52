import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { LOCAL_POOL_NAME } from './host';

/**
 * Tidies reachable hosts before an apply, for the two cases Terraform cannot see:
 *
 * - a VM moves off a host that is still reachable (maintenance, rebalance): its address stays the
 *   same and its provider changes, so Terraform reads it on the new host, finds nothing and
 *   creates it there, while the old copy would keep running (disk leases stop the new copy from
 *   starting). Reconcile stops and undefines the old copy first: a cold move.
 * - a host comes back after `failed` or `standby`: Terraform forgot what it had created there
 *   (`removed` blocks), and the host still has it. Reconcile undefines the stale domain copies,
 *   deletes their boot and cloud-init volumes, and undefines the forgotten pool and network, so the
 *   next apply recreates them (base image files are kept and adopted).
 *
 * - an apply died between defining a domain and recording it: the domain is where it belongs but
 *   not in the state, and blocks the next define of the same name. Reconcile undefines it.
 *
 * It never touches a domain, pool or network this stack does not manage, nor a domain the
 * configuration places on the host it is on and Terraform knows.
 */
export interface ReconcileOptions {
  /** The synthesized stack folder (cdktf.out/stacks/<stack>), already `init`ed. */
  readonly stackDir: string;
  /** The real connection URI of each host, by host name (the synthesized JSON points failed hosts elsewhere). */
  readonly hosts: Readonly<Record<string, string>>;
  /**
   * The Terraform engine.
   * @default - $TERRAFORM_BINARY_NAME, else tofu
   */
  readonly terraformBinary?: string;
  /**
   * Environment for the engine (e.g. TF_CLI_CONFIG_FILE).
   * @default process.env
   */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * Only report what would be done.
   * @default false
   */
  readonly dryRun?: boolean;
}

export interface ReconcileAction {
  readonly host: string;
  readonly action: 'stop-and-undefine-domain' | 'undefine-domain' | 'delete-volume' | 'undefine-pool' | 'undefine-network' | 'host-unreachable';
  readonly target: string;
  readonly reason: string;
}

interface Desired {
  /** domain name -> host alias the configuration places it on */
  readonly domains: Map<string, string>;
  /** host alias -> pool and network names the configuration creates there */
  readonly pools: Map<string, Set<string>>;
  readonly networks: Map<string, Set<string>>;
}

export function reconcile(options: ReconcileOptions): ReconcileAction[] {
  const desired = readConfiguration(options.stackDir);
  const state = readState(options);
  const managedDomains = new Set([...desired.domains.keys(), ...state.domainNames]);
  const actions: ReconcileAction[] = [];
  for (const [host, uri] of Object.entries(options.hosts).sort(([a], [b]) => a.localeCompare(b))) {
    const virsh = (...args: string[]) => execFileSync('virsh', ['-q', '-c', uri, ...args], { encoding: 'utf8', timeout: 30_000 });
    try {
      virsh('version');
    } catch {
      actions.push({ host, action: 'host-unreachable', target: uri, reason: 'virsh cannot connect; nothing done there' });
      continue;
    }
    const act = (action: ReconcileAction, run: () => void) => {
      actions.push(action);
      if (!options.dryRun) run();
    };
    const localPool = LOCAL_POOL_NAME;
    const pools = lines(virsh('pool-list', '--all', '--name'));
    // A host that was down may not have started its pool yet; its volumes are needed below.
    if (pools.includes(localPool) && !lines(virsh('pool-list', '--name')).includes(localPool) && !options.dryRun) {
      virsh('pool-start', localPool);
    }
    for (const domain of lines(virsh('list', '--all', '--name'))) {
      if (!managedDomains.has(domain)) continue;
      const placedOn = desired.domains.get(domain);
      // A domain where it belongs is kept, unless Terraform does not know it: then it is left
      // from an apply that died between defining and recording it, and blocks the next define.
      const orphan = placedOn === host && !state.domainIds.has(uuidOf(virsh('domuuid', domain)));
      if (placedOn === host && !orphan) continue;
      const running = virsh('domstate', domain).trim() === 'running';
      const reason = orphan
        ? `${domain} is not in the Terraform state (left by an interrupted apply); the next apply defines it again with the same disks`
        : placedOn
          ? `the configuration places ${domain} on ${placedOn}`
          : `${domain} is not deployed in the configuration`;
      act({ host, action: running ? 'stop-and-undefine-domain' : 'undefine-domain', target: domain, reason }, () => {
        if (running) virsh('destroy', domain);
        virsh('undefine', domain);
      });
    }
    // Local disks (cloud-init disks, and boot disks without shared storage) of managed VMs that
    // no longer run here, or that Terraform does not know (left by an interrupted apply, they
    // block the next create of the same name).
    if (pools.includes(localPool)) {
      for (const [volume, volumePath] of volumesOf(virsh('vol-list', localPool))) {
        const owner = /^(.*)-(boot\.qcow2|cloudinit\.iso)$/.exec(volume)?.[1];
        if (owner === undefined || !managedDomains.has(owner)) continue;
        const here = desired.domains.get(owner) === host;
        const known = state.volumePaths.has(volumePath);
        if (here && known) continue;
        const reason = here ? `not in the Terraform state (left by an interrupted apply)` : `local disk of ${owner}, which no longer runs here`;
        act({ host, action: 'delete-volume', target: `${localPool}/${volume}`, reason }, () => virsh('vol-delete', '--pool', localPool, volume));
      }
    }
    for (const pool of pools) {
      if (!desired.pools.get(host)?.has(pool) || state.poolIds.has(uuidOf(virsh('pool-uuid', pool)))) continue;
      act({ host, action: 'undefine-pool', target: pool, reason: 'left from before the host was failed or in standby; Terraform recreates it (files are kept)' }, () => {
        if (virsh('pool-info', pool).match(/State:\s+running/)) virsh('pool-destroy', pool);
        virsh('pool-undefine', pool);
      });
    }
    for (const network of lines(virsh('net-list', '--all', '--name'))) {
      if (!desired.networks.get(host)?.has(network) || state.networkIds.has(uuidOf(virsh('net-uuid', network)))) continue;
      act({ host, action: 'undefine-network', target: network, reason: 'left from before the host was failed or in standby; Terraform recreates it' }, () => {
        if (lines(virsh('net-list', '--name')).includes(network)) virsh('net-destroy', network);
        virsh('net-undefine', network);
      });
    }
  }
  return actions;
}

function readConfiguration(stackDir: string): Desired {
  const json = JSON.parse(fs.readFileSync(path.join(stackDir, 'cdk.tf.json'), 'utf8'));
  const alias = (r: { provider?: string }) => (r.provider ?? '').replace(/^libvirt\./, '');
  const domains = new Map<string, string>();
  for (const d of Object.values<any>(json.resource?.libvirt_domain ?? {})) domains.set(d.name, alias(d));
  const byHost = (type: string) => {
    const map = new Map<string, Set<string>>();
    for (const r of Object.values<any>(json.resource?.[type] ?? {})) {
      if (!map.has(alias(r))) map.set(alias(r), new Set());
      map.get(alias(r))!.add(r.name);
    }
    return map;
  };
  return { domains, pools: byHost('libvirt_pool'), networks: byHost('libvirt_network') };
}

function readState(options: ReconcileOptions): {
  domainNames: Set<string>;
  domainIds: Set<string>;
  poolIds: Set<string>;
  networkIds: Set<string>;
  volumePaths: Set<string>;
} {
  const binary = options.terraformBinary ?? process.env.TERRAFORM_BINARY_NAME ?? 'tofu';
  const shown = JSON.parse(
    execFileSync(binary, ['show', '-json', '-no-color'], { cwd: options.stackDir, env: options.env ?? process.env, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 }),
  );
  const resources: { type: string; values: { name?: string; id?: string } }[] = shown.values?.root_module?.resources ?? [];
  const of = (type: string) => resources.filter((r) => r.type === type);
  return {
    domainNames: new Set(of('libvirt_domain').map((r) => r.values.name ?? '')),
    domainIds: new Set(of('libvirt_domain').map((r) => uuidOf(r.values.id ?? ''))),
    poolIds: new Set(of('libvirt_pool').map((r) => uuidOf(r.values.id ?? ''))),
    networkIds: new Set(of('libvirt_network').map((r) => uuidOf(r.values.id ?? ''))),
    // A volume's id is its path; a cloud-init disk's is "<path>;<uuid>".
    volumePaths: new Set([...of('libvirt_volume'), ...of('libvirt_cloudinit_disk')].map((r) => (r.values.id ?? '').split(';')[0])),
  };
}

/** `virsh vol-list` rows as [name, path]. */
function volumesOf(listing: string): [string, string][] {
  return lines(listing)
    .filter((l) => !/^Name\s+Path$/.test(l) && !/^-+$/.test(l))
    .map((l) => l.split(/\s+/) as [string, string]);
}

const lines = (text: string) => text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
const uuidOf = (text: string) => text.trim().toLowerCase();
