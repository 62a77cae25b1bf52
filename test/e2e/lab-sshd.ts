/**
 * An OpenSSH server in front of one lab host, so the host is reached as a remote host is:
 * `qemu+ssh://root@127.0.0.1:<port>/system?socket=<the host's libvirt socket>&...`. Each server has
 * its own host key and listens on loopback only; the test writes the known_hosts file the clients
 * check it against. Started by the test (`sshd -D`, its own child) and stopped by that pid.
 */
import { ChildProcess, execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { waitFor } from './toolchain';
import { LabHost } from '../lab/lab';

const SSHD = '/usr/sbin/sshd';
/** sshd's privilege-separation folder, fixed at build time; created here when missing. */
const PRIVSEP = '/run/sshd';

/** Why the SSH tests cannot run here, or undefined. */
export function sshMissing(): string | undefined {
  for (const [file, pkg] of [
    [SSHD, 'openssh-server'],
    ['/usr/bin/ssh', 'openssh-client'],
    ['/usr/bin/nc', 'netcat-openbsd'],
  ]) {
    if (!fs.existsSync(file)) return `no ${file} (${pkg}): run scripts/toolchain.sh`;
  }
  return undefined;
}

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}


/** The client side: one key pair, accepted by every server of the test. */
export class SshClientKey {
  public static create(dir: string): SshClientKey {
    const file = path.join(dir, 'client_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'cdktf-libvirt-cluster-test', '-f', file]);
    return new SshClientKey(file);
  }

  private constructor(public readonly file: string) {}

  public get publicKey(): string {
    return fs.readFileSync(`${this.file}.pub`, 'utf8').trim();
  }
}

export class LabSshd {
  private static createdPrivsep = false;

  /** Starts an sshd for `host` on a free loopback port; resolves once it listens. */
  public static async start(host: LabHost, dir: string, client: SshClientKey): Promise<LabSshd> {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!fs.existsSync(PRIVSEP)) {
      fs.mkdirSync(PRIVSEP, { mode: 0o755 });
      LabSshd.createdPrivsep = true;
    }
    const hostKey = path.join(dir, 'host_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `lab-${host.name}`, '-f', hostKey]);
    fs.writeFileSync(path.join(dir, 'authorized_keys'), `${client.publicKey}\n`);
    const port = await freeLoopbackPort();
    const config = path.join(dir, 'sshd_config');
    fs.writeFileSync(
      config,
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${hostKey}`,
        `PidFile ${path.join(dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
        'PermitRootLogin prohibit-password',
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'StrictModes no',
        // The provider opens a channel to the host's libvirt socket (direct-streamlocal); sshd
        // allows those only with local forwarding on.
        'AllowStreamLocalForwarding local',
        'AllowTcpForwarding local',
        'X11Forwarding no',
        '',
      ].join('\n'),
    );
    const log = fs.openSync(path.join(dir, 'sshd.log'), 'a');
    const child = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    const sshd = new LabSshd(host, dir, port, child);
    try {
      await waitFor(() => sshd.exited || fs.readFileSync(path.join(dir, 'sshd.log'), 'utf8').includes('Server listening'), `sshd for ${host.name}`, 15_000);
      if (sshd.exited) throw new Error(`sshd for ${host.name} exited: ${fs.readFileSync(path.join(dir, 'sshd.log'), 'utf8')}`);
    } catch (err) {
      await sshd.stop();
      throw err;
    }
    return sshd;
  }

  /** Removes sshd's privilege-separation folder if a server of this process created it and it is empty. */
  public static tidy(): void {
    if (!LabSshd.createdPrivsep) return;
    try {
      fs.rmdirSync(PRIVSEP);
      LabSshd.createdPrivsep = false;
    } catch {
      // not empty: another sshd uses it now
    }
  }

  private exited = false;

  private constructor(
    public readonly host: LabHost,
    public readonly dir: string,
    public readonly port: number,
    private readonly child: ChildProcess,
  ) {
    child.on('exit', () => (this.exited = true));
  }

  /** This server's line for a known_hosts file: `[127.0.0.1]:<port> ssh-ed25519 ...`. */
  public knownHostsLine(): string {
    const [type, key] = fs.readFileSync(path.join(this.dir, 'host_key.pub'), 'utf8').trim().split(/\s+/);
    return `[127.0.0.1]:${this.port} ${type} ${key}`;
  }

  /** The host key alone (`ssh-ed25519 AAAA...`), to forge a wrong known_hosts entry with. */
  public hostKey(): string {
    return this.knownHostsLine().split(' ').slice(1).join(' ');
  }

  /**
   * The URI the provider and virsh both use: the provider's SSH client reads `keyfile` and
   * `knownhosts`; virsh runs `command` (an ssh that checks the same known_hosts file strictly) and
   * `nc` on the far side (`proxy=netcat`) to reach `socket`.
   */
  public uri(client: SshClientKey, knownHosts: string): string {
    const ssh = path.join(path.dirname(knownHosts), `ssh-${path.basename(knownHosts)}`);
    fs.writeFileSync(
      ssh,
      `#!/bin/sh\nexec ssh -o UserKnownHostsFile=${knownHosts} -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes "$@"\n`,
      { mode: 0o755 },
    );
    const socket = /[?&]socket=([^&]+)/.exec(this.host.uri)![1];
    return `qemu+ssh://root@127.0.0.1:${this.port}/system?socket=${socket}&keyfile=${client.file}&knownhosts=${knownHosts}&command=${ssh}&proxy=netcat`;
  }

  /** Stops the server by its pid (SIGTERM) and waits for it to exit. */
  public async stop(): Promise<void> {
    if (!this.exited && this.child.pid !== undefined) {
      this.child.kill('SIGTERM');
      await waitFor(() => this.exited, `sshd (pid ${this.child.pid}) to exit`, 15_000);
    }
  }
}
