/**
 * A lab of several real libvirt hosts on this one machine, for end-to-end tests.
 *
 * Each host is a libvirtd + virtlogd (+ virtlockd) running in private mount, UTS and PID namespaces, in
 * which the host's own folders under the lab root are bound over /run/libvirt, /var/lib/libvirt,
 * /etc/libvirt, /var/log/libvirt and /var/cache/libvirt. Clients (virsh, the Terraform provider)
 * reach it from outside through its socket: `qemu:///system?socket=<root>/<host>/run/libvirt-sock`.
 * The machine's own libvirt folders and any system libvirtd are neither used nor touched.
 *
 * All hosts of a lab share one network namespace that the lab creates: loopback up, IPv6 off, and one
 * Linux bridge (`lab.bridge`) with no uplink and no address. Guests' taps, libvirt's bridges and
 * firewall rules, and migration traffic (tcp to 127.0.0.1) all stay in there; nothing a guest does
 * reaches the machine's own networks.
 */
import { ChildProcess, execFile, spawn, spawnSync } from 'child_process';
import { createHash, randomInt, randomUUID } from 'crypto';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'fs';
import { Socket } from 'net';
import { homedir, tmpdir } from 'os';
import { delimiter, join, resolve } from 'path';
import { promisify } from 'util';
import { HostConfigOptions, hostConfigFiles, PORTS_PER_HOST } from './host-config';
import { FENCE_AGENT, FenceFailure, PowerRequest, PowerSwitch, PowerTarget } from './power';
import {
  childrenOf,
  holdNamespace,
  isStillRunning,
  killInNamespace,
  LabProcess,
  namespaceOf,
  outerPid,
  pidsInNamespace,
  readPidFile,
  recordProcess,
  sleepSync,
  waitFor,
} from './processes';

export type { LabProcess } from './processes';
export type { FenceFailure, FenceRun, PowerRequest } from './power';
export { FENCE_AGENT, runFenceAgent } from './power';
export { isRunning, isStillRunning, pidsInNamespace } from './processes';

const execFileAsync = promisify(execFile);

export interface LabOptions {
  /** number of hosts, named h1, h2, ... */
  readonly hosts: number;
  /**
   * Parent folder of the lab's root folder.
   * @default - a fresh folder under the system temporary folder (/tmp)
   */
  readonly root?: string;
  /**
   * Disk leases: each host runs virtlockd with `lock_manager = "lockd"`, the lockspace on the shared folder,
   * so a disk in use on one host cannot be started on another.
   * @default true
   */
  readonly leases?: boolean;
}

/** One libvirt host of a lab. */
export interface LabHost {
  /** h1, h2, ... */
  readonly name: string;
  /** `qemu:///system?socket=<root>/<name>/run/libvirt-sock`: what virsh and the Terraform provider connect to */
  readonly uri: string;
  /** the host's folder under the lab root; its run/lib/etc/log/cache folders are the host's /run/libvirt, /var/lib/libvirt, ... */
  readonly dir: string;
  /** the host's mount namespace (`mnt:[…]`) while it is up; undefined after stopHard */
  readonly namespace: string | undefined;
  /** the host's PID namespace (`pid:[…]`) while it is up: its daemons and guests, and nothing else, live there */
  readonly pidNamespace: string | undefined;
  /** Runs `virsh -c uri ...args` and returns its stdout; throws with virsh's stderr when it fails. */
  virsh(...args: string[]): string;
  /** Whether the host's libvirtd answers. */
  isUp(): boolean;
  /**
   * Simulates the host's death: SIGKILLs its libvirtd, its QEMU guests and then the init of its PID
   * namespace (the kernel ends the rest), by pid. Everything on disk is kept; its disk leases are released.
   */
  stopHard(): Promise<void>;
  /** Boots the host again after stopHard, from the same folders, like a reboot; resolves once virsh answers. */
  restart(): Promise<void>;
  /** Whether the host is powered on (booted, its init running), whether or not it answers. */
  isPoweredOn(): boolean;
  /**
   * Makes the host stop answering without powering it off: SIGSTOPs its libvirtd by pid. virsh and the
   * provider then wait for an answer that does not come; its guests keep running, its leases stay held.
   * The fence agent can still power it off. Teardown thaws it first.
   */
  freeze(): void;
  /** SIGCONTs the libvirtd that freeze stopped: the host answers again. */
  thaw(): void;
  /**
   * SIGKILLs the host's libvirtd (by pid, in its namespace): the host stays up, its guests run on
   * (QEMU is not libvirtd's child), virsh is refused. Returns the pid it killed.
   */
  killLibvirtd(): number;
  /** Starts libvirtd again after killLibvirtd; resolves once it answers (it finds its running guests again). */
  startLibvirtd(): Promise<void>;
  /** Whether freeze stopped the host's libvirtd (until thaw, or until the host is powered off). */
  readonly frozen: boolean;
  /** Names of the domains that run on the host. */
  runningDomains(): string[];
  /** Names of all domains defined or running on the host. */
  domains(): string[];
  /** `virsh domstate` of a domain: `running`, `shut off`, ... */
  domainState(domain: string): string;
  /** The pid (as seen from the test) of a running domain's QEMU, from the host's /run/libvirt/qemu/<domain>.pid. */
  qemuPid(domain: string): number | undefined;
  /** A domain's NICs as `virsh domiflist` lists them. */
  interfaces(domain: string): DomainInterface[];
  /**
   * Where the host's `/var/log/libvirt/qemu/<domain>-console.log` is, as seen from the test: the
   * serial console log the library's `console.logToFile` and the test guest's XML ask libvirt for.
   */
  consoleLog(domain: string): string;
}

/** One row of `virsh domiflist`. */
export interface DomainInterface {
  /** the host-side device, e.g. `vnet0`; `-` while the domain does not run */
  readonly interface: string;
  /** `bridge`, `network`, ... */
  readonly type: string;
  /** the bridge or network name */
  readonly source: string;
  /** `virtio`, `e1000`, ... */
  readonly model: string;
  readonly mac: string;
}

