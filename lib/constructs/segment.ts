/**
 * Network segments: the layer-2 networks a VM's NICs attach to, declared once per cluster and
 * found under the same name on every host, so a VM that fails over or moves lands on the same
 * network with the same MAC and addresses.
 */
import { createHash } from 'crypto';
import { InterfaceAddress, parseIp } from '../core/addressing';
import { DomainDevicesInterfaces } from '../generated/libvirt/domain';

/** What a segment is made of on each host. */
export enum SegmentKind {
  /** A libvirt network with no `<forward>` and no address, created by the library on every host: guests reach each other only. */
  ISOLATED = 'isolated',
  /** An existing Linux bridge on every host (e.g. `br0` with the LAN uplink): site infrastructure, like the shared pool. */
  HOST_BRIDGE = 'host-bridge',
  /** macvtap on a named host NIC (`<interface type='direct'>`); the host itself cannot reach its guests through it. */
  MACVTAP = 'macvtap',
  /** An existing Open vSwitch bridge on every host, optionally with a VLAN tag. */
  OPEN_VSWITCH = 'openvswitch',
}

/** How macvtap passes a guest's traffic (libvirt's `<source mode>`). */
export enum MacvtapMode {
  /** Guests on the same host NIC talk to each other directly. */
  BRIDGE = 'bridge',
  /** All traffic goes out to the external switch (which must hairpin it). */
  VEPA = 'vepa',
  /** Like VEPA, but guests on the same NIC never talk to each other. */
  PRIVATE = 'private',
  /** The NIC is given to one guest. */
  PASSTHROUGH = 'passthrough',
}

export interface SegmentOptions {
  /**
   * Subnets of the segment, e.g. `192.0.2.0/24` and `2001:db8:20::/64`: every static address on
   * the segment must lie in one of them, with its prefix.
   * @default - none: addresses are not checked against a subnet
   */
  readonly subnets?: readonly string[];
  /**
   * IPv4 default gateway of statically addressed NICs.
   * @default - none
   */
  readonly gateway4?: string;
  /**
   * IPv6 default gateway of statically addressed NICs.
   * @default - none
   */
  readonly gateway6?: string;
  /**
   * DNS servers of statically addressed NICs.
   * @default - none
   */
  readonly nameservers?: readonly string[];
  /**
   * DNS search domains of statically addressed NICs.
   * @default - none
   */
  readonly searchDomains?: readonly string[];
}

export interface MacvtapOptions extends SegmentOptions {
  /**
   * How macvtap passes traffic.
   * @default MacvtapMode.BRIDGE
   */
  readonly mode?: MacvtapMode;
}

export interface OpenVSwitchOptions extends SegmentOptions {
  /**
   * 802.1Q VLAN tag of the guests' ports (1-4094).
   * @default - untagged
   */
  readonly vlan?: number;
}

const SEGMENT_NAME = /^[a-z][a-z0-9-]{0,30}$/;
const DEVICE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,14}$/;

/**
 * A layer-2 network every host of a cluster has under the same name. Pass it to
 * `ClusterProps.segments` and to a VM's `nics`.
 *
 * @example
 * const lan = Segment.hostBridge('lan', 'br0', { subnets: ['192.0.2.0/24'], gateway4: '192.0.2.1' });
 */
export class Segment {
  /** A libvirt network of this name, with no `<forward>` and no address, created on every host. */
  public static isolated(name: string, options: SegmentOptions = {}): Segment {
    return new Segment(name, SegmentKind.ISOLATED, undefined, options);
  }

  /** The Linux bridge `bridge` (e.g. `br0`) that every host already has. */
  public static hostBridge(name: string, bridge: string, options: SegmentOptions = {}): Segment {
    return new Segment(name, SegmentKind.HOST_BRIDGE, bridge, options);
  }

  /** macvtap on the host NIC `device` (e.g. `eno1`) that every host has under that name. */
  public static macvtap(name: string, device: string, options: MacvtapOptions = {}): Segment {
    return new Segment(name, SegmentKind.MACVTAP, device, options);
  }

  /** The Open vSwitch bridge `bridge` that every host already has. */
  public static openVSwitch(name: string, bridge: string, options: OpenVSwitchOptions = {}): Segment {
    return new Segment(name, SegmentKind.OPEN_VSWITCH, bridge, options);
  }

  private constructor(
    /** The segment's name; an isolated segment's libvirt network has it. */
    public readonly name: string,
    public readonly kind: SegmentKind,
    /** The host bridge or NIC a site provides, for the kinds that use one. */
    public readonly device: string | undefined,
    public readonly options: SegmentOptions & MacvtapOptions & OpenVSwitchOptions,
  ) {}

  /** The segment's subnets, parsed (unparsable ones are reported by `validate`). */
  public get subnets(): InterfaceAddress[] {
    return (this.options.subnets ?? []).map((s) => InterfaceAddress.parse(s)).filter((s): s is InterfaceAddress => typeof s !== 'string');
  }

