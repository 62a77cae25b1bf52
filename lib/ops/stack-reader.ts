/**
 * Reads what reconcile starts from in a synthesized stack folder: the configuration
 * (`cdk.tf.json`) and, through the Terraform engine, the state. Plain data out.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Duration } from '../core/duration';
import { terraformEngine } from './engine';
import { DesiredDomain, domainSize, NicSource } from './live';
import { DesiredLayout, KnownState } from './reconcile-plan';

/** What the configuration of a stack folder wants. */
export function readConfiguration(stackDir: string): DesiredLayout {
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
  return { domains, pools: byHost('libvirt_pool'), networks: byHost('libvirt_network'), sitePools, vms: desiredDomains(json) };
}

/** Each domain of a synthesized stack (`cdk.tf.json`) in detail, references to other resources resolved. */
export function desiredDomains(json: any): Map<string, DesiredDomain> {
  const resources = json.resource ?? {};
  // "${libvirt_volume.<name>.<attribute>}" → that attribute as the configuration sets it
  const resolve = (value: unknown): unknown => {
    const ref = typeof value === 'string' ? /^\$\{(\w+)\.([^.}]+)\.(\w+)\}$/.exec(value) : null;
    return ref ? resources[ref[1]]?.[ref[2]]?.[ref[3]] : value;
  };
  const refersTo = (value: unknown) => (typeof value === 'string' ? /^\$\{(\w+)\.([^.}]+)\.\w+\}$/.exec(value) : null);
  const vms = new Map<string, DesiredDomain>();
  for (const [key, d] of Object.entries<any>(resources.libvirt_domain ?? {})) {
    const stateValues: Record<string, number | string> = {};
    for (const k of ['vcpu_current', 'current_memory', 'current_memory_unit']) if (d[k] !== undefined) stateValues[k] = d[k];
    const nics = (d.devices?.interfaces ?? []).map((nic: any): NicSource => {
      const source = nic.source ?? {};
      if (source.network) return { kind: 'network', source: String(resolve(source.network.network)) };
      if (source.direct) return { kind: 'direct', source: String(resolve(source.direct.dev)) };
      return { kind: 'bridge', source: String(resolve(source.bridge?.bridge)) };
    });
    let seed: DesiredDomain['seed'];
    for (const disk of d.devices?.disks ?? []) {
      const ref = refersTo(disk.source?.volume?.volume);
      const volume = ref && ref[1] === 'libvirt_volume' ? resources.libvirt_volume?.[ref[2]] : undefined;
      const url = volume?.create?.content?.url;
      if (disk.device === 'cdrom' && typeof url === 'string' && !/^[a-z]+:\/\//.test(url)) {
        seed = { volume: volume.name, address: `libvirt_volume.${ref![2]}`, isoFile: url };
      }
    }
    const timeout = Number(d.update?.shutdown?.timeout);
    vms.set(d.name, {
      name: d.name,
      host: String(d.provider ?? '').replace(/^libvirt\./, ''),
      address: `libvirt_domain.${key}`,
      ...domainSize(d),
      stateValues,
      nics,
      seed,
      ...(Number.isSafeInteger(timeout) && timeout >= 0 ? { shutdownTimeout: Duration.seconds(timeout) } : {}),
    });
  }
  return vms;
}

/** The engine reconcile reads and writes the state with. */
export function engineOf(stackDir: string, named: string | undefined, env: NodeJS.ProcessEnv): string {
  return named ?? terraformEngine(stackDir, undefined, env).binary;
}

/** What the Terraform state of the stack folder knows (`show -json`). */
export function readState(stackDir: string, binary: string, env: NodeJS.ProcessEnv): KnownState {
  const shown = JSON.parse(execFileSync(binary, ['show', '-json', '-no-color'], { cwd: stackDir, env, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 }));
  const resources: { address: string; type: string; values: { name?: string; id?: string; uuid?: string; path?: string } }[] = shown.values?.root_module?.resources ?? [];
  const of = (type: string) => resources.filter((r) => r.type === type);
  return {
    domainNames: new Set(of('libvirt_domain').map((r) => r.values.name ?? '')),
    // Provider 0.9: a domain's `id` is its runtime number, its identity is `uuid`; a pool's and a
    // network's `id` is their UUID; a volume's `path` is its file.
    domainIds: new Set(of('libvirt_domain').map((r) => uuidOf(r.values.uuid ?? ''))),
    poolIds: new Set(of('libvirt_pool').map((r) => uuidOf(r.values.id ?? ''))),
    networkIds: new Set(of('libvirt_network').map((r) => uuidOf(r.values.id ?? ''))),
    volumePaths: new Set(of('libvirt_volume').map((r) => r.values.path ?? r.values.id ?? '')),
    attributes: new Map(resources.map((r) => [r.address, r.values as Record<string, unknown>])),
  };
}

const uuidOf = (text: string) => text.trim().toLowerCase();
