/**
 * Observing hosts for reconcile: what each reachable host has and can take, through virsh (over
 * qemu+ssh it is the remote host's view). Facts only; the decisions are in `reconcile-plan.ts`.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { LOCAL_POOL_NAME } from '../constructs/host';
import { NicSource, RunningDomain, toMebibytes } from './live';
import { DesiredLayout, HostInventory } from './reconcile-plan';

/** virsh on one host: runs a command, returns its output, throws on failure. */
export interface Virsh {
  (...args: string[]): string;
  /** The connection URI. */
  readonly uri: string;
}

/** Quick virsh commands (everything but a migration, which `VmMover` runs and bounds itself). */
const VIRSH_TIMEOUT_MS = 5 * 60_000;

export function virshOn(uri: string): Virsh {
  const virsh = (...args: string[]) => execFileSync('virsh', ['-q', '-c', uri, ...args], { encoding: 'utf8', timeout: VIRSH_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'pipe'] });
  return Object.assign(virsh, { uri });
}

/** Whether the host answers (`virsh version`), and if not virsh's message. */
export function probe(virsh: Virsh): { reachable: true } | { reachable: false; reason: string } {
  try {
    virsh('version');
    return { reachable: true };
  } catch (err) {
    return { reachable: false, reason: messageOf(err) };
  }
}

/** Whether the host has a network device: through libvirt (`iface-dumpxml`), so over qemu+ssh it is the remote host's. */
export function hasDevice(virsh: Virsh, device: string): boolean {
  try {
    virsh('iface-dumpxml', device);
    return true;
  } catch {
    return false;
  }
}

/** Memory the host can give a VM, in MiB: free + buffers + cached of `virsh nodememstats` (KiB). */
export function freeMemoryMiB(nodememstats: string): number | undefined {
  const value = (key: string) => Number(new RegExp(`^\\s*${key}\\s*:\\s*(\\d+)\\s*KiB`, 'm').exec(nodememstats)?.[1] ?? NaN);
  const free = value('free');
  if (Number.isNaN(free)) return undefined;
  const extra = ['buffers', 'cached'].map(value).filter((v) => !Number.isNaN(v));
  return toMebibytes(free + extra.reduce((a, b) => a + b, 0), 'KiB');
}

/** virsh's error message on one line, without its `error: ` prefixes. */
export function messageOf(err: unknown): string {
  const e = err as { stderr?: string; message?: string };
  return (e.stderr?.trim() || e.message || String(err)).replace(/^error: /gm, '').replace(/\s*\n\s*/g, ' ').trim();
}

/**
 * What one reachable host has. `devices` are the bridges and devices the configuration needs
 * there that it has. A local pool that is defined but stopped (a host that was down) is started
 * unless `dryRun`: its volumes are needed.
 */
export function observeHost(host: string, virsh: Virsh, dryRun: boolean, desired: DesiredLayout, devices: ReadonlySet<string>, stackDir: string): HostInventory {
  const pools = lines(virsh('pool-list', '--all', '--name'));
  const activePools = new Set(lines(virsh('pool-list', '--name')));
  let localVolumes: { name: string; path: string }[] = [];
  if (pools.includes(LOCAL_POOL_NAME)) {
    const running = activePools.has(LOCAL_POOL_NAME);
    if (!running && !dryRun) {
      virsh('pool-start', LOCAL_POOL_NAME);
      activePools.add(LOCAL_POOL_NAME);
    }
    if (running || !dryRun) localVolumes = volumesOf(virsh('vol-list', LOCAL_POOL_NAME)).map(([name, path]) => ({ name, path }));
  }
  const active = new Set(lines(virsh('list', '--name')));
  const domains = lines(virsh('list', '--all', '--name')).map((name) => ({ name, uuid: virsh('domuuid', name).trim(), running: active.has(name) }));
  const running = new Map<string, RunningDomain>();
  for (const d of domains) {
    if (d.running && desired.vms?.has(d.name)) running.set(d.name, runningDomain(d.name, virsh('dumpxml', d.name), virsh('dumpxml', '--inactive', d.name)));
  }
  let free: number | undefined;
  try {
    free = freeMemoryMiB(virsh('nodememstats'));
  } catch {
    free = undefined; // a driver without node statistics: not checked
  }
  return {
    host,
    domains,
    localVolumes,
    pools: pools.map((name) => ({ name, uuid: virsh('pool-uuid', name).trim(), running: activePools.has(name) })),
    networks: lines(virsh('net-list', '--all', '--name')).map((name) => ({ name, uuid: virsh('net-uuid', name).trim() })),
    running,
    destination: {
      host,
      reachable: true,
      activeNetworks: new Set(lines(virsh('net-list', '--name'))),
      devices,
      localPoolRunning: activePools.has(LOCAL_POOL_NAME),
      runningPools: activePools,
      freeMemoryMiB: free,
    },
    seedIsoExists: (isoFile) => fs.existsSync(path.join(stackDir, isoFile)),
  };
}

/** A running domain from its live XML (ceilings, vCPUs online, disks, NICs) and its persistent XML (the memory target). */
export function runningDomain(name: string, liveXml: string, persistentXml: string): RunningDomain {
  const vcpu = /<vcpu\b([^>]*)>(\d+)<\/vcpu>/.exec(liveXml);
  const vcpus = Number(vcpu?.[2] ?? 0);
  const currentVcpus = Number(/current='(\d+)'/.exec(vcpu?.[1] ?? '')?.[1] ?? vcpus);
  const size = (xml: string, element: string): number | undefined => {
    const match = new RegExp(`<${element}\\b([^>]*)>(\\d+)</${element}>`).exec(xml);
    return match ? toMebibytes(Number(match[2]), /unit='(\w+)'/.exec(match[1])?.[1] ?? 'KiB') : undefined;
  };
  const memoryMiB = size(liveXml, 'memory') ?? 0;
  const current = size(persistentXml, 'currentMemory') ?? size(liveXml, 'currentMemory');
  const disks = [...liveXml.matchAll(/<disk\b([^>]*)>([\s\S]*?)<\/disk>/g)].map(([, , body]) => ({
    pool: /<source\b[^>]*\bpool='([^']+)'/.exec(body)?.[1],
    volume: /<source\b[^>]*\bvolume='([^']+)'/.exec(body)?.[1],
    readOnly: /<readonly\/>/.test(body),
    target: /<target\b[^>]*\bdev='([^']+)'/.exec(body)?.[1] ?? '?',
  }));
  const nics = [...liveXml.matchAll(/<interface\b[^>]*\btype='(\w+)'[^>]*>([\s\S]*?)<\/interface>/g)].map(([, type, body]): NicSource => {
    if (type === 'network') return { kind: 'network', source: /<source\b[^>]*\bnetwork='([^']+)'/.exec(body)?.[1] ?? '' };
    if (type === 'direct') return { kind: 'direct', source: /<source\b[^>]*\bdev='([^']+)'/.exec(body)?.[1] ?? '' };
    return { kind: 'bridge', source: /<source\b[^>]*\bbridge='([^']+)'/.exec(body)?.[1] ?? '' };
  });
  return { name, vcpus, currentVcpus, memoryMiB, currentMemoryMiB: current ?? memoryMiB, disks, nics };
}

/** `virsh vol-list` rows as [name, path]. */
export function volumesOf(listing: string): [string, string][] {
  return lines(listing)
    .filter((l) => !/^Name\s+Path$/.test(l) && !/^-+$/.test(l))
    .map((l) => l.split(/\s+/) as [string, string]);
}

/** The non-empty lines of a command's output, trimmed. */
export const lines = (text: string) => text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
