/**
 * The configuration files of one lab host, written into its own /etc/libvirt. Written from scratch
 * rather than copied from the machine's /etc/libvirt: Debian ships an autostarted `default` NAT network
 * there, and another test's system libvirtd may have defined domains in it.
 */

export interface HostConfigOptions {
  /** the first of the host's own TCP ports for each use; each range is PORTS_PER_HOST long */
  readonly ports: { readonly display: number; readonly websocket: number; readonly migration: number };
  /** the host's libvirt host UUID; migration refuses a destination with the source's own UUID */
  readonly hostUuid: string;
  /** the lease lockspace on the shared storage; leases are off when undefined */
  readonly lockspaceDir?: string;
}

/** File name (relative to /etc/libvirt) → content. */
export function hostConfigFiles(options: HostConfigOptions): Record<string, string> {
  const header = '# Written by test/lab: one libvirt host of a lab on a single machine.\n';
  const log = (daemon: string) => `log_outputs = "3:file:/var/log/libvirt/${daemon}.log"\n`;
  const files: Record<string, string> = {
    'libvirtd.conf':
      header +
      // Only root reaches the read-write socket, which the Terraform provider and virsh use.
      'unix_sock_group = "root"\n' +
      'unix_sock_ro_perms = "0777"\n' +
      'unix_sock_rw_perms = "0700"\n' +
      'auth_unix_ro = "none"\n' +
      'auth_unix_rw = "none"\n' +
      `host_uuid = "${options.hostUuid}"\n` +
      log('libvirtd'),
    'qemu.conf':
      header +
      // QEMU as root: with QEMU as libvirt-qemu, the root-only /dev/kvm makes libvirt throw away its
      // capabilities cache on every daemon start and re-probe QEMU (about 12 s per host).
      'user = "root"\n' +
      'group = "root"\n' +
      // All hosts share the machine's cgroup tree: the same domain on two hosts would collide there,
      // and libvirt would leave /sys/fs/cgroup/*/machine behind.
      'cgroup_controllers = [ ]\n' +
      // QEMU stays in the host's mount namespace, so stopHard and teardown find it there.
      'namespaces = [ ]\n' +
      // Owner bookkeeping in xattrs of shared disks goes stale when a host dies (NFS has no such xattrs either).
      'remember_owner = 0\n' +
      'vnc_listen = "127.0.0.1"\n' +
      'spice_listen = "127.0.0.1"\n' +
      // The hosts share the machine's ports. A libvirtd only checks that a port is free when it picks
      // it, so two hosts starting guests at once both took 5900 (the provider adds SPICE graphics by
      // default). Each host gets its own ranges.
      portRange('remote_display_port', options.ports.display) +
      portRange('websocket_port', options.ports.websocket) +
      portRange('migration_port', options.ports.migration) +
      (options.lockspaceDir !== undefined ? 'lock_manager = "lockd"\n' : ''),
    'virtlogd.conf': header + log('virtlogd'),
    'virtlockd.conf': header + log('virtlockd'),
  };
  if (options.lockspaceDir !== undefined) {
    files['qemu-lockd.conf'] =
      header +
      // Every writable disk gets an exclusive lease, named by the SHA-256 of its path, in the shared
      // lockspace. Two hosts therefore fence each other on any disk path, shared or not.
      'auto_disk_leases = 1\n' +
      `file_lockspace_dir = "${options.lockspaceDir}"\n`;
  }
  return files;
}

/** Ports of each kind a host gets: as many guests with graphics, and incoming migrations at once. */
export const PORTS_PER_HOST = 20;

function portRange(name: string, min: number): string {
  return `${name}_min = ${min}\n${name}_max = ${min + PORTS_PER_HOST - 1}\n`;
}
