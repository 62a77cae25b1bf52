import { runtimeAttributes } from '../core/adopted-domain';

/**
 * The pure part of `cdktf-libvirt-cluster adopt`: what libvirt says about an estate (domain, volume,
 * pool XML, and the provider's own reading of each domain) in, an adoption plan and the
 * TypeScript a user commits out. No I/O here: `adopt.ts` gathers the facts over each host's URI.
 */

/** One XML element, as far as adoption reads XML. */
export interface XmlElement {
  readonly name: string;
  readonly attrs: Readonly<Record<string, string>>;
  readonly children: readonly XmlElement[];
  /** The element's own text, trimmed. */
  readonly text: string;
}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function unescape(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#\d+|\w+);/gi, (whole, e: string) => {
    if (e.startsWith('#x') || e.startsWith('#X')) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith('#')) return String.fromCodePoint(parseInt(e.slice(1), 10));
    return ENTITIES[e] ?? whole;
  });
}

/** Parses the XML libvirt writes (elements, attributes, text; comments and declarations skipped). */
export function parseXml(xml: string): XmlElement {
  const stack: { name: string; attrs: Record<string, string>; children: XmlElement[]; text: string }[] = [];
  let root: XmlElement | undefined;
  const token = /<!--[\s\S]*?-->|<\?[\s\S]*?\?>|<!\[CDATA\[([\s\S]*?)\]\]>|<(\/?)([A-Za-z_][\w:.-]*)((?:\s+[\w:.-]+\s*=\s*(?:'[^']*'|"[^"]*"))*)\s*(\/?)>|([^<]+)/g;
  for (let m = token.exec(xml); m !== null; m = token.exec(xml)) {
    const [, cdata, closing, name, attrText, selfClosing, text] = m;
    const top = stack[stack.length - 1];
    if (text !== undefined || cdata !== undefined) {
      if (top) top.text += cdata ?? unescape(text!);
      continue;
    }
    if (name === undefined) continue;
    if (closing === '/') {
      const done = stack.pop();
      if (!done || done.name !== name) throw new Error(`XML: </${name}> closes ${done ? `<${done.name}>` : 'nothing'}`);
      const element = { ...done, text: done.text.trim() };
      if (stack.length > 0) stack[stack.length - 1].children.push(element);
      else root = element;
      continue;
    }
    const attrs: Record<string, string> = {};
    for (const a of (attrText ?? '').matchAll(/([\w:.-]+)\s*=\s*(?:'([^']*)'|"([^"]*)")/g)) attrs[a[1]] = unescape(a[2] ?? a[3] ?? '');
    const element = { name, attrs, children: [] as XmlElement[], text: '' };
    if (selfClosing === '/') {
      if (top) top.children.push(element);
      else root = element;
    } else {
      stack.push(element);
    }
  }
  if (stack.length > 0 || !root) throw new Error(`XML: not a complete document${stack.length > 0 ? ` (<${stack[stack.length - 1].name}> is not closed)` : ''}`);
  return root;
}

const child = (e: XmlElement | undefined, name: string): XmlElement | undefined => e?.children.find((c) => c.name === name);
const children = (e: XmlElement | undefined, name: string): XmlElement[] => e?.children.filter((c) => c.name === name) ?? [];

/** A size element (`<memory unit='KiB'>`) in MiB. */
function mebibytes(e: XmlElement | undefined): number | undefined {
  if (!e || e.text === '') return undefined;
  const factor: Record<string, number> = { b: 1 / 2 ** 20, bytes: 1 / 2 ** 20, k: 1 / 1024, kib: 1 / 1024, kb: 1000 / 2 ** 20, m: 1, mib: 1, mb: 1e6 / 2 ** 20, g: 1024, gib: 1024, gb: 1e9 / 2 ** 20, t: 2 ** 20, tib: 2 ** 20 };
  return Number(e.text) * (factor[(e.attrs.unit ?? 'KiB').toLowerCase()] ?? NaN);
}

/** Where a disk's data is. */
export type DiskSource =
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'volume'; readonly pool: string; readonly volume: string }
  | { readonly kind: 'block'; readonly path: string }
  | { readonly kind: 'none' }
  | { readonly kind: 'other'; readonly type: string };

/** A disk of a domain, as its XML has it. */
export interface ObservedDisk {
  /** `vda`, `sda`, ... */
  readonly target: string;
  readonly bus: string;
  /** `disk`, `cdrom`, `floppy`, `lun` */
  readonly device: string;
  /** The driver's format: `qcow2`, `raw`, ... */
  readonly format?: string;
  readonly source: DiskSource;
  readonly readOnly: boolean;
  /** The files this disk's image is a copy-on-write overlay of, nearest first (libvirt's `<backingStore>` chain). */
  readonly backingChain: readonly string[];
}

/** A NIC of a domain, as its XML has it. */
export interface ObservedNic {
  /** `bridge`, `network`, `direct`, ... */
  readonly type: string;
  /** The bridge, network or device it is on. */
  readonly source: string;
  readonly mac: string;
  readonly model?: string;
  /** The Open vSwitch VLAN tag, if any. */
  readonly vlan?: number;
  readonly openVSwitch: boolean;
}

/** What adoption reads from one domain's XML. */
export interface ObservedDomain {
  readonly name: string;
  readonly uuid: string;
  /** `kvm` or `qemu` */
  readonly type: string;
  readonly architecture: string;
  /** vCPUs at start, and the ceiling (`<vcpu current>` and `<vcpu>`). */
  readonly vcpus: number;
  readonly maxVcpus: number;
  /** Memory at start and ceiling (`<currentMemory>`, `<memory>`), MiB. */
  readonly memoryMiB: number;
  readonly maxMemoryMiB: number;
  readonly disks: readonly ObservedDisk[];
  readonly nics: readonly ObservedNic[];
  /** What the constructs do not model, one line each: kept verbatim in the domain file, or the domain kept out. */
  readonly unmodelled: readonly string[];
  /** Secrets the XML holds (where, never the value). */
  readonly secrets: readonly string[];
}

/** Elements under `<devices>` the adopted VM models by type; every other device is reported. */
const MODELLED_DEVICES = new Set(['disk', 'interface', 'emulator', 'controller', 'serial', 'console', 'graphics', 'video', 'input', 'memballoon', 'channel', 'audio', 'rng']);

function diskSource(disk: XmlElement): DiskSource {
  const source = child(disk, 'source');
  const type = disk.attrs.type ?? 'file';
  if (!source) return { kind: 'none' };
  if (type === 'file' && source.attrs.file) return { kind: 'file', path: source.attrs.file };
  if (type === 'volume' && source.attrs.pool && source.attrs.volume) return { kind: 'volume', pool: source.attrs.pool, volume: source.attrs.volume };
  if (type === 'block' && source.attrs.dev) return { kind: 'block', path: source.attrs.dev };
  return { kind: 'other', type };
}

function backingChain(disk: XmlElement): string[] {
  const chain: string[] = [];
  for (let store = child(disk, 'backingStore'); store && child(store, 'source'); store = child(store, 'backingStore')) {
    const source = child(store, 'source')!;
    chain.push(source.attrs.file ?? source.attrs.dev ?? source.attrs.name ?? '?');
  }
  return chain;
}

/** Reads a domain's XML (`virsh dumpxml`): its sizes, disks, NICs, what the model does not cover and where secrets are. */
export function observeDomain(xml: string): ObservedDomain {
  const domain = parseXml(xml);
  if (domain.name !== 'domain') throw new Error(`not a domain's XML: the root element is <${domain.name}>`);
  const name = child(domain, 'name')?.text ?? '';
  const vcpu = child(domain, 'vcpu');
  const maxVcpus = Number(vcpu?.text ?? 1);
  const maxMemoryMiB = mebibytes(child(domain, 'memory')) ?? 0;
  const devices = child(domain, 'devices');
  const unmodelled: string[] = [];
  const secrets: string[] = [];
  for (const device of devices?.children ?? []) {
    if (!MODELLED_DEVICES.has(device.name)) {
      const what = device.name === 'hostdev' ? `passthrough device (<hostdev type='${device.attrs.type ?? '?'}' mode='${device.attrs.mode ?? '?'}'>)` : `device <${device.name}${device.attrs.type ? ` type='${device.attrs.type}'` : ''}>`;
      unmodelled.push(what);
    }
  }
  for (const g of children(devices, 'graphics')) if (g.attrs.passwd !== undefined) secrets.push(`${g.attrs.type ?? 'graphics'} console password (<graphics passwd>)`);
  for (const [element, why] of [
    ['numatune', 'NUMA memory pinning (<numatune>)'],
    ['cputune', 'CPU tuning or vCPU pinning (<cputune>)'],
    ['memoryBacking', 'memory backing (<memoryBacking>: hugepages, locking)'],
    ['iothreads', 'I/O threads (<iothreads>)'],
    ['launchSecurity', 'launch security (<launchSecurity>)'],
  ] as const) {
    if (child(domain, element)) unmodelled.push(why);
  }
  if (child(child(domain, 'cpu'), 'numa')) unmodelled.push('guest NUMA topology (<cpu><numa>)');
  if (vcpu?.attrs.cpuset !== undefined) unmodelled.push(`vCPU pinning (<vcpu cpuset='${vcpu.attrs.cpuset}'>)`);
  for (const e of domain.children) if (e.name.includes(':')) unmodelled.push(`custom XML <${e.name}> (a hypervisor namespace: passed to QEMU as is)`);
  const disks = children(devices, 'disk').map((d): ObservedDisk => {
    const target = child(d, 'target');
    const format = child(d, 'driver')?.attrs.type;
    return {
      target: target?.attrs.dev ?? '?',
      bus: target?.attrs.bus ?? '?',
      device: d.attrs.device ?? 'disk',
      ...(format !== undefined ? { format } : {}),
      source: diskSource(d),
      readOnly: child(d, 'readonly') !== undefined,
      backingChain: backingChain(d),
    };
  });
  for (const d of disks) if (d.source.kind === 'other') unmodelled.push(`disk ${d.target} of type '${d.source.type}' (network or other storage)`);
  const nics = children(devices, 'interface').map((n): ObservedNic => {
    const source = child(n, 'source');
    const tag = child(child(n, 'vlan'), 'tag')?.attrs.id;
    const model = child(n, 'model')?.attrs.type;
    return {
      type: n.attrs.type ?? '?',
      source: (n.attrs.type === 'network' ? source?.attrs.network : undefined) ?? source?.attrs.bridge ?? source?.attrs.dev ?? source?.attrs.network ?? '',
      mac: (child(n, 'mac')?.attrs.address ?? '').toLowerCase(),
      ...(model !== undefined ? { model } : {}),
      ...(tag !== undefined ? { vlan: Number(tag) } : {}),
      openVSwitch: child(n, 'virtualport')?.attrs.type === 'openvswitch',
    };
  });
  for (const n of nics) if (!['bridge', 'network', 'direct'].includes(n.type)) unmodelled.push(`NIC ${n.mac} of type '${n.type}'`);
  return {
    name,
    uuid: child(domain, 'uuid')?.text ?? '',
    type: domain.attrs.type ?? '?',
    architecture: child(child(domain, 'os'), 'type')?.attrs.arch ?? 'x86_64',
    vcpus: Number(vcpu?.attrs.current ?? maxVcpus),
    maxVcpus,
    memoryMiB: mebibytes(child(domain, 'currentMemory')) ?? maxMemoryMiB,
    maxMemoryMiB,
    disks,
    nics,
    unmodelled,
    secrets,
  };
}

/** A storage volume (`virsh vol-dumpxml`): its capacity and the file it overlays. */
export interface ObservedVolume {
  readonly name: string;
  readonly path: string;
  readonly capacityBytes: number;
  readonly format?: string;
  /** The backing file, when the volume is a copy-on-write overlay. */
  readonly backingPath?: string;
}

export function observeVolume(xml: string): ObservedVolume {
  const volume = parseXml(xml);
  const capacity = child(volume, 'capacity');
  const unit = (capacity?.attrs.unit ?? 'bytes').toLowerCase();
  const factor: Record<string, number> = { bytes: 1, b: 1, kib: 1024, k: 1024, mib: 2 ** 20, m: 2 ** 20, gib: 2 ** 30, g: 2 ** 30 };
  const format = child(child(volume, 'target'), 'format')?.attrs.type;
  const backing = child(child(volume, 'backingStore'), 'path')?.text;
  return {
    name: child(volume, 'name')?.text ?? '',
    path: child(child(volume, 'target'), 'path')?.text ?? '',
    capacityBytes: Number(capacity?.text ?? 0) * (factor[unit] ?? 1),
    ...(format !== undefined ? { format } : {}),
    ...(backing !== undefined && backing !== '' ? { backingPath: backing } : {}),
  };
}

/** A storage pool (`virsh pool-dumpxml`). */
export interface ObservedPool {
  readonly name: string;
  readonly uuid: string;
  readonly type: string;
  readonly path: string;
}

export function observePool(xml: string): ObservedPool {
  const pool = parseXml(xml);
  return {
    name: child(pool, 'name')?.text ?? '',
    uuid: child(pool, 'uuid')?.text ?? '',
    type: pool.attrs.type ?? '?',
    path: child(child(pool, 'target'), 'path')?.text ?? '',
  };
}

/** Everything read from one host. */
export interface ObservedHost {
  /** The host's name: its construct id and provider alias. */
  readonly name: string;
  readonly uri: string;
  readonly domains: readonly {
    readonly xml: string;
    /**
     * The provider's own reading of the domain (`values` of a `libvirt_domain` imported into a
     * scratch state): what the first plan compares the code with, attribute by attribute.
     */
    readonly providerView: Readonly<Record<string, unknown>>;
  }[];
  /** Volumes by path, for the sizes and backing files of the domains' disks. */
  readonly volumes: readonly (ObservedVolume & { readonly pool: string })[];
  readonly pools: readonly ObservedPool[];
  readonly networks: readonly string[];
  /** Bridges the host has (`virsh iface-list --all`, or the bridges the domains use). */
  readonly bridges: readonly string[];
}

/** A change the first apply would make to an adopted domain: what, why, and how to keep the original. */
export interface InPlaceChange {
  readonly attribute: string;
  readonly why: string;
  readonly keep: string;
}

/** A domain the plan adopts. */
export interface AdoptedVm {
  readonly constructId: string;
  /** Whether the code has it already (a previous run): rendered again, not new. */
  readonly known: boolean;
  readonly domain: ObservedDomain;
  /** The disks with what their volumes say (capacity, pool, backing file). */
  readonly disks: readonly (ObservedDisk & { readonly capacityBytes?: number; readonly pool?: string; readonly volume?: string })[];
  /** The domain attributes the code keeps as they are (`<construct id>.domain.json`), secrets taken out. */
  readonly preserved: Readonly<Record<string, unknown>>;
  readonly inPlaceChanges: readonly InPlaceChange[];
}

/** One host of the plan. */
export interface AdoptedHost {
  readonly constructId: string;
  readonly uri: string;
  readonly vms: readonly AdoptedVm[];
  /** Pools and networks the VMs use, referenced by name and left unmanaged. */
  readonly pools: readonly ObservedPool[];
  readonly networks: readonly string[];
  readonly bridges: readonly string[];
}

/** A domain left alone, and why. */
export interface SkippedDomain {
  readonly host: string;
  readonly domain: string;
  readonly uuid: string;
  readonly reason: string;
}

export interface AdoptionPlan {
  readonly hosts: readonly AdoptedHost[];
  readonly skipped: readonly SkippedDomain[];
}

export interface AdoptionOptions {
  /** Domains already in the code (a previous run's manifest), by UUID, with their construct ids: kept, nothing new. */
  readonly inCode: ReadonlyMap<string, string>;
  /** UUIDs of domains another Terraform state manages, with which state. */
  readonly managedElsewhere: ReadonlyMap<string, string>;
  /** Keep domains with unmodelled devices out of the model instead of keeping those devices verbatim. */
  readonly skipUnmodelled: boolean;
  /** Only domains whose name matches. */
  readonly only?: RegExp;
}

/** A construct id from a libvirt name: letters, digits and `-`, starting with a letter. */
export function constructIdFor(name: string): string {
  const id = name.replace(/[^A-Za-z0-9-]/g, '-');
  return /^[A-Za-z]/.test(id) ? id : `vm-${id}`;
}

/** Attributes of the provider's view the code never sets: computed by the provider. */
const VIEW_ONLY = new Set(['id', 'uuid']);

/** The runtime values of a preserved domain, for people: `path = value`. */
export function runtimeValues(preserved: Readonly<Record<string, unknown>>): string[] {
  return runtimeAttributes(preserved).map((r) => `${r.path} = ${r.value}${r.autoport ? ' (autoport)' : ''}`);
}

/**
 * The provider's view of a domain as the code keeps it: computed attributes (`id`, `uuid`) and
 * null values left out (empty objects kept: `<apic/>` is `apic = {}`), and secrets taken out, each one an in-place change the first apply would
 * make, with how to keep it.
 */
export function preservedDomain(view: Readonly<Record<string, unknown>>): { preserved: Record<string, unknown>; changes: InPlaceChange[] } {
  const changes: InPlaceChange[] = [];
  const clean = (value: unknown, at: string): unknown => {
    if (value === null || value === undefined) return undefined;
    // Empty objects and lists stay: the provider reads `<apic/>` as `apic = {}`, and the plan compares them.
    if (Array.isArray(value)) return value.map((v, i) => clean(v, `${at}[${i}]`)).filter((v) => v !== undefined);
    if (typeof value === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        const where = at === '' ? k : `${at}.${k}`;
        if (at === '' && VIEW_ONLY.has(k)) continue;
        if (k === 'passwd' && v !== null && v !== undefined) {
          changes.push({
            attribute: where,
            why: 'a console password is a secret: it is not written to the code or the synthesized JSON, so the first apply would define the domain without it (and restart the guest)',
            keep: 'keep the domain out (--exclude), or set the password from a sensitive Terraform variable in customizeDomain after adoption; or remove the password on the host first',
          });
          continue;
        }
        const c = clean(v, where);
        if (c !== undefined) out[k] = c;
      }
      return out;
    }
    return value;
  };
  return { preserved: (clean(view, '') as Record<string, unknown> | undefined) ?? {}, changes };
}

/** Decides what to adopt: each domain adopted, or skipped with its reason. Pure: facts in, plan out. */
export function planAdoption(hosts: readonly ObservedHost[], options: AdoptionOptions): AdoptionPlan {
  const skipped: SkippedDomain[] = [];
  const usedIds = new Set<string>(options.inCode.values());
  const planned = hosts.map((host): AdoptedHost => {
    const hostId = host.name;
    const vms: AdoptedVm[] = [];
    for (const { xml, providerView } of host.domains) {
      const domain = observeDomain(xml);
      const skip = (reason: string) => skipped.push({ host: hostId, domain: domain.name, uuid: domain.uuid, reason });
      if (options.only && !options.only.test(domain.name)) continue;
      const known = options.inCode.get(domain.uuid);
      const elsewhere = options.managedElsewhere.get(domain.uuid);
      if (elsewhere !== undefined) {
        skip(`managed by another Terraform state (${elsewhere}): importing it again would give it two owners`);
        continue;
      }
      if (known === undefined && options.skipUnmodelled && domain.unmodelled.length > 0) {
        skip(`has what the constructs do not model (${domain.unmodelled.join('; ')}) and --skip-unmodelled was given`);
        continue;
      }
      let constructId = known ?? constructIdFor(domain.name);
      for (let n = 2; known === undefined && usedIds.has(constructId); n++) constructId = `${constructIdFor(domain.name)}-${n}`;
      usedIds.add(constructId);
      const { preserved, changes } = preservedDomain(providerView);
      const disks = domain.disks.map((d) => {
        const path = d.source.kind === 'file' || d.source.kind === 'block' ? d.source.path : undefined;
        const volume = host.volumes.find((v) =>
          d.source.kind === 'volume' ? v.pool === d.source.pool && v.name === d.source.volume : path !== undefined && v.path === path,
        );
        return {
          ...d,
          ...(volume ? { capacityBytes: volume.capacityBytes, pool: volume.pool, volume: volume.name } : {}),
          backingChain: d.backingChain.length > 0 ? d.backingChain : volume?.backingPath ? [volume.backingPath] : [],
        };
      });
      vms.push({ constructId, known: known !== undefined, domain, disks, preserved, inPlaceChanges: changes });
    }
    const poolNames = new Set(vms.flatMap((vm) => vm.disks.map((d) => d.pool).filter((p): p is string => p !== undefined)));
    const networkNames = new Set(vms.flatMap((vm) => vm.domain.nics.filter((n) => n.type === 'network').map((n) => n.source)));
    const bridgeNames = new Set(vms.flatMap((vm) => vm.domain.nics.filter((n) => n.type === 'bridge').map((n) => n.source)));
    return {
      constructId: hostId,
      uri: host.uri,
      vms,
      pools: host.pools.filter((p) => poolNames.has(p.name)),
      networks: host.networks.filter((n) => networkNames.has(n)),
      bridges: [...bridgeNames].sort(),
    };
  });
  return { hosts: planned, skipped };
}

/** How a libvirt name becomes a TypeScript identifier. */
function identifier(id: string): string {
  return id.replace(/-([a-z0-9])/gi, (_, c: string) => c.toUpperCase()).replace(/[^A-Za-z0-9_]/g, '_');
}

/** A size as the shortest exact `Size` factory call. */
function sizeCall(mib: number): string {
  if (Number.isInteger(mib / 1024) && mib >= 1024) return `Size.gibibytes(${mib / 1024})`;
  if (Number.isInteger(mib)) return `Size.mebibytes(${mib})`;
  return `Size.bytes(${Math.round(mib * 2 ** 20)})`;
}

function bytesCall(bytes: number): string {
  return sizeCall(bytes / 2 ** 20);
}

function diskLine(d: AdoptedVm['disks'][number]): string {
  const src = d.source;
  const volume =
    src.kind === 'volume'
      ? `ExistingVolume.inPool(${JSON.stringify(src.pool)}, ${JSON.stringify(src.volume)})`
      : src.kind === 'file' || src.kind === 'block'
        ? `ExistingVolume.atPath(${JSON.stringify(src.path)})`
        : 'ExistingVolume.none()';
  if (src.kind === 'other') return `      // disk ${d.target} (${src.type} storage): kept verbatim in the domain file`;
  const facts = [
    d.device,
    d.format,
    d.capacityBytes !== undefined ? `${(d.capacityBytes / 2 ** 20).toFixed(0)} MiB` : undefined,
    d.backingChain.length > 0 ? `overlay of ${d.backingChain.join(' <- ')}` : undefined,
  ].filter((f) => f !== undefined);
  return `      { target: ${JSON.stringify(d.target)}, volume: ${volume}${d.capacityBytes !== undefined ? `, size: ${bytesCall(d.capacityBytes)}` : ''} }, // ${facts.join(', ')}`;
}

function segmentCall(n: ObservedNic): string {
  if (n.type === 'bridge' && n.openVSwitch) return `Segment.openVSwitch(${JSON.stringify(n.source)}, ${JSON.stringify(n.source)}${n.vlan !== undefined ? `, { vlan: ${n.vlan} }` : ''})`;
  if (n.type === 'bridge') return `Segment.hostBridge(${JSON.stringify(n.source)}, ${JSON.stringify(n.source)})`;
  if (n.type === 'direct') return `Segment.macvtap(${JSON.stringify(`macvtap-${n.source}`)}, ${JSON.stringify(n.source)})`;
  return `Segment.isolated(${JSON.stringify(n.source)})`;
}

/** The library's names the written code uses, so no import is unused (`noUnusedLocals`). */
function usedNames(plan: AdoptionPlan): string[] {
  const vms = plan.hosts.flatMap((h) => h.vms);
  return [
    'AdoptedVirtualMachine',
    ...(vms.some((vm) => vm.disks.some((d) => d.source.kind !== 'other')) ? ['ExistingVolume'] : []),
    'Host',
    ...(vms.some((vm) => vm.domain.nics.length > 0) ? ['Segment'] : []),
    'Size',
  ];
}

/** Where each adopted VM's preserved domain file goes, relative to the written TypeScript. */
export function domainFileName(host: AdoptedHost, vm: AdoptedVm): string {
  return `adopted/${host.constructId}/${vm.constructId}.domain.json`;
}

/**
 * The TypeScript a user commits: a function that declares the adopted hosts and VMs in a stack,
 * each VM with its domain's UUID (its import), real sizes, disks, NICs and the preserved domain
 * file. `cdk` is the package the app imports from.
 */
export function renderTypeScript(plan: AdoptionPlan, library = 'cdktf-libvirt-cluster', dataDir = '.'): string {
  const lines: string[] = [
    '// Written by `cdktf-libvirt-cluster adopt`: review it, then commit it with the adopted/ folder.',
    '// Each AdoptedVirtualMachine imports its existing domain by UUID (an `import` block) and keeps',
    '// what the constructs do not model verbatim in its adopted/<host>/<vm>.domain.json file.',
    "import * as fs from 'fs';",
    "import * as path from 'path';",
    "import { Construct } from 'constructs';",
    `import { ${usedNames(plan).join(', ')} } from '${library}';`,
    '',
    '// The domain files, relative to the folder the app runs in (cdktf runs it where cdktf.json is): read',
    '// by path, which works the same whether the project is an ES module or CommonJS.',
    `const domainFile = (file: string) => JSON.parse(fs.readFileSync(path.join(${JSON.stringify(dataDir)}, file), 'utf8'));`,
    '',
    '/** The adopted estate, declared in `scope` (a TerraformStack). */',
    'export function adoptedEstate(scope: Construct): { hosts: Record<string, Host>; vms: Record<string, AdoptedVirtualMachine> } {',
    '  const hosts: Record<string, Host> = {};',
    '  const vms: Record<string, AdoptedVirtualMachine> = {};',
  ];
  for (const host of plan.hosts) {
    const h = identifier(host.constructId);
    lines.push('');
    lines.push(`  // ${host.uri}: pools ${host.pools.map((p) => `${p.name} (${p.type} ${p.path})`).join(', ') || 'none used'}; networks ${host.networks.join(', ') || 'none used'}; bridges ${host.bridges.join(', ') || 'none used'} (referenced, not managed)`);
    lines.push(`  const ${h} = new Host(scope, ${JSON.stringify(host.constructId)}, { uri: ${JSON.stringify(host.uri)}, localPool: false });`);
    lines.push(`  hosts[${JSON.stringify(host.constructId)}] = ${h};`);
    for (const vm of host.vms) {
      const d = vm.domain;
      lines.push(`  vms[${JSON.stringify(vm.constructId)}] = new AdoptedVirtualMachine(scope, ${JSON.stringify(vm.constructId)}, {`);
      lines.push(`    host: ${h},`);
      lines.push(`    name: ${JSON.stringify(d.name)},`);
      lines.push(`    uuid: ${JSON.stringify(d.uuid)},`);
      lines.push(`    vcpus: ${d.vcpus},${d.maxVcpus !== d.vcpus ? ` maxVcpus: ${d.maxVcpus},` : ''}`);
      lines.push(`    memory: ${sizeCall(d.memoryMiB)},${d.maxMemoryMiB !== d.memoryMiB ? ` maxMemory: ${sizeCall(d.maxMemoryMiB)},` : ''}`);
      lines.push('    disks: [');
      for (const disk of vm.disks) lines.push(diskLine(disk));
      lines.push('    ],');
      lines.push('    nics: [');
      for (const n of d.nics) lines.push(`      { segment: ${segmentCall(n)}, mac: ${JSON.stringify(n.mac)} },`);
      lines.push('    ],');
      for (const u of d.unmodelled) lines.push(`    // not modelled, kept verbatim in the domain file: ${u}`);
      for (const c of vm.inPlaceChanges) lines.push(`    // first apply changes ${c.attribute}: ${c.why}`);
      const runtime = runtimeValues(vm.preserved);
      if (runtime.length > 0) lines.push(`    // runtime values kept as read, ignored by plans (ignoreRuntimeValues): ${runtime.join(', ')}`);
      lines.push(`    domain: domainFile(${JSON.stringify(domainFileName(host, vm))}),`);
      lines.push('  });');
    }
  }
  lines.push('  return { hosts, vms };');
  lines.push('}');
  lines.push('');
  return lines.join('\n');
}

function runtimeLine(vm: AdoptedVm): string[] {
  const runtime = runtimeValues(vm.preserved);
  return runtime.length > 0 ? [`  runtime values kept as read (${runtime.join(', ')}): they change at each start of the guest; plans ignore them (ignore_changes), adopt --refresh records the new ones`] : [];
}

/** The report the command prints: what is imported where, what is left alone, what the first apply would change. */
export function renderReport(plan: AdoptionPlan): string {
  const out: string[] = [];
  const all = plan.hosts.flatMap((h) => h.vms.map((vm) => ({ h, vm })));
  const vms = all.filter(({ vm }) => !vm.known);
  out.push(`${vms.length} domain${vms.length === 1 ? '' : 's'} to import, ${all.length - vms.length} already in the code, ${plan.skipped.length} left alone`);
  for (const { h, vm } of vms) {
    const d = vm.domain;
    out.push(`import ${h.constructId}/${vm.constructId}: libvirt_domain ${d.name} uuid ${d.uuid} (${d.vcpus}/${d.maxVcpus} vCPUs, ${d.memoryMiB}/${d.maxMemoryMiB} MiB, ${vm.disks.length} disks, ${d.nics.length} NICs)`);
    for (const disk of vm.disks) {
      const where = disk.source.kind === 'volume' ? `${disk.source.pool}/${disk.source.volume}` : disk.source.kind === 'file' || disk.source.kind === 'block' ? disk.source.path : disk.source.kind;
      out.push(`  disk ${disk.target}: ${where}${disk.backingChain.length > 0 ? ` over ${disk.backingChain.join(' <- ')}` : ''}: referenced, not managed (provider 0.9.7 cannot import a volume)`);
    }
    for (const u of d.unmodelled) out.push(`  not modelled (kept verbatim in ${domainFileName(h, vm)}): ${u}`);
    for (const s of d.secrets) out.push(`  secret not written: ${s}`);
    for (const c of vm.inPlaceChanges) out.push(`  IN-PLACE CHANGE on first apply: ${c.attribute}: ${c.why}; to keep the original: ${c.keep}`);
    out.push(...runtimeLine(vm));
  }
  for (const { h, vm } of all.filter(({ vm }) => vm.known)) {
    out.push(`in the code ${h.constructId}/${vm.constructId}: libvirt_domain ${vm.domain.name} uuid ${vm.domain.uuid}`);
    out.push(...runtimeLine(vm));
  }
  for (const s of plan.skipped) out.push(`left alone ${s.host}/${s.domain} (${s.uuid}): ${s.reason}`);
  return out.join('\n') + '\n';
}

/** The manifest the command keeps beside the code: the UUIDs already adopted, so a second run finds nothing new. */
export interface AdoptionManifest {
  readonly adopted: readonly { readonly host: string; readonly uri: string; readonly name: string; readonly uuid: string; readonly constructId: string }[];
}

export function manifestOf(plan: AdoptionPlan): AdoptionManifest {
  return { adopted: plan.hosts.flatMap((h) => h.vms.map((vm) => ({ host: h.constructId, uri: h.uri, name: vm.domain.name, uuid: vm.domain.uuid, constructId: vm.constructId }))) };
}

/** Whether the plan has anything the code does not: a new domain to import. */
export function hasNewVms(plan: AdoptionPlan): boolean {
  return plan.hosts.some((h) => h.vms.some((vm) => !vm.known));
}