/** Whether the lab can run here; when not, why. */
export function labPrerequisites(): { ok: true } | { ok: false; reason: string } {
  if (process.platform !== 'linux') return { ok: false, reason: `the lab needs Linux, not ${process.platform}` };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'the lab needs root (mount namespaces, libvirtd as root)' };
  const missing = REQUIRED_BINARIES.filter((name) => findBinary(name) === undefined);
  if (missing.length > 0) return { ok: false, reason: `missing ${missing.join(', ')} (run scripts/toolchain.sh)` };
  const missingDirs = Object.values(BOUND).filter((dir) => dir !== BOUND.run && !existsSync(dir));
  if (missingDirs.length > 0) return { ok: false, reason: `missing ${missingDirs.join(', ')}: is libvirt-daemon-system installed?` };
  const probe = spawnSync(binary('unshare'), ['--net', ...UNSHARE, 'true'], { encoding: 'utf8' });
  if (probe.status !== 0) return { ok: false, reason: `cannot create namespaces: ${(probe.stderr || String(probe.error)).trim()}` };
  return { ok: true };
}

export interface TinyDomainProps {
  readonly name: string;
  /** path of the qcow2 disk */
  readonly disk: string;
  readonly uuid?: string;
  /**
   * the disk's cache mode, e.g. `none`, what libvirt wants for migration on a shared file system. On a
   * plain folder such as `lab.sharedDir` libvirt still refuses to migrate without `--unsafe`.
   */
  readonly diskCache?: string;
  /** virtio NICs, each on a bridge (e.g. `lab.bridge`) with a fixed MAC */
  readonly interfaces?: readonly { readonly bridge: string; readonly mac: string }[];
}

/**
 * XML of a tiny guest: software-emulated (type='qemu'), 64 MiB, 1 vCPU, one qcow2 disk, no network
 * interface unless asked for, no graphics. With a blank disk it sits in the BIOS, which is enough to
 * prove provisioning.
 */
export function tinyDomainXml(props: TinyDomainProps): string {
  return [
    "<domain type='qemu'>",
    `  <name>${props.name}</name>`,
    props.uuid !== undefined ? `  <uuid>${props.uuid}</uuid>` : '',
    "  <memory unit='MiB'>64</memory>",
    '  <vcpu>1</vcpu>',
    "  <os><type arch='x86_64'>hvm</type></os>",
    '  <devices>',
    "    <disk type='file' device='disk'>",
    `      <driver name='qemu' type='qcow2'${props.diskCache !== undefined ? ` cache='${props.diskCache}'` : ''}/>`,
    `      <source file='${props.disk}'/>`,
    "      <target dev='vda' bus='virtio'/>",
    '    </disk>',
    ...(props.interfaces ?? []).flatMap((nic) => [
      "    <interface type='bridge'>",
      `      <source bridge='${nic.bridge}'/>`,
      `      <mac address='${nic.mac}'/>`,
      "      <model type='virtio'/>",
      '    </interface>',
    ]),
    "    <memballoon model='none'/>",
    '  </devices>',
    '</domain>',
    '',
  ]
    .filter((line) => line !== '')
    .join('\n');
}

/**
 * Several real libvirt hosts on this machine, with shared storage and disk-lease fencing, for
 * failover drills: kill a host with `stopHard`, watch what the others do, bring it back with `restart`.
 *
 * @example
 * const lab = await Lab.start({ hosts: 2 });
 * try {
 *   const disk = lab.createDisk('web');
 *   lab.host('h1').virsh('define', lab.writeFile('web.xml', tinyDomainXml({ name: 'web', disk })));
 *   lab.host('h1').virsh('start', 'web');
 *   await lab.host('h1').stopHard();
 * } finally {
 *   await lab.teardown();
 * }
 */
export class Lab {
  /** Creates the lab's folders and boots every host; resolves once every host's libvirtd answers. */
  static async start(options: LabOptions): Promise<Lab> {
    const prerequisites = labPrerequisites();
    if (!prerequisites.ok) throw new Error(`Lab.start: ${prerequisites.reason}`);
    if (!Number.isInteger(options.hosts) || options.hosts < 1 || options.hosts > MAX_HOSTS) {
      throw new Error(`Lab.start: hosts must be a whole number from 1 to ${MAX_HOSTS}, got ${options.hosts}`);
    }
    const parent = resolve(options.root ?? tmpdir());
    // Each host mounts a tmpfs over /run and its own folders over the other bound paths.
    const hidden = ['/run', ...Object.values(BOUND)].find((dir) => parent === dir || parent.startsWith(`${dir}/`));
    if (hidden !== undefined) {
      throw new Error(`Lab.start: root ${parent} lies under ${hidden}, which each host mounts over; use a folder under /tmp`);
    }
    mkdirSync(parent, { recursive: true });
    const lab = new Lab(mkdtempSync(join(parent, 'cdktf-lab-')), options.hosts, options.leases ?? true);
    try {
      await lab.boot();
    } catch (error) {
      await lab.teardown().catch(() => undefined);
      throw error;
    }
    return lab;
  }

  /** Everything the lab created lives under here. */
  readonly root: string;
  /** Shared storage: the same folder, at the same path, on every host. */
  readonly sharedDir: string;
  /** The disk-lease lockspace (under sharedDir), or undefined when leases are off. */
  readonly lockspaceDir: string | undefined;
  /**
   * The Linux bridge every host can put guests on (`<interface type='bridge'><source bridge='…'/>`): in
   * the lab's network namespace, no uplink, no address, IPv6 off. Each lab has its own namespace, so
   * every lab uses the same name.
   */
  readonly bridge = LAB_BRIDGE;
  readonly hosts: readonly LabHost[];
  /**
   * The lab's power switch, `<root>/power.sock`, served by this (the test) process from Lab.start to
   * teardown: the socket the fence agent (`FENCE_AGENT`, option `socket=`) powers hosts off and on through.
   */
  readonly powerSocket: string;
  private readonly members: readonly Host[];
  private readonly recorded = new Map<string, LabProcess>();
  private readonly bootNamespaces: string[] = [];
  /** `unshare --net`, our child: the process that holds the lab's network namespace */
  private netHolder: ChildProcess | undefined;
  private netHolderProcess: LabProcess | undefined;
  private netNs: string | undefined;
  private power: PowerSwitch | undefined;
  private tornDown = false;

