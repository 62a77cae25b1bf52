/**
 * The lab's power switch, and how to call its fence agent.
 *
 * A real site fences a host through its BMC (`fence_ipmilan`, `fence_redfish`, ... from fence-agents).
 * The lab's hosts are processes of this test runner, so their "BMC" is a unix socket the `Lab` serves
 * from the test process: `<root>/power.sock`, one request line per connection, one answer line back.
 *
 *   off h1    → ok | error <why>     the host's daemons and guests are SIGKILLed (`stopHard`); `ok` when already off
 *   on h1     → ok | error <why>     the host boots from its folders (`restart`); `ok` once virsh answers, or when already on
 *   status h1 → on | off | error <why>
 *   list      → ok h1=on h2=off
 *
 * Requests for one host are carried out one after the other. A request the switch has read is carried
 * out even when the agent that sent it is killed meanwhile, like a BMC that got the command.
 *
 * `test/lab/fence_lab` is the agent: it speaks fence-agents' stdin contract and this protocol.
 */
import { spawn } from 'child_process';
import { rmSync } from 'fs';
import { createServer, Server, Socket } from 'net';
import { join } from 'path';

/** The fence agent: an executable node script with no dependencies (`node <path>` runs it too). */
export const FENCE_AGENT = join(__dirname, 'fence_lab');

/** What a test can make the switch do wrong for one host. */
export type FenceFailure =
  /** `off`, `on` (and so `reboot`) answer `error fencing disabled by the test`; the host is not touched */
  | 'error'
  /** `off` and `on` are read but never answered nor carried out: the agent waits until its power_timeout, or until it is killed */
  | 'hang'
  /**
   * `off` and `on` answer `ok` and are not carried out (a wrong plug, a stand-in command): the agent
   * exits 0, and `status` keeps telling the truth (the host is still on)
   */
  | 'lie';

/** What the switch needs of a host. */
export interface PowerTarget {
  readonly name: string;
  isPoweredOn(): boolean;
  /** off; nothing when already off */
  powerOff(): Promise<void>;
  /** on, resolved once virsh answers; nothing when already on */
  powerOn(): Promise<void>;
}

/** One request the switch read, in the order they arrived. */
export interface PowerRequest {
  /** the request line, e.g. `off h1` */
  readonly request: string;
  /** the answer line; undefined while it is being carried out, and for ever when the host's fencing hangs */
  answer: string | undefined;
  /** when it arrived (Date.now()) */
  readonly at: number;
  /** how long it took to answer */
  ms: number | undefined;
}

const MAX_REQUEST_BYTES = 1024;

export class PowerSwitch {
  /** Listens on `path` (a unix socket); `hosts` are looked up by name on each request. */
  static async listen(path: string, hosts: readonly PowerTarget[]): Promise<PowerSwitch> {
    const power = new PowerSwitch(path, hosts);
    await new Promise<void>((resolve, reject) => {
      power.server.once('error', reject);
      power.server.listen(path, () => {
        power.server.off('error', reject);
        resolve();
      });
    });
    // The switch must not keep a test runner alive on its own.
    power.server.unref();
    return power;
  }

  /** Every request read, oldest first. */
  readonly requests: PowerRequest[] = [];
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly queues = new Map<string, Promise<void>>();
  private readonly failures = new Map<string, FenceFailure>();
  private closing = false;

  private constructor(
    readonly path: string,
    private readonly hosts: readonly PowerTarget[],
  ) {
    this.server = createServer((socket) => this.serve(socket));
  }

  setFailure(host: string, failure: FenceFailure | undefined): void {
    this.target(host); // throws for an unknown host
    if (failure === undefined) this.failures.delete(host);
    else this.failures.set(host, failure);
  }

  failure(host: string): FenceFailure | undefined {
    return this.failures.get(host);
  }

