import { TerraformResource } from 'cdktf';
import { Construct } from 'constructs';
import { parseMac } from '../core/addressing';
import { runtimeAttributes } from '../core/adopted-domain';
import { Size } from '../core/size';
import { IPlacementHost } from './contract';
import { Segment, SegmentKind } from './segment';

/**
 * A volume that exists on the host already, used as it is: referenced by the domain, never
 * created, changed or destroyed by Terraform. Provider 0.9.7 cannot import a `libvirt_volume`
 * (its import sets `id`, its read looks the volume up by `key`), so an adopted VM's disks stay
 * unmanaged files or pool volumes.
 *
 * @example
 * ExistingVolume.inPool('default', 'web.qcow2');
 * ExistingVolume.atPath('/var/lib/libvirt/images/web-data.qcow2');
 */
export class ExistingVolume {
  /** A volume of a libvirt storage pool (`<disk type='volume'><source pool volume>`). */
  public static inPool(pool: string, volume: string): ExistingVolume {
    return new ExistingVolume({ kind: 'volume', pool, volume });
  }

  /** A file or block device by its path on the host (`<source file>` or `<source dev>`). */
  public static atPath(path: string): ExistingVolume {
    return new ExistingVolume({ kind: 'path', path });
  }

  /** No medium (an empty CD-ROM drive). */
  public static none(): ExistingVolume {
    return new ExistingVolume({ kind: 'none' });
  }

  private constructor(
    public readonly source: { readonly kind: 'volume'; readonly pool: string; readonly volume: string } | { readonly kind: 'path'; readonly path: string } | { readonly kind: 'none' },
  ) {}

  /** Where the volume is, for messages. */
  public toString(): string {
    const s = this.source;
    return s.kind === 'volume' ? `${s.pool}/${s.volume}` : s.kind === 'path' ? s.path : 'no medium';
  }
}

/** A disk of an adopted VM: the domain's target device and the existing volume behind it. */
export interface AdoptedDiskProps {
  /** The guest's device, e.g. `vda`. */
  readonly target: string;
  /** The existing volume (a boot disk, a data disk, an ISO). */
  readonly volume: ExistingVolume;
  /**
   * The volume's capacity, as found at adoption: informational (the volume is not managed), shown
   * in the placement of the host's capacity.
   * @default - unknown
   */
  readonly size?: Size;
}

/** A NIC of an adopted VM. */
export interface AdoptedNicProps {
  /**
   * The segment the NIC is on: a host bridge, an Open vSwitch bridge, macvtap, or an existing
   * libvirt network (`Segment.isolated(<network name>)`; the network is referenced, not created).
   */
  readonly segment: Segment;
  /** The NIC's MAC, kept from the existing domain. */
  readonly mac: string;
}

export interface AdoptedVirtualMachineProps {
  /** The host the domain is defined on. */
  readonly host: IPlacementHost;
  /** The libvirt domain name. */
  readonly name: string;
  /** The domain's UUID: the first plan imports it (an `import` block), and it never changes. */
  readonly uuid: string;
  /** Virtual CPUs at start (`<vcpu current>`). */
  readonly vcpus: number;
  /**
   * Ceiling the vCPUs can be raised to (`<vcpu>`).
   * @default - the same as vcpus
   */
  readonly maxVcpus?: number;
  /** Memory at start (`<currentMemory>`). */
  readonly memory: Size;
  /**
   * Memory ceiling (`<memory>`).
   * @default - the same as memory
   */
  readonly maxMemory?: Size;
  /** The domain's disks by target device: each an existing volume. */
  readonly disks: readonly AdoptedDiskProps[];
  /**
   * The domain's NICs, in the domain's order, with their MACs.
   * @default - none
   */
  readonly nics?: readonly AdoptedNicProps[];
  /**
   * The domain's other attributes as provider 0.9.7 reads them (`adopt` writes them to
   * `adopted/<host>/<vm>.domain.json`): the first plan compares every attribute the provider
   * read with the code, so what the typed props do not cover is kept verbatim, never dropped.
   * The typed props above take precedence over it.
   */
  readonly domain: Readonly<Record<string, unknown>>;
  /**
   * Keep plans from comparing the values libvirt assigns at each start (console ptys, tap
   * devices, autoport VNC ports): `lifecycle.ignore_changes` on those attributes, so a guest
   * restarted outside Terraform does not show as an update (which would restart it again).
   * @default true
   */
  readonly ignoreRuntimeValues?: boolean;
}

