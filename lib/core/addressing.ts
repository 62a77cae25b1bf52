/**
 * IP addresses with a prefix (`192.0.2.10/24`, `2001:db8::10/64`) and MAC addresses, as values:
 * parsed once, compared exactly, printed in one canonical form. Pure: no construct, no I/O.
 */
import { createHash } from 'crypto';

/** An interface address with its prefix length, e.g. `192.0.2.10/24`. */
export class InterfaceAddress {
  /**
   * Parses `address/prefix`; the prefix is required (it tells the guest its subnet).
   * @returns the address, or a sentence saying what is wrong with `text`
   */
  public static parse(text: string): InterfaceAddress | string {
    const slash = text.indexOf('/');
    if (slash < 0) return `'${text}' has no prefix length; write it as address/prefix, e.g. 192.0.2.10/24 or 2001:db8::10/64`;
    const ip = text.slice(0, slash);
    const prefixText = text.slice(slash + 1);
    const family = ip.includes(':') ? 6 : 4;
    const value = family === 4 ? parseIpv4(ip) : parseIpv6(ip);
    if (value === undefined) return `'${ip}' is not an IPv${family} address`;
    const bits = family === 4 ? 32 : 128;
    const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
    if (!(prefix >= 0 && prefix <= bits)) return `'${text}' has prefix /${prefixText}; an IPv${family} prefix is 0 to ${bits}`;
    return new InterfaceAddress(family, value, prefix);
  }

  private constructor(
    /** 4 or 6. */
    public readonly family: 4 | 6,
    /** The address as an unsigned integer. */
    private readonly value: bigint,
    /** The prefix length. */
    public readonly prefix: number,
  ) {}

  private get bits(): number {
    return this.family === 4 ? 32 : 128;
  }

  /** The address without its prefix, canonical (IPv6 compressed, lower case). */
  public get ip(): string {
    return this.family === 4 ? formatIpv4(this.value) : formatIpv6(this.value);
  }

  /** The network this address is in: the address with its host bits cleared. */
  public get network(): InterfaceAddress {
    const hostBits = BigInt(this.bits - this.prefix);
    return new InterfaceAddress(this.family, (this.value >> hostBits) << hostBits, this.prefix);
  }

  /** Whether `other` (an address) lies inside this address's network. */
  public contains(other: InterfaceAddress): boolean {
    if (other.family !== this.family) return false;
    const hostBits = BigInt(this.bits - this.prefix);
    return other.value >> hostBits === this.value >> hostBits;
  }

  /** The address `n` after this one, same prefix; undefined past the end of the address space. */
  public plus(n: number): InterfaceAddress | undefined {
    const next = this.value + BigInt(n);
    return next < 1n << BigInt(this.bits) ? new InterfaceAddress(this.family, next, this.prefix) : undefined;
  }

  /** `ip/prefix`, canonical. */
  public toString(): string {
    return `${this.ip}/${this.prefix}`;
  }
}

/** Parses a bare IP (no prefix), e.g. a gateway or a name server. */
export function parseIp(text: string): InterfaceAddress | string {
  if (text.includes('/')) return `'${text}' is a bare address: leave the /prefix out`;
  return InterfaceAddress.parse(`${text}/${text.includes(':') ? 128 : 32}`);
}

const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

/**
 * Checks a MAC address given by a user: six colon-separated hex bytes, unicast (a guest NIC can
 * not have a multicast address).
 * @returns the canonical lower-case form, or what is wrong
 */
export function parseMac(text: string): { readonly mac: string } | { readonly problem: string } {
  const mac = text.toLowerCase();
  if (!MAC.test(mac)) return { problem: `'${text}' is not a MAC address like 52:54:00:12:34:56` };
  if (/^(00:){5}00$/.test(mac)) return { problem: `MAC ${text} is all zeros, which no NIC can use; give another, or leave mac out to derive one` };
  if ((parseInt(mac.slice(0, 2), 16) & 1) === 1) return { problem: `MAC ${text} is a multicast address (lowest bit of the first byte set); a NIC needs a unicast one` };
  return { mac };
}

/**
 * A MAC address derived from `seed` (stack, VM and NIC names): the same seed always gives the same
 * address, so a recreated or moved VM keeps it. `52:54` (libvirt's usual prefix, a locally
 * administered unicast address) followed by 32 bits of SHA-256: a collision among 1,000 NICs has a
 * chance of about 1 in 10,000, and synth reports any collision in a stack.
 */
export function deriveMac(seed: string): string {
  const digest = createHash('sha256').update(seed).digest();
  return ['52', '54', ...[...digest.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

function parseIpv4(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255)) return undefined;
  return parts.reduce((acc, p) => (acc << 8n) | BigInt(p), 0n);
}

function parseIpv6(text: string): bigint | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(text) || text.split('::').length > 2) return undefined;
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  let left = groups(head);
  let right = tail === undefined ? [] : groups(tail);
  // An embedded IPv4 tail (::ffff:192.0.2.1) counts as two groups.
  const last = (tail === undefined ? left : right).at(-1);
  if (last?.includes('.')) {
    const v4 = parseIpv4(last);
    if (v4 === undefined) return undefined;
    const asGroups = [(v4 >> 16n).toString(16), (v4 & 0xffffn).toString(16)];
    if (tail === undefined) left = [...left.slice(0, -1), ...asGroups];
    else right = [...right.slice(0, -1), ...asGroups];
  }
  const missing = 8 - left.length - right.length;
  if (tail === undefined ? missing !== 0 : missing < 1) return undefined;
  const all = [...left, ...Array<string>(tail === undefined ? 0 : missing).fill('0'), ...right];
  if (!all.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  return all.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function formatIpv4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join('.');
}

/** RFC 5952: lower case, leading zeros dropped, the longest run of two or more zero groups as `::`. */
function formatIpv6(value: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(112 - 16 * i)) & 0xffffn));
  let best = { start: -1, length: 0 };
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.length && j - i >= 2) best = { start: i, length: j - i };
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.start < 0) return hex.join(':');
  return `${hex.slice(0, best.start).join(':')}::${hex.slice(best.start + best.length).join(':')}`;
}