  /** Refuses new requests, waits for the ones being carried out, drops hanging ones, removes the socket. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    // close() stops listening at once, but calls back only when every connection has ended.
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    await Promise.allSettled([...this.queues.values()]);
    for (const socket of this.sockets) socket.destroy();
    await closed;
    rmSync(this.path, { force: true });
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined); // an agent killed mid-request
    socket.setEncoding('utf8');
    let received = '';
    const onData = (chunk: string): void => {
      received += chunk;
      const newline = received.indexOf('\n');
      if (newline < 0 && received.length <= MAX_REQUEST_BYTES) return;
      socket.off('data', onData);
      socket.off('end', onEnd);
      this.handle(socket, (newline < 0 ? received : received.slice(0, newline)).trim());
    };
    const onEnd = (): void => {
      socket.off('data', onData);
      this.handle(socket, received.trim());
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
  }

  private handle(socket: Socket, request: string): void {
    const entry: PowerRequest = { request, answer: undefined, at: Date.now(), ms: undefined };
    this.requests.push(entry);
    const reply = (answer: string): void => {
      entry.answer = answer;
      entry.ms = Date.now() - entry.at;
      if (!socket.destroyed) socket.end(`${answer}\n`);
    };
    if (this.closing) return reply('error the lab is being torn down');
    const [verb, name, ...rest] = request.split(/\s+/);
    if (verb === 'list' && name === undefined) {
      return reply(`ok ${this.hosts.map((h) => `${h.name}=${h.isPoweredOn() ? 'on' : 'off'}`).join(' ')}`);
    }
    if (!['on', 'off', 'status'].includes(verb) || name === undefined || rest.length > 0) {
      return reply(`error unknown request '${request.slice(0, 80)}': send 'off <host>', 'on <host>', 'status <host>' or 'list'`);
    }
    let host: PowerTarget;
    try {
      host = this.target(name);
    } catch (error) {
      return reply(`error ${(error as Error).message}`);
    }
    const failure = verb === 'status' ? undefined : this.failures.get(name);
    if (failure === 'error') return reply('error fencing disabled by the test');
    if (failure === 'hang') return; // read, never answered: the socket stays open until the agent gives up
    if (failure === 'lie') return reply('ok'); // said done, nothing done
    this.enqueue(name, async () => {
      try {
        if (verb === 'status') return reply(host.isPoweredOn() ? 'on' : 'off');
        if (verb === 'off') await host.powerOff();
        else await host.powerOn();
        reply('ok');
      } catch (error) {
        reply(`error ${String((error as Error).message ?? error).replace(/\s+/g, ' ')}`);
      }
    });
  }

  /** Runs `action` after every earlier request for the same host. */
  private enqueue(host: string, action: () => Promise<void>): void {
    const next = (this.queues.get(host) ?? Promise.resolve()).then(action, action);
    this.queues.set(host, next);
    void next.finally(() => {
      if (this.queues.get(host) === next) this.queues.delete(host);
    });
  }

  private target(name: string): PowerTarget {
    const host = this.hosts.find((h) => h.name === name);
    if (host === undefined) throw new Error(`no host ${name}; the hosts are ${this.hosts.map((h) => h.name).join(', ')}`);
    return host;
  }
}

/** What one run of the fence agent did. */
export interface FenceRun {
  /** the exit code; null when it was killed */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** wall time of the run */
  readonly ms: number;
}

/**
 * Runs the fence agent with `options` as `name=value` lines on its stdin, as a controller would, e.g.
 * `runFenceAgent({ action: 'off', plug: 'h1', socket: lab.powerSocket })`.
 *
 * It is asynchronous on purpose: the lab answers from the test process's event loop, so a synchronous
 * spawn (spawnSync, execFileSync) of the agent from the test process would wait for an answer that
 * cannot come until it returns.
 */
export function runFenceAgent(
  options: Readonly<Record<string, string>>,
  { timeoutMs = 120_000, onSpawn }: { timeoutMs?: number; onSpawn?: (pid: number) => void } = {},
): Promise<FenceRun> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FENCE_AGENT], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
    if (child.pid !== undefined) onSpawn?.(child.pid);
    child.stdin.on('error', () => undefined);
    child.stdin.end(Object.entries(options).map(([name, value]) => `${name}=${value}\n`).join(''));
  });
}