  private constructor(root: string, hostCount: number, leases: boolean) {
    this.root = root;
    this.sharedDir = join(root, 'shared');
    this.lockspaceDir = leases ? join(this.sharedDir, 'locks') : undefined;
    this.powerSocket = join(root, 'power.sock');
    const members: Host[] = [];
    // A random block of ports for the lab: labs started by other test runs on the machine use others.
    const block = randomInt(PORT_BLOCKS) * MAX_HOSTS * PORTS_PER_HOST;
    for (let i = 1; i <= hostCount; i++) {
      const offset = block + (i - 1) * PORTS_PER_HOST;
      const ports = { display: 6000 + offset, websocket: 24000 + offset, migration: 42000 + offset };
      members.push(new Host(this, `h${i}`, join(root, `h${i}`), ports));
    }
    this.members = members;
    this.hosts = members;
    const socket = members[members.length - 1].socket;
    if (Buffer.byteLength(socket) > 107) {
      rmSync(root, { recursive: true, force: true });
      throw new Error(`Lab.start: socket path ${socket} is longer than the 107 bytes a unix socket allows; use a shorter root`);
    }
  }

  /** The lab's network namespace (`net:[…]`), shared by all its hosts, while the lab is up. */
  get netNamespace(): string | undefined {
    return this.netNs;
  }