  /** For people: `bridge br0`, `macvtap on eno1`, `isolated network`. */
  public describe(): string {
    switch (this.kind) {
      case SegmentKind.ISOLATED:
        return `isolated network ${this.name}`;
      case SegmentKind.HOST_BRIDGE:
        return `bridge ${this.device}`;
      case SegmentKind.MACVTAP:
        return `macvtap on ${this.device}`;
      case SegmentKind.OPEN_VSWITCH:
        return `Open vSwitch bridge ${this.device}${this.options.vlan !== undefined ? ` (VLAN ${this.options.vlan})` : ''}`;
    }
  }

  /** What is wrong with the segment's own settings, each with a fix. */
  public validate(): string[] {
    const problems: string[] = [];
    const where = `segment '${this.name}'`;
    if (!SEGMENT_NAME.test(this.name)) problems.push(`${where}: the name must start with a letter and hold only a-z, 0-9 and '-' (at most 31); it names the libvirt network`);
    if (this.device !== undefined && !DEVICE_NAME.test(this.device)) problems.push(`${where}: '${this.device}' is not a host network device name (at most 15 characters, no spaces or slashes)`);
    const subnets: InterfaceAddress[] = [];
    for (const text of this.options.subnets ?? []) {
      const subnet = InterfaceAddress.parse(text);
      if (typeof subnet === 'string') problems.push(`${where}: subnet ${subnet}`);
      else if (subnet.network.toString() !== subnet.toString()) problems.push(`${where}: subnet ${text} has host bits set; write ${subnet.network}`);
      else subnets.push(subnet);
    }
    for (const [key, family] of [['gateway4', 4], ['gateway6', 6]] as const) {
      const text = this.options[key];
      if (text === undefined) continue;
      const gateway = parseIp(text);
      if (typeof gateway === 'string') problems.push(`${where}: ${key} ${gateway}`);
      else if (gateway.family !== family) problems.push(`${where}: ${key} ${text} is not an IPv${family} address`);
      else if (subnets.length > 0 && !subnets.some((s) => s.contains(gateway))) problems.push(`${where}: ${key} ${text} is outside its subnets (${this.options.subnets!.join(', ')})`);
    }
    for (const text of this.options.nameservers ?? []) {
      const server = parseIp(text);
      if (typeof server === 'string') problems.push(`${where}: name server ${server}`);
    }
    for (const domain of this.options.searchDomains ?? []) {
      if (!isSearchDomain(domain)) {
        problems.push(`${where}: search domain ${JSON.stringify(domain)} is not a DNS name; give labels of letters, digits, '-' or '_' joined by dots, e.g. corp.example.net`);
      }
    }
    const vlan = this.options.vlan;
    if (vlan !== undefined && !(Number.isInteger(vlan) && vlan >= 1 && vlan <= 4094)) problems.push(`${where}: VLAN ${vlan} is not a tag from 1 to 4094`);
    return problems;
  }

  /**
   * The domain NIC on this segment with MAC `mac`; `network` is the isolated network's name as
   * the host renders it (a reference, so the network is created first).
   */
  public renderInterface(mac: string, network: string | undefined): DomainDevicesInterfaces {
    const common = { mac: { address: mac }, model: { type: 'virtio' } };
    switch (this.kind) {
      case SegmentKind.ISOLATED:
        return { ...common, source: { network: { network: network ?? this.name } } };
      case SegmentKind.HOST_BRIDGE:
        return { ...common, source: { bridge: { bridge: this.device! } } };
      case SegmentKind.MACVTAP:
        return { ...common, source: { direct: { dev: this.device!, mode: this.options.mode ?? MacvtapMode.BRIDGE } } };
      case SegmentKind.OPEN_VSWITCH:
        return {
          ...common,
          source: { bridge: { bridge: this.device! } },
          // A fixed port id: libvirt would invent one per define, and the plan would show it.
          virtualPort: { params: { openVSwitch: { interfaceId: uuidFrom(mac) } } },
          ...(this.options.vlan !== undefined ? { vlan: { tags: [{ id: this.options.vlan }] } } : {}),
        };
    }
  }
}

/** A DNS name for a resolver's search list: dot-separated labels of 1-63 characters, at most 253 in all, an optional final dot. */
function isSearchDomain(text: string): boolean {
  const name = text.endsWith('.') ? text.slice(0, -1) : text;
  return name.length > 0 && name.length <= 253 && name.split('.').every((label) => /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/.test(label));
}

/** A name-based UUID (version 5 layout) from `seed`: the same seed, the same UUID. */
function uuidFrom(seed: string): string {
  const b = createHash('sha1').update(`cdktf-libvirt-cluster/ovs-port/${seed}`).digest().subarray(0, 16);
  b[6] = (b[6] & 0x0f) | 0x50;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = b.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
