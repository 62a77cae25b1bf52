/**
 * A corosync cluster for a lab: one corosync node per lab host plus one per controller, each in a
 * network namespace of its own that this module makes, all wired to a switch (a bridge in one
 * more namespace of ours) through veth pairs. Nothing of it touches the machine's network.
 *
 * - Each node has an address (10.77.0.N/24) on its `eth0`; corosync (knet over UDP, no crypto)
 *   runs there with `-f`, in a private mount namespace of its own (corosync's pid file
 *   /var/run/corosync.pid and libqb's /dev/shm files are per node), as our child, ended by pid.
 * - A host's node also serves its libvirt there: `qemu+tcp://10.77.0.N:16509/system`, relayed to
 *   the host's unix socket, so that a controller in its node's namespace probes the host over the
 *   cluster network: cutting a link cuts the probe as well as corosync.
 * - A host's corosync and relay follow its power: when the lab host is powered off (stopHard, a
 *   fence) they are SIGKILLed; when it is on again they start again.
 * - `partition([[...], [...]])` moves the nodes' switch ports onto one bridge per group (each group
 *   only hears itself); `mend()` puts every port back on the one switch; `cut(node)` is a group of one.
 *
 * `corosync-quorumtool` of a node: `cluster.quorumtool(node, '-s')`, or for a controller's config
 * `cluster.membershipCommand(node)` (an nsenter prefix). `cluster.inNode(node)` is the prefix that runs a
 * command (a controller) in the node's network namespace.
 */
import { ChildProcess, execFileSync, spawn } from 'child_process';
import { mkdirSync, openSync, closeSync, readFileSync, writeFileSync, existsSync } from 'fs';
import { join } from 'path';
import type { Lab } from './lab';
import { isRunning, sleep, waitFor } from './processes';

/** The port each host's libvirt relay listens on, in its node's namespace. */
export const LIBVIRT_TCP_PORT = 16509;

export interface CorosyncClusterOptions {
  /** The controllers' nodes, by name (one vote each, like a host). */
  readonly controllers: readonly string[];
  /**
   * corosync's token timeout, ms: how long until a silent node is lost.
   * @default 1000
   */
  readonly tokenMs?: number;
}

interface Node {
  readonly name: string;
  readonly id: number;
  readonly address: string;
  readonly port: string;
  readonly dir: string;
  /** `unshare --net`, our child: holds the node's network namespace */
  readonly holder: ChildProcess;
  /** the lab host it stands for (undefined: a controller's node) */
  readonly host?: string;
  corosync?: ChildProcess;
  relay?: ChildProcess;
}

/** Holder of a namespace: loopback up, then waits on its stdin (our pipe), as `cat` itself. */
const HOLDER = 'set -eu; ip link set dev lo up; : > "$1"; exec cat > /dev/null';

/** Relays each TCP connection to the host's libvirt unix socket. Plain node, no dependencies. */
const RELAY = `
const net = require('net');
const [address, port, socket] = process.argv.slice(1);
net.createServer((client) => {
  const upstream = net.connect(socket);
  client.pipe(upstream).pipe(client);
  const end = () => { client.destroy(); upstream.destroy(); };
  client.on('error', end); upstream.on('error', end); client.on('close', end); upstream.on('close', end);
}).listen(Number(port), address);
`;