  /**
   * Runs a command inside the lab's network namespace (`nsenter --net=…`) and returns its stdout,
   * e.g. `lab.inNetNamespace('ip', '-br', 'link')`; throws with its stderr when it fails.
   */
  inNetNamespace(command: string, ...args: string[]): string {
    const result = spawnSync(binary('nsenter'), [`--net=${this.netNamespacePath()}`, '--', findBinary(command) ?? command, ...args], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    const described = `${command} ${args.join(' ')} (in the lab's network namespace)`;
    if (result.error !== undefined) throw new Error(`${described}: ${result.error.message}`);
    if (result.status !== 0) throw new Error(`${described} failed: ${result.stderr.trim()}`);
    return result.stdout;
  }

  /** @internal `/proc/<holder>/ns/net`, once it is sure the holder is still the lab's own process. */
  netNamespacePath(): string {
    const holder = this.netHolderProcess;
    if (holder === undefined || this.netNs === undefined || !isStillRunning(holder) || namespaceOf(holder.pid, 'net') !== this.netNs) {
      throw new Error("Lab: the lab's network namespace is gone");
    }
    return `/proc/${holder.pid}/ns/net`;
  }

  /**
   * Makes fencing of a host fail, without touching the host: with `true` or `'error'` the power switch
   * answers `off` and `on` for it with `error fencing disabled by the test` (the agent exits 1); with
   * `'hang'` it reads them and never answers nor acts (the agent gives up after its power_timeout, or is
   * killed). `status` still answers. `false` makes fencing work again.
   */
  setFenceFailure(host: string, failure: boolean | FenceFailure): void {
    this.host(host);
    if (this.power === undefined) throw new Error('Lab.setFenceFailure: the power switch is not running');
    this.power.setFailure(host, failure === true ? 'error' : failure === false ? undefined : failure);
  }

  /**
   * How a controller fences `host` in this lab, in the shape of a fence-agents configuration: the agent's
   * argv (node and `test/lab/fence_lab`, absolute paths) and the options it reads on stdin besides `action`.
   */
  fenceConfig(host: string): { command: string[]; options: Record<string, string> } {
    this.host(host);
    return { command: [process.execPath, FENCE_AGENT], options: { plug: host, socket: this.powerSocket } };
  }

  /** Every request the power switch read, oldest first (`off h1`, its answer, how long it took). */
  powerRequests(): readonly PowerRequest[] {
    return this.power?.requests ?? [];
  }

  /**
   * Defines and starts a directory pool `name` at `target` on every host, as a site's shared pool
   * (e.g. NFS) exists beforehand; with `autostart`, it is back by itself after a host powers on.
   */
  defineSharedPool(name: string, target: string, options: { autostart?: boolean } = {}): void {
    for (const host of this.hosts) {
      host.virsh('pool-define-as', name, 'dir', '--target', target);
      if (options.autostart) host.virsh('pool-autostart', name);
      host.virsh('pool-start', name);
    }
  }

  /** The host named `name` (h1, h2, ...). */
  host(name: string): LabHost {
    const found = this.members.find((h) => h.name === name);
    if (found === undefined) throw new Error(`Lab: no host ${name}; the hosts are ${this.members.map((h) => h.name).join(', ')}`);
    return found;
  }

  /**
   * Where each running domain is, by host name, over `names`; throws when one runs on two hosts.
   * Hosts powered off or frozen, and hosts going down or coming up, are skipped.
   */
  whereRunning(names: readonly string[]): Record<string, string> {
    const found: Record<string, string> = {};
    for (const name of names) {
      const h = this.host(name);
      if (!h.isPoweredOn() || h.frozen) continue;
      let running: string[] = [];
      try {
        running = h.runningDomains();
      } catch {
        continue; // going down or coming up
      }
      for (const vm of running) {
        if (found[vm] !== undefined) throw new Error(`${vm} runs on ${found[vm]} and on ${name}`);
        found[vm] = name;
      }
    }
    return found;
  }

  /** Creates a blank qcow2 disk in the shared folder and returns its path. */
  createDisk(name: string, mebibytes = 64): string {
    const path = join(this.sharedDir, `${name}.qcow2`);
    run(binary('qemu-img'), ['create', '-q', '-f', 'qcow2', path, `${mebibytes}M`]);
    return path;
  }

  /** Writes a file (e.g. domain XML) into the lab root and returns its path. */
  writeFile(name: string, content: string): string {
    const path = join(this.root, name);
    writeFileSync(path, content);
    return path;
  }

  /** The lease file of a disk in the lockspace: its name is the SHA-256 of the disk's path as written in the domain XML. */
  leaseFile(diskPath: string): string {
    if (this.lockspaceDir === undefined) throw new Error('Lab.leaseFile: this lab runs without leases');
    return join(this.lockspaceDir, createHash('sha256').update(diskPath).digest('hex'));
  }

  /** The host whose virtlockd holds the lease on a disk, or undefined when nobody does. */
  leaseHolder(diskPath: string): LabHost | undefined {
    const file = this.leaseFile(diskPath);
    if (!existsSync(file)) return undefined;
    const inode = statSync(file).ino;
    for (const line of readFileSync('/proc/locks', 'utf8').split('\n')) {
      // "5: POSIX  ADVISORY  WRITE 15677 fe:00:9978530 0 0"; waiters are listed as "5: -> POSIX ..."
      const match = /^\d+: POSIX\s+ADVISORY\s+WRITE\s+(\d+)\s+[0-9a-f]+:[0-9a-f]+:(\d+)\s/.exec(line);
      if (match === null || Number(match[2]) !== inode) continue;
      const holder = this.members.find((h) => h.virtlockdPid() === Number(match[1]));
      if (holder !== undefined) return holder;
    }
    return undefined;
  }

  /** Every process the lab started or saw in a host's namespaces: unshare, the hosts' inits, daemons, QEMU guests. */
  processes(): LabProcess[] {
    return [...this.recorded.values()];
  }

  /**
   * The lab's network namespace, then the namespaces of every boot of every host, mount and PID (a host
   * gets new ones on each boot). The kernel reuses the ids of namespaces that are gone, so two boots may
   * list the same id.
   */
  namespaces(): string[] {
    return [...this.bootNamespaces];
  }

  /**
   * Destroys and undefines what the hosts still have (domains, networks, pools), ends every process of
   * every host by pid, deletes the lab's bridge, ends the holder of the lab's network namespace by pid,
   * waits for all these namespaces to vanish and removes the root folder. Safe to call twice.
   */
  async teardown(): Promise<void> {
    if (this.tornDown) return;
    this.tornDown = true;
    const errors: unknown[] = [];
    // First the power switch: no new power requests, and those under way finish before the hosts go.
    try {
      await this.power?.close();
    } catch (error) {
      errors.push(error);
    }
    for (const host of this.members) {
      try {
        await host.shutdown();
      } catch (error) {
        errors.push(error);
      }
    }
    try {
      await this.stopNetwork();
    } catch (error) {
      errors.push(error);
    }
    liveLabs.delete(this);
    const leftMounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((line) => line.includes(`${this.root}/`));
    if (leftMounts.length > 0) {
      errors.push(new Error(`Lab.teardown: mounts left in this namespace, root not removed:\n${leftMounts.join('\n')}`));
    } else {
      rmSync(this.root, { recursive: true, force: true });
    }
    if (errors.length > 0) throw new AggregateError(errors, `Lab.teardown: ${errors.map(String).join('; ')}`);
  }

  /** @internal */
  record(pid: number | undefined, role: string): void {
    if (pid === undefined) return;
    const proc = recordProcess(pid, role);
    // The first record names the process best ("h1 libvirtd" rather than "h1 process").
    if (proc !== undefined && !this.recorded.has(`${proc.pid}/${proc.startTime}`)) this.recorded.set(`${proc.pid}/${proc.startTime}`, proc);
  }

  /** @internal */
  recordNamespaces(...namespaces: string[]): void {
    this.bootNamespaces.push(...namespaces);
  }

  /** The 'exit' safety net: no awaiting here, only kills by pid and folder removal. */
  private killSync(): void {
    for (const host of this.members) host.killSync();
    // The bridge goes with the namespace once its last process is gone.
    this.killNetHolder();
    rmSync(this.root, { recursive: true, force: true });
  }

  /**
   * Creates the lab's network namespace: `unshare --net` runs a shell that brings loopback up and turns
   * IPv6 off (for `all` and `default`, so every device made later, the taps included, gets no link-local
   * address), then waits on its stdin like a host's init. Then the bridge, with IPv6 off too.
   */
  private async startNetwork(): Promise<void> {
    const ready = join(this.root, 'net.ready');
    const log = openSync(join(this.root, 'net.log'), 'a');
    const holder = spawn(binary('unshare'), ['--net', '--', '/bin/sh', '-c', NET_INIT, 'lab-net', ready, binary('ip')], {
      detached: true,
      stdio: ['pipe', log, log],
    });
    closeSync(log);
    this.netHolder = holder;
    const stdin = holder.stdin as Socket;
    stdin.on('error', () => undefined);
    stdin.unref();
    holder.unref();
    const exited = () => holder.exitCode !== null || holder.signalCode !== null;
    const tail = () => readFileSync(join(this.root, 'net.log'), 'utf8').trim();
    await waitFor(() => existsSync(ready) || exited(), 10_000, () => `Lab: the network namespace did not get ready: ${tail()}`);
    const proc = holder.pid === undefined || exited() ? undefined : recordProcess(holder.pid, 'lab netns holder');
    // Held open, so its id stays the lab's (see processes.ts).
    const netNs = proc === undefined ? undefined : holdNamespace(proc.pid, 'net');
    if (proc === undefined || netNs === undefined || netNs === namespaceOf('self', 'net')) {
      throw new Error(`Lab: the network namespace holder failed: ${tail()}`);
    }
    this.netHolderProcess = proc;
    this.netNs = netNs;
    this.record(proc.pid, proc.role);
    this.recordNamespaces(netNs);
    this.inNetNamespace('ip', 'link', 'add', this.bridge, 'type', 'bridge');
    // Already off through `default`; said again for this device, as the bridge must never send anything.
    if (ipv6Enabled()) this.inNetNamespace('sysctl', '-q', '-w', `net.ipv6.conf.${this.bridge}.disable_ipv6=1`);
    this.inNetNamespace('ip', 'link', 'set', 'dev', this.bridge, 'up');
  }

  /** Deletes the bridge by name, ends the holder by pid and waits for the namespace to empty. */
  private async stopNetwork(): Promise<void> {
    const netNs = this.netNs;
    const errors: string[] = [];
    if (netNs !== undefined) {
      try {
        this.inNetNamespace('ip', 'link', 'del', 'dev', this.bridge);
      } catch (error) {
        errors.push(String(error));
      }
    }
    this.killNetHolder();
    if (netNs !== undefined) {
      await waitFor(
        () => pidsInNamespace(netNs).length === 0,
        15_000,
        () => `Lab: processes left in the lab's network namespace ${netNs}: ${pidsInNamespace(netNs).join(', ')}`,
      );
    }
    if (errors.length > 0) throw new Error(`Lab.teardown: ${errors.join('; ')}`);
  }

  /** Ends the namespace holder, our child, by its pid, and only while it is still in the lab's namespace. */
  private killNetHolder(): void {
    const holder = this.netHolder;
    if (holder !== undefined && holder.exitCode === null && holder.signalCode === null && holder.pid !== undefined) {
      if (this.netNs !== undefined) killInNamespace(holder.pid, this.netNs);
      else holder.kill('SIGKILL');
    }
    holder?.stdin?.destroy();
    this.netHolder = undefined;
    this.netHolderProcess = undefined;
    this.netNs = undefined;
  }

  private async boot(): Promise<void> {
    liveLabs.add(this);
    installExitHandler();
    await this.startNetwork();
    this.power = await PowerSwitch.listen(this.powerSocket, this.members);
    mkdirSync(this.lockspaceDir ?? this.sharedDir, { recursive: true });
    for (const host of this.members) host.prepare(this.lockspaceDir);
    // A fresh libvirtd probes QEMU's capabilities (about 1.5 s): probe once, or reuse a previous lab's
    // probe, then hand the cache to the other hosts before they boot.
    const [first, ...others] = this.members;
    copyCapabilities(capabilitiesCacheDir(), first.capabilitiesDir);
    await first.boot();
    first.virsh('capabilities');
    copyCapabilities(first.capabilitiesDir, capabilitiesCacheDir());
    for (const host of others) copyCapabilities(first.capabilitiesDir, host.capabilitiesDir);
    // allSettled: a teardown after a failure must not race hosts that are still booting.
    const failed = (await Promise.allSettled(others.map((host) => host.boot()))).find((r) => r.status === 'rejected');
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
  }

  /** @internal */
  static killAllSync(): void {
    for (const lab of liveLabs) {
      try {
        lab.killSync();
      } catch {
        // best effort: the process is exiting
      }
    }
    liveLabs.clear();
  }
}

/** The standard paths each host mounts its own folder over, by folder name. */
const BOUND = {
  run: '/run/libvirt',
  lib: '/var/lib/libvirt',
  etc: '/etc/libvirt',
  log: '/var/log/libvirt',
  cache: '/var/cache/libvirt',
} as const;

/** At most this many hosts per lab; with PORT_BLOCKS, this keeps every port range in 6000-59999. */
const MAX_HOSTS = 20;
const PORT_BLOCKS = 45;

const UNSHARE = ['--mount', '--uts', '--pid', '--fork', '--mount-proc', '--propagation', 'private'];

/** The lab's bridge: at most 15 characters, the same in every lab since each lab has its own network namespace. */
const LAB_BRIDGE = 'cdktflab0';

/**
 * The holder of the lab's network namespace, run by `unshare --net`: loopback up, IPv6 off for every
 * device to come, then it waits for its stdin (a pipe from the test runner) to close, as `cat` itself
 * (exec), so the holder is this one process and ends by its pid.
 */
const NET_INIT = `set -eu
READY=$1; IP=$2
"$IP" link set dev lo up
if [ -d /proc/sys/net/ipv6 ]; then
  echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6
  echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6
fi
: > "$READY"
exec cat > /dev/null
`;

/**
 * The init of a host's PID namespace, run by `unshare`: it names the host, mounts the host's folders
 * over the standard paths, then waits for its stdin (a pipe from the test runner) to close. It reaps
 * the daemons and guests, which the machine's PID 1 does only every second or two (`virsh destroy`
 * waits for that); and when it ends, the kernel ends every process of the host. /run becomes a
 * tmpfs first: /run/libvirt may not exist on the machine, and another test's cleanup of the
 * machine's /run/libvirt must not detach this host's mount. /sys is mounted afresh, so libvirt sees
 * the network devices of the lab's namespace (its bridge) rather than the machine's; the machine's
 * cgroup hierarchy is carried over onto it, for QEMU's cgroups.
 */
const HOST_INIT = `set -eu
R=$1; NAME=$2
hostname "$NAME"
mount -t tmpfs -o mode=0755,size=64m lab-run /run
mkdir -p /run/libvirt /run/lock /run/lab-cgroup
mount --rbind /sys/fs/cgroup /run/lab-cgroup
mount -t sysfs lab-sys /sys
mount --move /run/lab-cgroup /sys/fs/cgroup
mount --bind "$R/run" /run/libvirt
mount --bind "$R/lib" /var/lib/libvirt
mount --bind "$R/etc" /etc/libvirt
mount --bind "$R/log" /var/log/libvirt
mount --bind "$R/cache" /var/cache/libvirt
: > "$R/init.ready"
cat > /dev/null || true
echo "stdin closed: the test runner is gone; ending host $NAME"
`;

class Host implements LabHost, PowerTarget {
  readonly uri: string;
  readonly socket: string;
  /** the libvirtd that freeze stopped */
  private stopped: LabProcess | undefined;
  /** `unshare`, our child; it waits for the host's init */
  private holder: ChildProcess | undefined;
  /** the init of the host's PID namespace, while the host is up */
  private init: LabProcess | undefined;
  private mountNs: string | undefined;
  private pidNs: string | undefined;

