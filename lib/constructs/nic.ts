/**
 * A VM's network interfaces: which segment each is on, its MAC (stable for the VM's life) and its
 * addresses, written for the guest as cloud-init network configuration version 2.
 */
import { Document, Scalar } from 'yaml';
import { deriveMac, InterfaceAddress, parseMac } from '../core/addressing';
import { Segment } from './segment';

/** A network interface of a VM. */
export interface NicProps {
  /** The segment the NIC is on. A clustered VM's segment must be one of its cluster's. */
  readonly segment: Segment;
  /**
   * The NIC's name: the guest's interface name (cloud-init renames the NIC with this MAC to it)
   * and part of the seed of its MAC.
   * @default - eth0, eth1, ... by position
   */
  readonly name?: string;
  /**
   * The MAC address.
   * @default - derived from the stack, VM and NIC names: the same for the VM's whole life, wherever it runs
   */
  readonly mac?: string;
  /**
   * Static addresses with prefix, IPv4 and/or IPv6, e.g. `192.0.2.11/24`, `2001:db8:20::11/64`.
   * @default - none: the NIC asks DHCP (when the VM has any network configuration)
   */
  readonly addresses?: readonly string[];
  /**
   * Ask DHCP for an IPv4 address.
   * @default - true when the NIC has no static IPv4 address
   */
  readonly dhcp?: boolean;
}

/** A NIC with its name, MAC and addresses settled. */
export interface ResolvedNic {
  readonly name: string;
  readonly segment: Segment;
  readonly mac: string;
  readonly addresses: readonly InterfaceAddress[];
  readonly dhcp: boolean;
  /** Whether the MAC was derived (not given). */
  readonly derivedMac: boolean;
  /** Whether the NIC asks anything of the guest's network configuration (addresses or `dhcp` given). */
  readonly configured: boolean;
}

const NIC_NAME = /^[a-z][a-z0-9]{0,14}$/;

/**
 * Settles each NIC's name, MAC and addresses, and says what is wrong with them: each problem names
 * the NIC and a fix. `seed` is what makes the derived MACs unique: the stack and VM names.
 */
export function resolveNics(nics: readonly NicProps[], seed: string): { nics: ResolvedNic[]; problems: string[] } {
  const problems: string[] = [];
  const resolved = nics.map((nic, i): ResolvedNic => {
    const name = nic.name ?? `eth${i}`;
    const where = `NIC ${name}`;
    if (!NIC_NAME.test(name)) problems.push(`${where}: the name must be a-z and 0-9, starting with a letter, at most 15; it is the guest's interface name`);
    let mac = deriveMac(`${seed}/${name}`);
    if (nic.mac !== undefined) {
      const given = parseMac(nic.mac);
      if ('problem' in given) problems.push(`${where}: ${given.problem}`);
      else mac = given.mac;
    }
    const addresses: InterfaceAddress[] = [];
    for (const text of nic.addresses ?? []) {
      const address = InterfaceAddress.parse(text);
      if (typeof address === 'string') {
        problems.push(`${where}: ${address}`);
        continue;
      }
      addresses.push(address);
      if (address.toString() === address.network.toString() && address.prefix < (address.family === 4 ? 31 : 127)) {
        problems.push(`${where}: ${text} is the network address of its subnet, not a host's; pick an address inside it`);
      }
      const subnets = nic.segment.subnets;
      if (subnets.length > 0 && !subnets.some((s) => s.prefix === address.prefix && s.contains(address))) {
        problems.push(`${where}: ${text} is outside segment '${nic.segment.name}' (${nic.segment.options.subnets!.join(', ')}); use an address in one of its subnets, with its prefix`);
      }
    }
    const hasIpv4 = addresses.some((a) => a.family === 4);
    return { name, segment: nic.segment, mac, addresses, dhcp: nic.dhcp ?? !hasIpv4, derivedMac: nic.mac === undefined, configured: nic.addresses !== undefined || nic.dhcp !== undefined };
  });
  const names = resolved.map((n) => n.name);
  for (const name of new Set(names.filter((n, i) => names.indexOf(n) !== i))) problems.push(`two NICs are named ${name}; give each a different name`);
  return { nics: resolved, problems };
}

/**
 * cloud-init network configuration version 2 for `nics`, or nothing when none of them asks for
 * any (then the guest's image decides, as before NICs were configurable). Each NIC is matched by
 * MAC and renamed, so the configuration holds wherever the VM runs. The `yaml` library writes it
 * under YAML 1.1, the version cloud-init's parser reads: a value that would read as something else
 * (a MAC as a base-60 number, a search domain holding `: ` or a newline) is quoted, never spliced
 * in. MACs, addresses and IPv6 routes are double-quoted as before, so the bytes (and the seed
 * disk's name) stay what they were.
 */
export function networkConfig(nics: readonly ResolvedNic[]): string | undefined {
  if (!nics.some((nic) => nic.configured)) return undefined;
  const ethernets: Record<string, unknown> = {};
  for (const nic of nics) {
    const o = nic.segment.options;
    const statics = nic.addresses.length > 0;
    const routes: { to: unknown; via: unknown }[] = [];
    if (statics && o.gateway4 !== undefined && nic.addresses.some((a) => a.family === 4)) routes.push({ to: '0.0.0.0/0', via: o.gateway4 });
    if (statics && o.gateway6 !== undefined && nic.addresses.some((a) => a.family === 6)) routes.push({ to: quoted('::/0'), via: quoted(o.gateway6) });
    const nameservers = {
      ...(statics && (o.nameservers ?? []).length > 0 ? { addresses: o.nameservers!.map(quoted) } : {}),
      ...(statics && (o.searchDomains ?? []).length > 0 ? { search: [...o.searchDomains!] } : {}),
    };
    ethernets[nic.name] = {
      match: { macaddress: quoted(nic.mac) },
      'set-name': nic.name,
      dhcp4: nic.dhcp,
      ...(statics ? { addresses: nic.addresses.map((a) => quoted(a.toString())) } : {}),
      ...(routes.length > 0 ? { routes } : {}),
      ...(Object.keys(nameservers).length > 0 ? { nameservers } : {}),
    };
  }
  return new Document({ version: 2, ethernets }, { version: '1.1' }).toString({ indentSeq: true, lineWidth: 0 });
}

/** A string written in double quotes (YAML would also take it plain, but cloud-init's parser has read these quoted). */
function quoted(text: string): Scalar<string> {
  const node = new Scalar(text);
  node.type = Scalar.QUOTE_DOUBLE;
  return node;
}
