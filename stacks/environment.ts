/**
 * How the example stacks learn where their hosts are, so one file serves a laptop synth, the
 * real-libvirt drills and a copy in a user's repo. Everything here is optional.
 *
 *   LIBVIRT_HOSTS        name=uri pairs, comma-separated, e.g. h1=qemu:///system?socket=/tmp/h1.sock
 *   LIBVIRT_DOMAIN_TYPE  kvm or qemu (default: kvm where /dev/kvm exists)
 *   LIBVIRT_SHARED_PATH  path of the shared pool on every host (default /srv/vmstore)
 *   LIBVIRT_BRIDGE       the Linux bridge every host has for the LAN segment (default br0)
 *   LIBVIRT_IMAGE        a bootable qcow2 file the VMs boot (default: a blank disk that boots nothing)
 *   LIBVIRT_CONSOLE_LOG  1: copy every VM's serial console to /var/log/libvirt/qemu/<vm>-console.log
 *                        on its host (default: off)
 */
import { DomainType, detectDomainType, Image, Size } from '../lib';

export interface StackEnvironment {
  readonly domainType: DomainType;
  /** The connection URI of host `name`, or `fallback` when the environment does not say. */
  uri(name: string, fallback: string): string;
  readonly sharedPath: string;
  /** The Linux bridge every host has for the LAN. */
  readonly bridge: string;
  /** The image the example VMs boot. */
  readonly image: Image;
  /** Whether the VMs copy their serial console to a file on their host. */
  readonly consoleLog: boolean;
}

export function stackEnvironment(env: NodeJS.ProcessEnv = process.env): StackEnvironment {
  const uris = new Map<string, string>();
  for (const pair of (env.LIBVIRT_HOSTS ?? '').split(',').filter((p) => p.trim() !== '')) {
    const at = pair.indexOf('=');
    if (at < 1) throw new Error(`LIBVIRT_HOSTS entry '${pair}' is not name=uri`);
    uris.set(pair.slice(0, at).trim(), pair.slice(at + 1).trim());
  }
  return {
    domainType: detectDomainType(env),
    uri: (name, fallback) => uris.get(name) ?? fallback,
    sharedPath: env.LIBVIRT_SHARED_PATH ?? '/srv/vmstore',
    bridge: env.LIBVIRT_BRIDGE ?? 'br0',
    image: env.LIBVIRT_IMAGE ? Image.fromFile('guest', env.LIBVIRT_IMAGE) : Image.blank('blank', Size.mebibytes(64)),
    consoleLog: env.LIBVIRT_CONSOLE_LOG === '1',
  };
}