  constructor(
    private readonly lab: Lab,
    readonly name: string,
    readonly dir: string,
    private readonly ports: HostConfigOptions['ports'],
  ) {
    this.socket = join(dir, 'run', 'libvirt-sock');
    this.uri = `qemu:///system?socket=${this.socket}`;
  }

  get namespace(): string | undefined {
    return this.mountNs;
  }

  get pidNamespace(): string | undefined {
    return this.pidNs;
  }

  get frozen(): boolean {
    return this.stopped !== undefined;
  }

  get capabilitiesDir(): string {
    return join(this.dir, 'cache', 'qemu', 'capabilities');
  }

  private get runDir(): string {
    return join(this.dir, 'run');
  }

  virsh(...args: string[]): string {
    const result = spawnSync(binary('virsh'), ['-c', this.uri, ...args], { encoding: 'utf8', timeout: 120_000 });
    const command = `virsh -c ${this.uri} ${args.join(' ')}`;
    if (result.error !== undefined) throw new Error(`${command}: ${result.error.message}`);
    if (result.status !== 0) throw new Error(`${command} failed: ${result.stderr.trim()}`);
    return result.stdout;
  }

  isUp(): boolean {
    if (this.init === undefined) return false;
    return spawnSync(binary('virsh'), ['-c', this.uri, 'version'], { stdio: 'ignore', timeout: 5_000 }).status === 0;
  }

