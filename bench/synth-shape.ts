/**
 * What both sides of `npm run bench:synth` declare, as plain data, so the library stack and the
 * raw-bindings stack cannot drift apart. Imports neither the library nor cdktf.
 */

export const BENCH = {
  /** Hosts of the stack, unless the run names another number. */
  hosts: 50,
  racks: 5,
  cores: 256,
  memoryGiB: 1024,
  reservedMemoryGiB: 8,
  replicas: 3,
  sharedPool: 'shared',
  image: 'debian-12',
  imageSource: '/srv/images/debian-12-genericcloud-amd64.qcow2',
} as const;

export function benchHostName(i: number): string {
  return `kvm${String(i + 1).padStart(2, '0')}`;
}

/** The hosts argument of a child process (its fifth), else BENCH.hosts. */
export function benchHosts(arg: string | undefined): number {
  return arg === undefined ? BENCH.hosts : Number(arg);
}

/** Group g: nine in ten are 3-replica failover groups, the tenth a plain clustered VM. */
export function benchShape(g: number): { readonly group: boolean; readonly vcpus: number; readonly memoryMiB: number; readonly dataGiB: number } {
  return { group: g % 10 !== 9, vcpus: g % 4 === 0 ? 2 : 1, memoryMiB: g % 3 === 0 ? 1024 : 512, dataGiB: g % 2 === 0 ? 20 : 10 };
}

/** The cloud-init props of group g (the shape of the library's `CloudInitProps`). */
export function benchUserData(g: number): {
  readonly users: readonly { readonly name: string; readonly sshAuthorizedKeys: readonly string[]; readonly sudo: boolean; readonly groups: readonly string[] }[];
  readonly packages: readonly string[];
  readonly runCommands: readonly (readonly string[])[];
} {
  return {
    users: [{ name: 'ops', sshAuthorizedKeys: [`ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchKey${String(g % 97).padStart(4, '0')}Xx ops@bench`], sudo: true, groups: ['adm'] }],
    packages: ['qemu-guest-agent', g % 2 === 0 ? 'nginx' : 'postgresql'],
    runCommands: [['systemctl', 'enable', '--now', 'qemu-guest-agent']],
  };
}

/** Prints the child's result line: time since `start`, CPU time of the process, peak RSS. */
export function benchReport(side: string, vms: number, start: bigint): void {
  const usage = process.resourceUsage();
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  console.log(JSON.stringify({ side, vms, inProcessMs: Math.round(ms), cpuMs: Math.round((usage.userCPUTime + usage.systemCPUTime) / 1000), maxRssKiB: usage.maxRSS }));
}
