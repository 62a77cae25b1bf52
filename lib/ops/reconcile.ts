import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { LOCAL_POOL_NAME } from '../constructs/host';
import { terraformEngine } from './engine';

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
   * @default - $TERRAFORM_BINARY_NAME, else the engine that initialized `stackDir`, else the one installed (see `terraformEngine`)
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
  readonly action:
    | 'refresh-pool'
    | 'stop-and-undefine-domain'
    | 'undefine-domain'
    | 'start-domain'
    | 'delete-volume'
    | 'undefine-pool'
    | 'undefine-network'
    | 'host-unreachable';
  readonly target: string;
  readonly reason: string;
}

/** What the synthesized configuration wants. */
export interface DesiredLayout {
  /** domain name -> host alias the configuration places it on */
  readonly domains: ReadonlyMap<string, string>;
  /** host alias -> pool and network names the configuration creates there */
  readonly pools: ReadonlyMap<string, ReadonlySet<string>>;
  readonly networks: ReadonlyMap<string, ReadonlySet<string>>;
  /** Pools volumes are created in that the configuration does not create: shared storage. */
  readonly sitePools: ReadonlySet<string>;
}

/** What the Terraform state knows (ids lower-cased). */
export interface KnownState {
  readonly domainNames: ReadonlySet<string>;
  readonly domainIds: ReadonlySet<string>;
  readonly poolIds: ReadonlySet<string>;
  readonly networkIds: ReadonlySet<string>;
  /** Paths of volumes and cloud-init disks. */
  readonly volumePaths: ReadonlySet<string>;
}

/** What one host has, as virsh reports it. */
export interface HostInventory {
  readonly host: string;
  readonly domains: readonly { readonly name: string; readonly uuid: string; readonly running: boolean }[];
  /** Volumes of the host's local pool, when it is there and running. */
  readonly localVolumes: readonly { readonly name: string; readonly path: string }[];
  readonly pools: readonly { readonly name: string; readonly uuid: string; readonly running?: boolean }[];
  readonly networks: readonly { readonly name: string; readonly uuid: string }[];
}

/**
 * Decides what to tidy on one host: plain data in, actions out, in the order they must run
 * (domains before their disks, disks before their pool).
 */
export function planReconcile(inventory: HostInventory, desired: DesiredLayout, state: KnownState): ReconcileAction[] {
  const host = inventory.host;
  const managed = new Set([...desired.domains.keys(), ...state.domainNames]);
  const actions: ReconcileAction[] = [];
  // libvirt lists a pool's volumes from its own cache: files another host created on shared
  // storage (a VM that moves here, a base image) are not found by provider 0.9.x until refreshed.
  for (const pool of inventory.pools) {
    if (desired.sitePools.has(pool.name) && pool.running !== false) {
      actions.push({ host, action: 'refresh-pool', target: pool.name, reason: 'shared storage: volumes other hosts created become visible here' });
    }
  }
  for (const domain of inventory.domains) {
    if (!managed.has(domain.name)) continue;
    const placedOn = desired.domains.get(domain.name);
    // A domain where it belongs is kept, unless Terraform does not know it: then it is left
    // from an apply that died between defining and recording it, and blocks the next define.
    const orphan = placedOn === host && !state.domainIds.has(domain.uuid.toLowerCase());
    if (placedOn === host && !orphan) {
      // Provider 0.9.x starts a domain only when it creates it: one stopped outside Terraform
      // stays stopped through every apply. Where the configuration says it runs, start it.
      if (!domain.running) {
        actions.push({ host, action: 'start-domain', target: domain.name, reason: `${domain.name} is deployed here but shut off (stopped outside Terraform); the configuration runs it` });
      }
      continue;
    }
    const reason = orphan
      ? `${domain.name} is not in the Terraform state (left by an interrupted apply); the next apply defines it again with the same disks`
      : placedOn
        ? `the configuration places ${domain.name} on ${placedOn}`
        : `${domain.name} is not deployed in the configuration`;
    actions.push({ host, action: domain.running ? 'stop-and-undefine-domain' : 'undefine-domain', target: domain.name, reason });
  }
  // Local disks (cloud-init disks, and boot disks without shared storage) of managed VMs that no
  // longer run here, or that Terraform does not know (left by an interrupted apply, they block the
  // next create of the same name).
  for (const volume of inventory.localVolumes) {
    const owner = /^(.*)-(boot\.qcow2|cloudinit-[0-9a-f]{16}\.iso)$/.exec(volume.name)?.[1];
    if (owner === undefined || !managed.has(owner)) continue;
    const here = desired.domains.get(owner) === host;
    if (here && state.volumePaths.has(volume.path)) continue;
    const reason = here ? 'not in the Terraform state (left by an interrupted apply)' : `local disk of ${owner}, which no longer runs here`;
    actions.push({ host, action: 'delete-volume', target: `${LOCAL_POOL_NAME}/${volume.name}`, reason });
  }
  for (const pool of inventory.pools) {
    if (!desired.pools.get(host)?.has(pool.name) || state.poolIds.has(pool.uuid.toLowerCase())) continue;
    actions.push({ host, action: 'undefine-pool', target: pool.name, reason: 'left from before the host was failed or in standby; Terraform recreates it (files are kept)' });
  }
  for (const network of inventory.networks) {
    if (!desired.networks.get(host)?.has(network.name) || state.networkIds.has(network.uuid.toLowerCase())) continue;
    actions.push({ host, action: 'undefine-network', target: network.name, reason: 'left from before the host was failed or in standby; Terraform recreates it' });
  }
  return actions;
}