  runningDomains(): string[] {
    return lines(this.virsh('list', '--name', '--state-running'));
  }

  domains(): string[] {
    return lines(this.virsh('list', '--name', '--all'));
  }

  domainState(domain: string): string {
    return this.virsh('domstate', domain).trim();
  }

  qemuPid(domain: string): number | undefined {
    const pid = this.hostPid(join('qemu', `${domain}.pid`));
    this.lab.record(pid, `${this.name} qemu ${domain}`);
    return pid;
  }

  consoleLog(domain: string): string {
    return join(this.dir, 'log', 'qemu', `${domain}-console.log`);
  }

  interfaces(domain: string): DomainInterface[] {
    // " Interface   Type     Source      Model    MAC", a rule of dashes, then a row per NIC.
    return lines(this.virsh('domiflist', domain))
      .slice(2)
      .map((row) => {
        const [iface, type, source, model, mac] = row.split(/\s+/);
        return { interface: iface, type, source, model, mac };
      });
  }

  /** @internal */
  virtlockdPid(): number | undefined {
    return this.hostPid('virtlockd.pid');
  }

  async stopHard(): Promise<void> {
    const init = this.init;
    const pidNs = this.pidNs;
    if (init === undefined || pidNs === undefined) throw new Error(`${this.name}.stopHard: the host is already down`);
    const bridges = this.activeBridges();
    // libvirtd first: a live libvirtd would see its guests die and tidy up after them (release their
    // leases, mark them crashed), which a dead host cannot do.
    const libvirtd = this.hostPid('libvirtd.pid');
    this.lab.record(libvirtd, `${this.name} libvirtd`);
    if (libvirtd !== undefined) killInNamespace(libvirtd, pidNs);
    for (const domain of this.qemuPidFiles()) {
      const pid = this.qemuPid(domain);
      if (pid !== undefined) killInNamespace(pid, pidNs);
    }
    // The rest (virtlogd, virtlockd, helpers) ends with the namespace's init.
    for (const pid of pidsInNamespace(pidNs)) this.lab.record(pid, `${this.name} process`);
    killInNamespace(init.pid, pidNs);
    await waitFor(
      () => !isStillRunning(init) && pidsInNamespace(pidNs).length === 0 && this.holderExited(),
      15_000,
      () => `${this.name}: processes left in ${pidNs}: ${pidsInNamespace(pidNs).join(', ')}`,
    );
    this.forget();
    // Bridges of libvirt networks and their firewall rules live in the lab's network namespace: they
    // outlive the host, and would be in the way of its networks when it boots again.
    for (const bridge of bridges) {
      try {
        this.lab.inNetNamespace('ip', 'link', 'delete', 'dev', bridge);
      } catch {
        // not there
      }
      removeFirewallRules(this.lab, bridge);
    }
  }

  async restart(): Promise<void> {
    if (this.init !== undefined) throw new Error(`${this.name}.restart: the host is up; stopHard() it first`);
    await this.boot();
  }

  isPoweredOn(): boolean {
    return this.init !== undefined && isStillRunning(this.init);
  }

  /** For the power switch: stopHard, and nothing when already off. @internal */
  async powerOff(): Promise<void> {
    if (this.init !== undefined) await this.stopHard();
  }

  /** For the power switch: restart, and nothing when already on. @internal */
  async powerOn(): Promise<void> {
    if (this.isPoweredOn()) return;
    // An init that died on its own: clear what is left of that boot first.
    if (this.init !== undefined) await this.stopHard();
    await this.restart();
  }

  freeze(): void {
    const pidNs = this.pidNs;
    if (pidNs === undefined) throw new Error(`${this.name}.freeze: the host is down`);
    if (this.stopped !== undefined) return;
    const pid = this.hostPid('libvirtd.pid');
    const libvirtd = pid === undefined ? undefined : recordProcess(pid, `${this.name} libvirtd`);
    if (libvirtd === undefined || !killInNamespace(libvirtd.pid, pidNs, 'SIGSTOP')) throw new Error(`${this.name}.freeze: no libvirtd to stop`);
    this.lab.record(libvirtd.pid, libvirtd.role);
    this.stopped = libvirtd;
  }

  thaw(): void {
    const libvirtd = this.stopped;
    this.stopped = undefined;
    if (libvirtd !== undefined && this.pidNs !== undefined && isStillRunning(libvirtd)) killInNamespace(libvirtd.pid, this.pidNs, 'SIGCONT');
  }

  /** Creates the host's folders and configuration (once: a restart keeps them). @internal */
  prepare(lockspaceDir: string | undefined): void {
    for (const folder of Object.keys(BOUND)) mkdirSync(join(this.dir, folder), { recursive: true });
    for (const folder of ['images', 'qemu', 'boot']) mkdirSync(join(this.dir, 'lib', folder), { recursive: true });
    mkdirSync(join(this.dir, 'log', 'qemu'), { recursive: true });
    const files = hostConfigFiles({ ports: this.ports, hostUuid: randomUUID(), lockspaceDir });
    for (const [name, content] of Object.entries(files)) writeFileSync(join(this.dir, 'etc', name), content);
  }

  /** Boots the host in fresh namespaces, like a machine powering on: /run/libvirt starts empty. @internal */
  async boot(): Promise<void> {
    try {
      await this.bootSteps();
    } catch (error) {
      // A host that failed to boot is down, not half up.
      if (this.init !== undefined) await this.stopHard().catch(() => this.killSync());
      else this.killHolder();
      throw error;
    }
  }

