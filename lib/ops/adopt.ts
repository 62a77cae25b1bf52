/**
 * `cdktf-libvirt-cluster adopt`, the edge that talks to libvirt and the engine: reads each host
 * over its URI (virsh dumpxml, domblklist, vol-dumpxml, pool-dumpxml, net-list), asks provider
 * 0.9.7 how it reads each domain (an import into a scratch state, planned and never applied), and
 * writes what `adopt-model.ts` decides. Nothing here changes a host or a guest.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  AdoptionManifest,
  AdoptionPlan,
  domainFileName,
  hasNewVms,
  manifestOf,
  ObservedHost,
  observeDomain,
  observePool,
  observeVolume,
  parseXml,
  planAdoption,
  renderReport,
  renderTypeScript,
} from './adopt-model';

export interface AdoptOptions {
  /** The hosts by name (their construct ids), with their libvirt URIs. */
  readonly hosts: Readonly<Record<string, string>>;
  /** The folder the TypeScript, the domain files and the manifest are written to. */
  readonly outDir: string;
  /** The engine to ask the provider with: `tofu` or `terraform` (or a path). */
  readonly engine: string;
  /** Folders of Terraform states (initialized stack folders) whose domains are left alone unless already adopted. */
  readonly stateDirs: readonly string[];
  readonly skipUnmodelled: boolean;
  /**
   * Rewrite the domain files of the VMs already adopted with what the provider reads now (after
   * a guest started again outside Terraform: its pty, tap device or VNC port changed); the
   * TypeScript is left as it is.
   */
  readonly refresh?: boolean;
  /** Only domains whose name matches. */
  readonly only?: RegExp;
  /** Domains never adopted, by name. */
  readonly exclude: readonly string[];
  /** The package the written code imports from. */
  readonly library?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly log: (line: string) => void;
}

export interface AdoptResult {
  readonly plan: AdoptionPlan;
  readonly report: string;
  /** Files written, relative to outDir; none when nothing was new. */
  readonly written: readonly string[];
}

const MANIFEST = 'adopt-manifest.json';

