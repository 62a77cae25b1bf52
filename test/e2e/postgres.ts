/**
 * A throwaway PostgreSQL server for the remote-state tests: a fresh cluster (`initdb`) in a temp
 * folder, run as the `postgres` user, reachable only on a unix socket in that folder (no TCP), and
 * stopped by the postmaster's pid. Debian's `postgresql` package provides it (scripts/toolchain.sh).
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { waitFor } from './toolchain';

const OWNER = 'postgres';

/** Debian's server binaries, newest major version first. */
function binDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root) ? fs.readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  return versions.map((v) => path.join(root, v, 'bin')).find((d) => fs.existsSync(path.join(d, 'initdb')));
}

/** Why the PostgreSQL tests cannot run here, or undefined when they can. */
export function postgresMissing(): string | undefined {
  if (!binDir()) return 'no PostgreSQL server (/usr/lib/postgresql/<version>/bin/initdb): run scripts/toolchain.sh';
  try {
    execFileSync('id', ['-u', OWNER], { stdio: 'ignore' });
  } catch {
    return `no '${OWNER}' user to run the server as: run scripts/toolchain.sh`;
  }
  if (process.getuid?.() !== 0) return 'not root: the test runs the server as the postgres user';
  return undefined;
}


function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export class Postgres {
  /** initdb, start on a unix socket only, create `database`; resolves once it accepts connections. */
  public static async start(database = 'tfstate'): Promise<Postgres> {
    const bin = binDir();
    if (!bin) throw new Error(postgresMissing());
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-state-'));
    const server = new Postgres(bin, dir, database);
    try {
      execFileSync('chown', [OWNER, dir]);
      const asOwner = (cmd: string, ...args: string[]) => execFileSync('runuser', ['-u', OWNER, '--', path.join(bin, cmd), ...args], { cwd: dir, encoding: 'utf8' });
      asOwner('initdb', '--pgdata', server.dataDir, '--username', OWNER, '--auth', 'trust', '--no-sync', '--encoding', 'UTF8');
      // pg_ctl returns once the server accepts connections (-w); its pid is then in postmaster.pid.
      asOwner('pg_ctl', 'start', '-w', '-t', '60', '-D', server.dataDir, '-l', path.join(dir, 'server.log'), '-o', `-k ${dir} -c listen_addresses='' -c fsync=off`);
      await waitFor(() => server.pid() !== undefined, 'postmaster.pid');
      server.psql('postgres', `CREATE DATABASE ${database}`);
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  private constructor(
    private readonly bin: string,
    /** Holds the data folder, the socket and the server log. */
    public readonly dir: string,
    public readonly database: string,
  ) {}

  private get dataDir(): string {
    return path.join(this.dir, 'data');
  }

  /** A `postgres://` URL for PG_CONN_STR: the socket folder as `host`, no TLS on a local socket. */
  public get connStr(): string {
    return `postgres://${OWNER}@/${this.database}?host=${encodeURIComponent(this.dir)}&sslmode=disable`;
  }

  /** The postmaster's pid, from the first line of its pid file. */
  public pid(): number | undefined {
    try {
      const pid = Number(fs.readFileSync(path.join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /** Runs SQL through psql on the socket; returns the rows, unaligned, one per line. */
  public psql(database: string, sql: string): string {
    return execFileSync(path.join(this.bin, 'psql'), ['-h', this.dir, '-U', OWNER, '-d', database, '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql], { encoding: 'utf8' }).trim();
  }

  /** Fast shutdown of the postmaster (SIGINT to its pid), then removes the folder. */
  public async stop(): Promise<void> {
    const pid = this.pid();
    if (pid !== undefined && alive(pid)) {
      process.kill(pid, 'SIGINT');
      await waitFor(() => !alive(pid), `postgres (pid ${pid}) to stop`);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