  private async bootSteps(): Promise<void> {
    for (const entry of readdirSync(this.runDir)) rmSync(join(this.runDir, entry), { recursive: true, force: true });
    const ready = join(this.dir, 'init.ready');
    rmSync(ready, { force: true });
    const log = openSync(join(this.dir, 'init.log'), 'a');
    // nsenter joins the lab's network namespace and execs unshare, which makes the host's own namespaces.
    const net = `--net=${this.lab.netNamespacePath()}`;
    const holder = spawn(binary('nsenter'), [net, '--', binary('unshare'), ...UNSHARE, '--', '/bin/sh', '-c', HOST_INIT, 'lab-host-init', this.dir, this.name], {
      detached: true,
      stdio: ['pipe', log, log],
    });
    closeSync(log);
    this.holder = holder;
    // Nothing is ever written: the pipe only closes when the runner dies or the host is torn down.
    const stdin = holder.stdin as Socket;
    stdin.on('error', () => undefined);
    stdin.unref();
    holder.unref();
    this.lab.record(holder.pid, `${this.name} unshare`);
    await waitFor(
      () => existsSync(ready) || this.holderExited(),
      10_000,
      () => `${this.name}: the host's init did not get ready: ${this.tail('init.log')}`,
    );
    const initPid = holder.pid === undefined ? undefined : childrenOf(holder.pid)[0];
    const init = initPid === undefined ? undefined : recordProcess(initPid, `${this.name} init`);
    if (this.holderExited() || init === undefined) throw new Error(`${this.name}: the host's init failed: ${this.tail('init.log')}`);
    const mountNs = namespaceOf(init.pid, 'mnt');
    // Held open, so its id stays this boot's (see processes.ts).
    const pidNs = holdNamespace(init.pid, 'pid');
    if (mountNs === undefined || pidNs === undefined || mountNs === namespaceOf('self', 'mnt') || pidNs === namespaceOf('self', 'pid')) {
      throw new Error(`${this.name}: the host's init ${init.pid} is not in namespaces of its own`);
    }
    if (namespaceOf(init.pid, 'net') !== this.lab.netNamespace) {
      throw new Error(`${this.name}: the host's init ${init.pid} is not in the lab's network namespace ${this.lab.netNamespace}`);
    }
    this.init = init;
    this.mountNs = mountNs;
    this.pidNs = pidNs;
    this.lab.record(init.pid, init.role);
    this.lab.recordNamespaces(mountNs, pidNs);

    const daemons = ['virtlogd', ...(this.lab.lockspaceDir !== undefined ? ['virtlockd'] : []), 'libvirtd'];
    for (const daemon of daemons) await this.startDaemon(init.pid, daemon);
    await waitFor(() => this.isUp(), 30_000, () => `${this.name}: libvirtd does not answer on ${this.socket}: ${this.tail('log/libvirtd.log')}`, 50);
  }

  /** Starts one of the host's daemons in its namespaces and waits for its pid file. */
  private async startDaemon(initPid: number, daemon: string): Promise<void> {
    const pidFile = join(this.runDir, `${daemon}.pid`);
    try {
      await execFileAsync(binary('nsenter'), ['--target', String(initPid), '--mount', '--uts', '--pid', '--net', '--', binary(daemon), '--daemon', '--pid-file', pidFile], { timeout: 30_000 });
    } catch (error) {
      throw new Error(`${this.name}: ${daemon} did not start: ${(error as { stderr?: string }).stderr ?? error} ${this.tail(`log/${daemon}.log`)}`);
    }
    await waitFor(() => this.hostPid(`${daemon}.pid`) !== undefined, 10_000, () => `${this.name}: ${daemon} wrote no pid file ${pidFile}`);
    this.lab.record(this.hostPid(`${daemon}.pid`), `${this.name} ${daemon}`);
  }

  killLibvirtd(): number {
    const pidNs = this.pidNs;
    if (pidNs === undefined) throw new Error(`${this.name}.killLibvirtd: the host is down`);
    if (this.stopped !== undefined) throw new Error(`${this.name}.killLibvirtd: libvirtd is frozen; thaw it first`);
    const pid = this.hostPid('libvirtd.pid');
    if (pid === undefined || !killInNamespace(pid, pidNs, 'SIGKILL')) throw new Error(`${this.name}.killLibvirtd: no libvirtd to kill`);
    return pid;
  }

  async startLibvirtd(): Promise<void> {
    if (this.init === undefined) throw new Error(`${this.name}.startLibvirtd: the host is down`);
    const old = this.hostPid('libvirtd.pid');
    if (old !== undefined && this.pidNs !== undefined) await waitFor(() => !pidsInNamespace(this.pidNs!).includes(old), 10_000, () => `${this.name}: the old libvirtd ${old} is still there`);
    rmSync(join(this.runDir, 'libvirtd.pid'), { force: true });
    await this.startDaemon(this.init.pid, 'libvirtd');
    await waitFor(() => this.isUp(), 30_000, () => `${this.name}: libvirtd does not answer on ${this.socket}: ${this.tail('log/libvirtd.log')}`, 50);
  }

  /** Teardown of one host: remove what libvirt set up outside the lab root, then end every process. @internal */
  async shutdown(): Promise<void> {
    if (this.init === undefined) {
      this.killHolder();
      return;
    }
    this.thaw();
    if (this.isUp()) {
      for (const domain of this.domains()) {
        this.tryVirsh('destroy', domain);
        this.tryVirsh('undefine', '--managed-save', '--snapshots-metadata', '--checkpoints-metadata', '--nvram', domain) ||
          this.tryVirsh('undefine', domain);
      }
      // Networks own bridges and firewall rules in the lab's network namespace.
      for (const network of lines(this.tryVirsh('net-list', '--all', '--name') || '')) {
        this.tryVirsh('net-destroy', network);
        this.tryVirsh('net-undefine', network);
      }
      for (const pool of lines(this.tryVirsh('pool-list', '--all', '--name') || '')) {
        this.tryVirsh('pool-destroy', pool);
        this.tryVirsh('pool-undefine', pool);
      }
    }
    await this.stopHard();
  }