type Json = Record<string, unknown>;

/** A `libvirt_domain` rendered from the preserved attributes, snake_case as the provider names them. */
class PreservedDomain extends TerraformResource {
  constructor(
    scope: Construct,
    id: string,
    private readonly attributes: () => Json,
  ) {
    super(scope, id, {
      terraformResourceType: 'libvirt_domain',
      terraformGeneratorMetadata: { providerName: 'libvirt', providerVersion: '0.9.7', providerVersionConstraint: '0.9.7' },
    });
  }

  protected synthesizeAttributes(): Json {
    return this.attributes();
  }

  protected synthesizeHclAttributes(): Json {
    return Object.fromEntries(Object.entries(this.attributes()).map(([k, v]) => [k, { value: v, isBlock: false, type: 'simple', storageClassType: 'any' }]));
  }
}

/** KiB in a provider unit, or undefined when the unit is not one libvirt writes. */
const UNIT_KIB: Record<string, number> = { KiB: 1, k: 1, MiB: 1024, M: 1024, GiB: 1024 ** 2, G: 1024 ** 2, b: 1 / 1024, bytes: 1 / 1024 };

/**
 * A libvirt domain that existed before the code: defined by `virsh define`, `virt-install`,
 * virt-manager or another tool, and brought under Terraform without being recreated. Its first
 * plan imports it by UUID; its disks stay the volumes they were (referenced, not managed); what
 * the typed props do not cover is kept as the provider read it. `cdktf-libvirt-cluster adopt`
 * writes these for a whole host.
 *
 * @example
 * new AdoptedVirtualMachine(stack, 'web', {
 *   host: kvm1,
 *   name: 'web',
 *   uuid: '3f0c8c2e-6d1e-4c39-9a57-0d9c1f3a2b11',
 *   vcpus: 2,
 *   memory: Size.gibibytes(2),
 *   disks: [{ target: 'vda', volume: ExistingVolume.inPool('default', 'web.qcow2') }],
 *   nics: [{ segment: Segment.hostBridge('lan', 'br0'), mac: '52:54:00:12:34:56' }],
 *   domain: JSON.parse(fs.readFileSync('adopted/kvm1/web.domain.json', 'utf8')),
 * });
 */
export class AdoptedVirtualMachine extends Construct {
  public readonly vmName: string;
  public readonly uuid: string;
  public readonly host: IPlacementHost;
  /** The imported `libvirt_domain`. */
  public readonly resource: TerraformResource;
  private readonly props: AdoptedVirtualMachineProps;

  constructor(scope: Construct, id: string, props: AdoptedVirtualMachineProps) {
    super(scope, id);
    this.props = props;
    this.vmName = props.name;
    this.uuid = props.uuid;
    this.host = props.host;
    this.resource = new PreservedDomain(this, 'Resource', () => this.attributes());
    this.resource.provider = props.host.provider;
    this.resource.importFrom(props.uuid, props.host.provider);
    const runtime = props.ignoreRuntimeValues === false ? [] : runtimeAttributes(props.domain).map((r) => r.path);
    if (runtime.length > 0) this.resource.lifecycle = { ignoreChanges: runtime };
    this.node.addValidation({ validate: () => this.validateProps() });
  }

  /** The preserved attributes with the typed props laid over them. */
  private attributes(): Json {
    const p = this.props;
    const out: Json = structuredClone(p.domain) as Json;
    out.name = p.name;
    out.vcpu = p.maxVcpus ?? p.vcpus;
    if (out.vcpu_current !== undefined || p.vcpus !== out.vcpu) out.vcpu_current = p.vcpus;
    // Kept in the unit the provider read, so an unchanged size is an unchanged attribute.
    const memoryUnit = typeof out.memory_unit === 'string' ? out.memory_unit : 'KiB';
    out.memory = inUnit(p.maxMemory ?? p.memory, memoryUnit);
    out.memory_unit = memoryUnit;
    if (out.current_memory !== undefined || p.maxMemory !== undefined) {
      const unit = typeof out.current_memory_unit === 'string' ? out.current_memory_unit : memoryUnit;
      out.current_memory = inUnit(p.memory, unit);
      out.current_memory_unit = unit;
    }
    const devices = (out.devices ?? {}) as Json;
    const disks = (devices.disks ?? []) as Json[];
    for (const disk of p.disks) {
      const found = disks.find((d) => ((d.target as Json | undefined)?.dev ?? '') === disk.target);
      if (found) found.source = sourceFor(disk.volume, found.source as Json | undefined);
    }
    const interfaces = (devices.interfaces ?? []) as Json[];
    (p.nics ?? []).forEach((nic, i) => {
      const found = interfaces[i];
      if (!found) return;
      found.mac = { ...((found.mac as Json | undefined) ?? {}), address: nic.mac.toLowerCase() };
      found.source = interfaceSource(nic.segment, found.source as Json | undefined);
    });
    return out;
  }