export class CorosyncCluster {
  static async start(lab: Lab, options: CorosyncClusterOptions): Promise<CorosyncCluster> {
    const cluster = new CorosyncCluster(lab, options);
    try {
      await cluster.boot();
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  private readonly dir: string;
  private readonly nodes: Node[] = [];
  private switchHolder?: ChildProcess;
  private groups = 0;
  private following = true;
  private follower?: Promise<void>;

  private constructor(
    private readonly lab: Lab,
    private readonly options: CorosyncClusterOptions,
  ) {
    this.dir = join(lab.root, 'corosync');
  }

  /** The node names: the lab's hosts, then the controllers. */
  get names(): string[] {
    return this.nodes.map((n) => n.name);
  }

  /** A node's address on the cluster network. */
  address(node: string): string {
    return this.node(node).address;
  }

  /** A host's libvirt over the cluster network (relayed to its unix socket). */
  libvirtUri(host: string): string {
    return `qemu+tcp://${this.node(host).address}:${LIBVIRT_TCP_PORT}/system`;
  }

  /** The prefix that runs a command in the node's network namespace (a controller). */
  inNode(node: string): string[] {
    return ['nsenter', `--net=/proc/${this.node(node).holder.pid}/ns/net`, '--'];
  }

  /** The prefix that runs corosync's tools against the node's corosync (its network and mount namespaces). */
  membershipCommand(node: string): string[] {
    const pid = this.node(node).corosync?.pid;
    if (pid === undefined) throw new Error(`corosync of ${node} is not running`);
    return ['nsenter', '--target', String(pid), '--mount', '--net', '--'];
  }

  /** `corosync-quorumtool ARGS` on a node; its output (the tool exits 2 when not quorate). */
  quorumtool(node: string, ...args: string[]): string {
    const [command, ...rest] = [...this.membershipCommand(node), 'corosync-quorumtool', ...args];
    try {
      return execFileSync(command, rest, { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      const e = error as { stdout?: string; stderr?: string };
      if (e.stdout) return e.stdout;
      throw new Error(`corosync-quorumtool on ${node}: ${e.stderr ?? error}`);
    }
  }

  /** The members node `node` sees, sorted, and whether its partition is quorate. */
  view(node: string): { quorate: boolean; members: string[] } {
    const text = this.quorumtool(node, '-s', '-p');
    const members = [...(text.split(/^Membership information\s*$/m)[1] ?? '').matchAll(/^\s*\d+\s+\d+\s+(?:NR\s+|[A-Z,]+\s+)?(\S+)/gm)].map((m) => m[1]).sort();
    return { quorate: /^Quorate:\s+Yes/m.test(text), members };
  }

  /** Waits until every node listed sees exactly `members` (its own partition's). */
  async waitForView(nodes: readonly string[], members: readonly string[], timeoutMs = 30_000): Promise<void> {
    const wanted = [...members].sort().join(',');
    const seen = () => nodes.map((n) => `${n}: ${this.safeView(n)}`).join('; ');
    await waitFor(() => nodes.every((n) => this.safeView(n) === wanted), timeoutMs, () => `corosync views are not ${wanted}: ${seen()}`, 250);
  }

  private safeView(node: string): string {
    try {
      return this.view(node).members.join(',');
    } catch (error) {
      return `(${(error as Error).message.split('\n')[0]})`;
    }
  }

  /** Splits the switch: each group only hears itself; nodes in no group keep the main switch. */
  partition(groups: readonly (readonly string[])[]): void {
    for (const group of groups) {
      const bridge = `sw${++this.groups}`;
      this.inSwitch('ip', 'link', 'add', bridge, 'type', 'bridge');
      this.inSwitch('ip', 'link', 'set', 'dev', bridge, 'up');
      for (const name of group) this.inSwitch('ip', 'link', 'set', 'dev', this.node(name).port, 'master', bridge);
    }
  }

  /** Cuts one node's link: it hears nobody. */
  cut(node: string): void {
    this.partition([[node]]);
  }

  /** Every port back on the main switch; the group bridges are deleted. */
  mend(): void {
    for (const n of this.nodes) this.inSwitch('ip', 'link', 'set', 'dev', n.port, 'master', 'sw0');
    for (let i = 1; i <= this.groups; i++) {
      try {
        this.inSwitch('ip', 'link', 'del', 'dev', `sw${i}`);
      } catch {
        // deleted already
      }
    }
    this.groups = 0;
  }

  /** Ends every corosync and relay, then the namespace holders, each by pid. Safe to call twice. */
  async stop(): Promise<void> {
    this.following = false;
    await this.follower;
    for (const n of this.nodes) {
      await this.end(n.corosync);
      await this.end(n.relay);
      n.corosync = undefined;
      n.relay = undefined;
    }
    for (const holder of [...this.nodes.map((n) => n.holder), this.switchHolder]) await this.end(holder);
    this.switchHolder = undefined;
  }

  private node(name: string): Node {
    const node = this.nodes.find((n) => n.name === name);
    if (node === undefined) throw new Error(`no corosync node ${name}; the nodes are ${this.names.join(', ')}`);
    return node;
  }

  private inSwitch(...args: string[]): string {
    return execFileSync('nsenter', [`--net=/proc/${this.switchHolder!.pid}/ns/net`, '--', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }

  private async holder(name: string): Promise<ChildProcess> {
    const ready = join(this.dir, `${name}.ready`);
    const child = spawn('unshare', ['--net', '--', 'sh', '-c', HOLDER, 'holder', ready], { stdio: ['pipe', 'ignore', 'inherit'] });
    child.stdin!.on('error', () => undefined);
    await waitFor(() => existsSync(ready) || child.exitCode !== null, 10_000, () => `the namespace holder of ${name} did not get ready`);
    if (child.exitCode !== null || child.pid === undefined) throw new Error(`the namespace holder of ${name} exited ${child.exitCode}`);
    this.lab.record(child.pid, `corosync ${name} netns holder`);
    return child;
  }

  private async boot(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    this.switchHolder = await this.holder('switch');
    this.inSwitch('ip', 'link', 'add', 'sw0', 'type', 'bridge');
    this.inSwitch('ip', 'link', 'set', 'dev', 'sw0', 'up');
    const names = [...this.lab.hosts.map((h) => h.name), ...this.options.controllers];
    for (const [i, name] of names.entries()) {
      const holder = await this.holder(name);
      const node: Node = {
        name,
        id: i + 1,
        address: `10.77.0.${i + 1}`,
        port: `p-${name}`.slice(0, 15),
        dir: join(this.dir, name),
        holder,
        ...(i < this.lab.hosts.length ? { host: name } : {}),
      };
      mkdirSync(node.dir, { recursive: true });
      this.inSwitch('ip', 'link', 'add', node.port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', String(holder.pid));
      this.inSwitch('ip', 'link', 'set', 'dev', node.port, 'master', 'sw0', 'up');
      const inNode = (...args: string[]) => execFileSync('nsenter', [`--net=/proc/${holder.pid}/ns/net`, '--', ...args], { stdio: 'ignore' });
      inNode('ip', 'addr', 'add', `${node.address}/24`, 'dev', 'eth0');
      inNode('ip', 'link', 'set', 'dev', 'eth0', 'up');
      this.nodes.push(node);
    }
    for (const n of this.nodes) writeFileSync(join(n.dir, 'corosync.conf'), this.conf(n));
    for (const n of this.nodes) if (n.host === undefined || this.lab.host(n.host).isPoweredOn()) this.startNode(n);
    await this.waitForView(this.names, this.names, 60_000);
    this.follower = this.followPower();
  }

  private conf(n: Node): string {
    const nodes = this.nodes.map((x) => `  node {\n    ring0_addr: ${x.address}\n    name: ${x.name}\n    nodeid: ${x.id}\n    quorum_votes: 1\n  }`).join('\n');
    return `totem {
  version: 2
  cluster_name: cdktf-lab
  transport: knet
  crypto_cipher: none
  crypto_hash: none
  token: ${this.options.tokenMs ?? 1000}
}
nodelist {
${nodes}
}
quorum {
  provider: corosync_votequorum
}
logging {
  to_logfile: yes
  logfile: ${join(n.dir, 'corosync.log')}
  to_syslog: no
  to_stderr: no
  timestamp: on
}
system {
  state_dir: ${n.dir}
}
`;
  }

  private startNode(n: Node): void {
    const log = openSync(join(n.dir, 'corosync.out'), 'a');
    // nsenter and unshare exec (no fork): the child's pid is corosync's.
    n.corosync = spawn(
      'nsenter',
      [`--net=/proc/${n.holder.pid}/ns/net`, '--', 'unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', `mount -t tmpfs corosync-run /run && mount -t tmpfs corosync-shm /dev/shm && exec corosync -f -c ${join(n.dir, 'corosync.conf')}`],
      { stdio: ['ignore', log, log] },
    );
    if (n.corosync.pid !== undefined) this.lab.record(n.corosync.pid, `corosync ${n.name}`);
    if (n.host !== undefined) {
      n.relay = spawn('nsenter', [`--net=/proc/${n.holder.pid}/ns/net`, '--', process.execPath, '-e', RELAY, n.address, String(LIBVIRT_TCP_PORT), join(this.lab.host(n.host).dir, 'run', 'libvirt-sock')], { stdio: ['ignore', log, log] });
      if (n.relay.pid !== undefined) this.lab.record(n.relay.pid, `libvirt relay ${n.name}`);
    }
    closeSync(log);
  }

  /** A host's corosync and relay follow its power, checked every 100 ms. */
  private async followPower(): Promise<void> {
    while (this.following) {
      for (const n of this.nodes) {
        if (n.host === undefined) continue;
        const on = this.lab.host(n.host).isPoweredOn();
        const running = n.corosync !== undefined && n.corosync.exitCode === null && n.corosync.signalCode === null;
        if (!on && running) {
          n.corosync!.kill('SIGKILL'); // a power loss, not a clean leave
          n.relay?.kill('SIGKILL');
          n.corosync = undefined;
          n.relay = undefined;
        } else if (on && !running) {
          this.startNode(n);
        }
      }
      await sleep(100);
    }
  }

  /** Ends a child of ours by pid (SIGTERM, then SIGKILL after 5 s) and waits for it. */
  private async end(child: ChildProcess | undefined): Promise<void> {
    if (child === undefined || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await gone;
    clearTimeout(timer);
    child.stdin?.destroy();
  }

  /** The tail of a node's corosync log, for error messages. */
  log(node: string): string {
    const file = join(this.node(node).dir, 'corosync.log');
    return existsSync(file) ? readFileSync(file, 'utf8').split('\n').slice(-20).join('\n') : '';
  }

  /** Whether a node's corosync runs. */
  running(node: string): boolean {
    const pid = this.node(node).corosync?.pid;
    return pid !== undefined && isRunning(pid);
  }
}