  /** Ends the host without waiting on the event loop: for the process 'exit' safety net. @internal */
  killSync(): void {
    const init = this.init;
    const pidNs = this.pidNs;
    if (init !== undefined && pidNs !== undefined) {
      if (isStillRunning(init)) killInNamespace(init.pid, pidNs);
      const deadline = Date.now() + 3_000;
      while (pidsInNamespace(pidNs).length > 0 && Date.now() < deadline) sleepSync(20);
    }
    this.killHolder();
  }

  /** The pid, as seen from here, of a process of this host whose pid file is `file` under its /run/libvirt. */
  private hostPid(file: string): number | undefined {
    const inner = readPidFile(join(this.runDir, file));
    return inner === undefined || this.pidNs === undefined ? undefined : outerPid(inner, this.pidNs);
  }

  private holderExited(): boolean {
    const holder = this.holder;
    return holder === undefined || holder.exitCode !== null || holder.signalCode !== null;
  }

  private forget(): void {
    this.holder?.stdin?.destroy();
    this.holder = undefined;
    this.stopped = undefined;
    this.init = undefined;
    this.mountNs = undefined;
    this.pidNs = undefined;
  }

  /** `unshare` is our child: if booting failed before its init was known, end it (its init ends with it). */
  private killHolder(): void {
    const holder = this.holder;
    if (holder !== undefined && !this.holderExited()) {
      for (const child of holder.pid === undefined ? [] : childrenOf(holder.pid)) {
        const pidNs = namespaceOf(child, 'pid');
        if (pidNs !== undefined && pidNs !== namespaceOf('self', 'pid')) killInNamespace(child, pidNs);
      }
      holder.kill('SIGKILL');
    }
    this.forget();
  }

  private qemuPidFiles(): string[] {
    const dir = join(this.runDir, 'qemu');
    if (!existsSync(dir)) return [];
    // driver.pid is libvirtd's own pid file for its QEMU driver.
    return readdirSync(dir)
      .filter((file) => file.endsWith('.pid') && file !== 'driver.pid')
      .map((file) => file.slice(0, -'.pid'.length));
  }

  /** Bridges of the host's active networks, from libvirt's status files in /run/libvirt/network. */
  private activeBridges(): string[] {
    const dir = join(this.runDir, 'network');
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .filter((file) => file.endsWith('.xml'))
      .flatMap((file) => [...readFileSync(join(dir, file), 'utf8').matchAll(/<bridge name=['"]([^'"]+)['"]/g)].map((m) => m[1]));
  }

  private tryVirsh(...args: string[]): string | false {
    try {
      return this.virsh(...args);
    } catch {
      return false;
    }
  }

  private tail(file: string): string {
    try {
      return readFileSync(join(this.dir, file), 'utf8').trim().split('\n').slice(-5).join('\n');
    } catch {
      return '';
    }
  }
}

const REQUIRED_BINARIES = ['libvirtd', 'virtlogd', 'virtlockd', 'virsh', 'qemu-system-x86_64', 'qemu-img', 'unshare', 'nsenter', 'mount', 'hostname', 'ip', 'sysctl'];
const SEARCH_PATH = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/bin', '/bin'].filter((dir) => dir !== '');

function findBinary(name: string): string | undefined {
  return SEARCH_PATH.map((dir) => join(dir, name)).find((path) => existsSync(path));
}

function binary(name: string): string {
  const path = findBinary(name);
  if (path === undefined) throw new Error(`Lab: ${name} not found in ${SEARCH_PATH.join(':')}`);
  return path;
}

function run(command: string, args: string[]): void {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${(result.stderr || String(result.error)).trim()}`);
}

function lines(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
}

/** Removes the rules libvirt added to the lab namespace's firewall for a network's bridge (what net-destroy would do). */
function removeFirewallRules(lab: Lab, bridge: string): void {
  for (const tool of ['iptables', 'ip6tables']) {
    if (findBinary(tool) === undefined) continue;
    for (const table of ['filter', 'nat', 'mangle']) {
      let listing: string;
      try {
        listing = lab.inNetNamespace(tool, '-w', '-t', table, '-S');
      } catch {
        continue;
      }
      for (const rule of lines(listing)) {
        // libvirt's rules: "-A LIBVIRT_INP -i virbr1 -p udp -m udp --dport 53 -j ACCEPT"
        const words = rule.split(' ');
        if (words[0] !== '-A' || !words[1].startsWith('LIBVIRT_')) continue;
        const interfaces = words.filter((_, i) => words[i - 1] === '-i' || words[i - 1] === '-o');
        if (!interfaces.includes(bridge)) continue;
        try {
          lab.inNetNamespace(tool, '-w', '-t', table, '-D', ...words.slice(1));
        } catch {
          // gone meanwhile
        }
      }
    }
  }
}

function ipv6Enabled(): boolean {
  return existsSync('/proc/sys/net/ipv6');
}

/** Where QEMU capabilities probed by one lab are kept for the next (libvirt re-probes a stale entry itself). */
function capabilitiesCacheDir(): string {
  const cache = process.env.LIBVIRT_CLUSTER_CACHE ?? join(homedir(), '.cache', 'cdktf-libvirt-cluster');
  return join(cache, 'libvirt-lab', 'qemu-capabilities');
}

function copyCapabilities(from: string, to: string): void {
  if (!existsSync(from)) return;
  mkdirSync(to, { recursive: true });
  for (const file of readdirSync(from).filter((f) => f.endsWith('.xml'))) {
    // Through a temporary name: another lab may read the shared cache at the same time.
    const temporary = join(to, `.${file}.${process.pid}`);
    copyFileSync(join(from, file), temporary);
    renameSync(temporary, join(to, file));
  }
}

const liveLabs = new Set<Lab>();
let exitHandlerInstalled = false;

/**
 * If the test runner exits without a teardown, end the labs' hosts and remove their folders. A runner
 * killed outright cannot do this; then each host's init sees its stdin close and ends its host (the
 * folder under /tmp stays).
 */
function installExitHandler(): void {
  if (exitHandlerInstalled) return;
  exitHandlerInstalled = true;
  process.on('exit', () => Lab.killAllSync());
}