export function reconcile(options: ReconcileOptions): ReconcileAction[] {
  const desired = readConfiguration(options.stackDir);
  const state = readState(options);
  const actions: ReconcileAction[] = [];
  for (const [host, uri] of Object.entries(options.hosts).sort(([a], [b]) => a.localeCompare(b))) {
    const virsh = (...args: string[]) => execFileSync('virsh', ['-q', '-c', uri, ...args], { encoding: 'utf8', timeout: 30_000 });
    try {
      virsh('version');
    } catch {
      actions.push({ host, action: 'host-unreachable', target: uri, reason: 'virsh cannot connect; nothing done there' });
      continue;
    }
    const planned = planReconcile(inventoryOf(host, virsh, options.dryRun ?? false), desired, state);
    for (const action of planned) {
      actions.push(action);
      if (!options.dryRun) carryOut(action, virsh);
    }
  }
  return actions;
}

function inventoryOf(host: string, virsh: (...args: string[]) => string, dryRun: boolean): HostInventory {
  const pools = lines(virsh('pool-list', '--all', '--name'));
  const activePools = new Set(lines(virsh('pool-list', '--name')));
  let localVolumes: { name: string; path: string }[] = [];
  if (pools.includes(LOCAL_POOL_NAME)) {
    // A host that was down may not have started its pool yet; its volumes are needed.
    const running = activePools.has(LOCAL_POOL_NAME);
    if (!running && !dryRun) {
      virsh('pool-start', LOCAL_POOL_NAME);
      activePools.add(LOCAL_POOL_NAME);
    }
    if (running || !dryRun) localVolumes = volumesOf(virsh('vol-list', LOCAL_POOL_NAME)).map(([name, path]) => ({ name, path }));
  }
  const active = new Set(lines(virsh('list', '--name')));
  return {
    host,
    domains: lines(virsh('list', '--all', '--name')).map((name) => ({ name, uuid: virsh('domuuid', name).trim(), running: active.has(name) })),
    localVolumes,
    pools: pools.map((name) => ({ name, uuid: virsh('pool-uuid', name).trim(), running: activePools.has(name) })),
    networks: lines(virsh('net-list', '--all', '--name')).map((name) => ({ name, uuid: virsh('net-uuid', name).trim() })),
  };
}

function carryOut(action: ReconcileAction, virsh: (...args: string[]) => string): void {
  switch (action.action) {
    case 'stop-and-undefine-domain':
      virsh('destroy', action.target);
      virsh('undefine', action.target);
      break;
    case 'undefine-domain':
      virsh('undefine', action.target);
      break;
    case 'start-domain':
      virsh('start', action.target);
      break;
    case 'refresh-pool':
      virsh('pool-refresh', action.target);
      break;
    case 'delete-volume': {
      const [pool, volume] = action.target.split('/');
      virsh('vol-delete', '--pool', pool, volume);
      break;
    }
    case 'undefine-pool':
      if (/State:\s+running/.test(virsh('pool-info', action.target))) virsh('pool-destroy', action.target);
      virsh('pool-undefine', action.target);
      break;
    case 'undefine-network':
      if (lines(virsh('net-list', '--name')).includes(action.target)) virsh('net-destroy', action.target);
      virsh('net-undefine', action.target);
      break;
    case 'host-unreachable':
      break;
  }
}

function readConfiguration(stackDir: string): DesiredLayout {
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
  const created = new Set(Object.values<any>(json.resource?.libvirt_pool ?? {}).map((p) => p.name));
  const used = Object.values<any>(json.resource?.libvirt_volume ?? {}).map((v) => v.pool);
  const sitePools = new Set(used.filter((p) => typeof p === 'string' && !p.includes('${') && !created.has(p)));
  return { domains, pools: byHost('libvirt_pool'), networks: byHost('libvirt_network'), sitePools };
}

function readState(options: ReconcileOptions): KnownState {
  const binary = options.terraformBinary ?? terraformEngine(options.stackDir, undefined, options.env ?? process.env).binary;
  const shown = JSON.parse(
    execFileSync(binary, ['show', '-json', '-no-color'], { cwd: options.stackDir, env: options.env ?? process.env, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 }),
  );
  const resources: { type: string; values: { name?: string; id?: string; uuid?: string; path?: string } }[] = shown.values?.root_module?.resources ?? [];
  const of = (type: string) => resources.filter((r) => r.type === type);
  return {
    domainNames: new Set(of('libvirt_domain').map((r) => r.values.name ?? '')),
    // Provider 0.9: a domain's `id` is its runtime number, its identity is `uuid`; a pool's and a
    // network's `id` is their UUID; a volume's `path` is its file.
    domainIds: new Set(of('libvirt_domain').map((r) => uuidOf(r.values.uuid ?? ''))),
    poolIds: new Set(of('libvirt_pool').map((r) => uuidOf(r.values.id ?? ''))),
    networkIds: new Set(of('libvirt_network').map((r) => uuidOf(r.values.id ?? ''))),
    volumePaths: new Set(of('libvirt_volume').map((r) => r.values.path ?? r.values.id ?? '')),
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