function virsh(uri: string, ...args: string[]): string {
  try {
    return execFileSync('virsh', ['-q', '-c', uri, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    throw new Error(`virsh -c ${uri} ${args.join(' ')}: ${(err as { stderr?: string }).stderr?.trim() ?? err}`);
  }
}

function names(listing: string): string[] {
  return listing
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
}

/** Runs the engine in `dir`; throws with its output when it fails. */
function engineRun(engine: string, dir: string, args: string[], env: NodeJS.ProcessEnv): string {
  const r = spawnSync(engine, [...args, '-no-color'], { cwd: dir, env: { ...env, TF_IN_AUTOMATION: '1', CHECKPOINT_DISABLE: '1' }, encoding: 'utf8', maxBuffer: 256 * 2 ** 20, timeout: 5 * 60_000 });
  if (r.error) throw new Error(`${engine} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${engine} ${args.join(' ')} failed (exit ${r.status}):\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

/**
 * How provider 0.9.7 reads each domain: an `import` block per domain in a scratch folder, planned
 * (read-only: a plan changes nothing) and shown as JSON; the imported object is each change's
 * `before`. The scratch folder, whose plan holds what the provider read (secrets too), is removed.
 */
function providerViews(uri: string, domains: readonly { name: string; uuid: string; type: string }[], engine: string, env: NodeJS.ProcessEnv): Map<string, Record<string, unknown>> {
  const views = new Map<string, Record<string, unknown>>();
  if (domains.length === 0) return views;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'adopt-view-'));
  try {
    const config = {
      terraform: { required_providers: { libvirt: { source: 'dmacvicar/libvirt', version: '0.9.7' } } },
      provider: { libvirt: [{ uri }] },
      resource: { libvirt_domain: Object.fromEntries(domains.map((d, i) => [`d${i}`, { name: d.name, type: d.type }])) },
      import: domains.map((d, i) => ({ to: `libvirt_domain.d${i}`, id: d.uuid })),
    };
    fs.writeFileSync(path.join(dir, 'main.tf.json'), JSON.stringify(config, null, 2));
    engineRun(engine, dir, ['init', '-input=false'], env);
    engineRun(engine, dir, ['plan', '-input=false', '-refresh=true', '-out=view.plan'], env);
    const shown = JSON.parse(engineRun(engine, dir, ['show', '-json', 'view.plan'], env)) as { resource_changes?: { address: string; change: { before?: Record<string, unknown> } }[] };
    for (const change of shown.resource_changes ?? []) {
      const i = Number(/^libvirt_domain\.d(\d+)$/.exec(change.address)?.[1] ?? NaN);
      if (Number.isInteger(i) && change.change.before) views.set(domains[i].uuid, change.change.before);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return views;
}

/** The UUIDs of the domains in the state of an initialized stack folder. */
function domainsInState(dir: string, engine: string, env: NodeJS.ProcessEnv): string[] {
  const shown = JSON.parse(engineRun(engine, dir, ['show', '-json'], env)) as { values?: { root_module?: Module } };
  interface Module {
    resources?: { type: string; values?: { uuid?: string } }[];
    child_modules?: Module[];
  }
  const found: string[] = [];
  const walk = (m: Module | undefined) => {
    for (const r of m?.resources ?? []) if (r.type === 'libvirt_domain' && r.values?.uuid) found.push(r.values.uuid);
    for (const c of m?.child_modules ?? []) walk(c);
  };
  walk(shown.values?.root_module);
  return found;
}

/** Everything adoption needs from one host, read over its URI. */
function readHost(name: string, uri: string, options: AdoptOptions, env: NodeJS.ProcessEnv, skip: (name: string) => boolean): ObservedHost {
  const domainNames = names(virsh(uri, 'list', '--all', '--name')).filter((n) => !skip(n));
  // Without --security-info: the XML read here never holds a secret (the provider's view may: see preservedDomain).
  const xmls = domainNames.map((name) => virsh(uri, 'dumpxml', name));
  const heads = xmls.map((xml) => {
    const d = parseXml(xml);
    return { name: d.children.find((c) => c.name === 'name')?.text ?? '', uuid: d.children.find((c) => c.name === 'uuid')?.text ?? '', type: d.attrs.type ?? 'kvm' };
  });
  options.log(`${uri}: ${heads.length} domain${heads.length === 1 ? '' : 's'} (${heads.map((h) => h.name).join(', ') || 'none'}); asking provider 0.9.7 how it reads them (${path.basename(options.engine)} plan, nothing applied)`);
  const views = providerViews(uri, heads, options.engine, env);
  const pools = names(virsh(uri, 'pool-list', '--all', '--name')).map((p) => observePool(virsh(uri, 'pool-dumpxml', p)));
  const volumes: ObservedHost['volumes'][number][] = [];
  domainNames.forEach((name, i) => {
    // domblklist --details: type, device, target, source (a path, or a volume's name for type volume, whose pool the XML names).
    const pools = new Map(observeDomain(xmls[i]).disks.flatMap((d) => (d.source.kind === 'volume' ? [[d.target, d.source.pool] as const] : [])));
    for (const line of names(virsh(uri, 'domblklist', '--details', name))) {
      const [type, , target, source] = line.split(/\s+/);
      if (source === undefined || source === '-' || (type !== 'file' && type !== 'block' && type !== 'volume')) continue;
      try {
        const pool = pools.get(target) ?? virsh(uri, 'vol-pool', source).trim();
        const at = type === 'volume' ? ['--pool', pool, source] : [source];
        volumes.push({ ...observeVolume(virsh(uri, 'vol-dumpxml', ...at)), pool });
      } catch {
        // a file in no pool: its size stays unknown, it is referenced by path all the same
      }
    }
  });
  const networks = names(virsh(uri, 'net-list', '--all', '--name'));
  let bridges: string[] = [];
  try {
    bridges = names(virsh(uri, 'iface-list', '--all')).map((l) => l.split(/\s+/)[0]);
  } catch {
    // no interface backend on this host: the bridges the domains use are listed instead
  }
  return {
    name,
    uri,
    domains: xmls.map((xml, i) => ({ xml, providerView: views.get(heads[i].uuid) ?? {} })),
    volumes,
    pools,
    networks,
    bridges,
  };
}

/** Reads the hosts, plans the adoption and writes the code; nothing is written when nothing is new. */
export function adopt(options: AdoptOptions): AdoptResult {
  const env = options.env ?? process.env;
  const manifestFile = path.join(options.outDir, MANIFEST);
  const before: AdoptionManifest | undefined = fs.existsSync(manifestFile) ? (JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as AdoptionManifest) : undefined;
  const inCode = new Map((before?.adopted ?? []).map((a) => [a.uuid, a.constructId]));
  const managedElsewhere = new Map<string, string>();
  for (const dir of options.stateDirs) {
    for (const uuid of domainsInState(dir, options.engine, env)) if (!inCode.has(uuid)) managedElsewhere.set(uuid, `the state of ${dir}`);
  }
  const excluded = new Set(options.exclude);
  const hosts = Object.entries(options.hosts).map(([name, uri]) => readHost(name, uri, options, env, (name) => excluded.has(name) || (options.only !== undefined && !options.only.test(name))));
  const plan = planAdoption(hosts, { inCode, managedElsewhere, skipUnmodelled: options.skipUnmodelled, ...(options.only ? { only: options.only } : {}) });
  const report = renderReport(plan);
  // The file is written whole: a VM adopted before and not found now would leave the code, and the plan would destroy it.
  const found = new Set(plan.hosts.flatMap((h) => h.vms.map((vm) => vm.domain.uuid)));
  const lost = (before?.adopted ?? []).filter((a) => !found.has(a.uuid));
  if (lost.length > 0) {
    throw new Error(
      `${lost.map((a) => `${a.name} (${a.uuid}) on ${a.uri}`).join(', ')}: adopted before and not found now; give every host URI of the earlier runs (and no --only/--exclude that leaves them out), or remove them from ${MANIFEST} and adopted.ts by hand first`,
    );
  }
  const written: string[] = [];
  const write = (relative: string, text: string) => {
    const file = path.join(options.outDir, relative);
    const before = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : undefined;
    if (before === text) return;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
    written.push(relative);
  };
  const writeDomains = (which: (known: boolean) => boolean) => {
    for (const host of plan.hosts) for (const vm of host.vms) if (which(vm.known)) write(domainFileName(host, vm), `${JSON.stringify(vm.preserved, null, 2)}\n`);
  };
  if (!hasNewVms(plan)) {
    if (options.refresh) writeDomains((known) => known);
    return { plan, report, written };
  }
  // New VMs: their files, and the known ones' only with --refresh (the code's domain files are the user's once committed).
  writeDomains((known) => !known || options.refresh === true);
  write('adopted.ts', renderTypeScript(plan, options.library, path.relative(process.cwd(), options.outDir) || '.'));
  write(MANIFEST, `${JSON.stringify(manifestOf(plan), null, 2)}\n`);
  return { plan, report, written };
}