  private validateProps(): string[] {
    const p = this.props;
    const problems: string[] = [];
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(p.uuid)) problems.push(`uuid '${p.uuid}' is not a UUID; copy it from \`virsh domuuid ${p.name}\``);
    if (!Number.isInteger(p.vcpus) || p.vcpus < 1) problems.push(`vcpus is ${p.vcpus}; give a whole number, at least 1`);
    if (p.maxVcpus !== undefined && (!Number.isInteger(p.maxVcpus) || p.maxVcpus < p.vcpus)) problems.push(`maxVcpus is ${p.maxVcpus}; give a whole number no lower than vcpus (${p.vcpus})`);
    if (p.maxMemory && p.memory.isGreaterThan(p.maxMemory)) problems.push(`maxMemory ${p.maxMemory} is below memory ${p.memory}; raise maxMemory or leave it out`);
    const unit = typeof p.domain.memory_unit === 'string' ? p.domain.memory_unit : 'KiB';
    if (UNIT_KIB[unit] === undefined) problems.push(`the domain file's memory_unit '${unit}' is not one of ${Object.keys(UNIT_KIB).join(', ')}`);
    const devices = (p.domain.devices ?? {}) as Json;
    const targets = ((devices.disks ?? []) as Json[]).map((d) => (d.target as Json | undefined)?.dev);
    for (const disk of p.disks) {
      if (!targets.includes(disk.target)) problems.push(`disk ${disk.target} (${disk.volume}) is not a disk of the domain file (it has ${targets.join(', ') || 'none'}); adding a disk to an adopted VM is not supported: add it with virsh attach-disk --config, then run adopt again`);
    }
    const interfaces = (devices.interfaces ?? []) as Json[];
    if ((p.nics ?? []).length !== interfaces.length) problems.push(`${(p.nics ?? []).length} NICs are given and the domain file has ${interfaces.length}: adding or removing NICs of an adopted VM is not supported`);
    for (const nic of p.nics ?? []) {
      const mac = parseMac(nic.mac);
      if ('problem' in mac) problems.push(`NIC ${nic.mac}: ${mac.problem}`);
    }
    if (!p.host.reachable) problems.push(`host ${p.host.hostName} is ${p.host.state}: an adopted VM stands alone on its host and has no cluster to restart it elsewhere`);
    return problems;
  }
}

function inUnit(size: Size, unit: string): number {
  return Math.round(size.toBytes() / 1024 / (UNIT_KIB[unit] ?? 1));
}

function sourceFor(volume: ExistingVolume, before: Json | undefined): Json | undefined {
  const s = volume.source;
  if (s.kind === 'none') return undefined;
  // What is not the location (startup policy, index, ...) stays; the location is the typed one.
  const rest = Object.fromEntries(Object.entries(before ?? {}).filter(([k]) => !['file', 'block', 'volume'].includes(k)));
  const previous = (key: string) => (before?.[key] as Json | undefined) ?? {};
  if (s.kind === 'volume') return { ...rest, volume: { ...previous('volume'), pool: s.pool, volume: s.volume } };
  if (before?.block !== undefined) return { ...rest, block: { ...previous('block'), dev: s.path } };
  return { ...rest, file: { ...previous('file'), file: s.path } };
}

/** The NIC's source on `segment`, keeping what else the provider read there. */
function interfaceSource(segment: Segment, before: Json | undefined): Json {
  const at = (key: string, value: Json): Json => ({ ...(before ?? {}), [key]: { ...((before?.[key] as Json | undefined) ?? {}), ...value } });
  switch (segment.kind) {
    case SegmentKind.ISOLATED:
      return at('network', { network: segment.name });
    case SegmentKind.MACVTAP:
      return at('direct', { dev: segment.device! });
    case SegmentKind.HOST_BRIDGE:
    case SegmentKind.OPEN_VSWITCH:
      return at('bridge', { bridge: segment.device! });
  }
}
