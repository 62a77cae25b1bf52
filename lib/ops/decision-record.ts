/**
 * Where a stack's decision record (lib/core/decision-record.ts) is kept: in the stack's own state
 * backend, beside its Terraform state and the controllers' mutex, so that whoever can deploy the
 * stack sees it.
 *
 * - `pg` backend: the table `cdktf_libvirt_cluster_decisions` in the stack's schema (the one
 *   holding `states`), one row, reached with `psql` and the backend's connection (PG_CONN_STR, or
 *   libpq's PGHOST, PGUSER... as the engine reads them). Every write is one statement that
 *   succeeds only if the row still has the revision the writer read (compare-and-set), so two
 *   controllers never overwrite each other's decisions.
 * - `local` backend: the file `<state file>.decisions.json` beside the state (one machine),
 *   replaced atomically (temporary file and rename) under a lock directory.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { DecisionRecord, parseRecord } from '../core/decision-record';

/** The table holding a stack's record, in the stack's PostgreSQL schema. */
export const RECORD_TABLE = 'cdktf_libvirt_cluster_decisions';

/** A stack's record, read and written where the stack keeps its state. */
export interface DecisionStore {
  /** Where the record is, for messages. */
  readonly where: string;
  /** The record; undefined while none was written. Throws when the store cannot be read. */
  load(): DecisionRecord | undefined;
  /** Writes `next` when the stored revision is still `expected` (0: none stored); false when another writer came first. */
  write(next: DecisionRecord, expected: number): boolean;
}

/** The backend block of a synthesized stack (`terraform.backend` of cdk.tf.json). */
export function stackBackend(stackDir: string): { kind: string; config: Record<string, any> } {
  let backend: Record<string, any> = {};
  try {
    backend = JSON.parse(fs.readFileSync(path.join(stackDir, 'cdk.tf.json'), 'utf8')).terraform?.backend ?? {};
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`${stackDir} has no cdk.tf.json: synthesize the stack first`);
    throw err;
  }
  const kind = Object.keys(backend)[0] ?? 'local';
  return { kind, config: backend[kind] ?? {} };
}

/** The store of the stack synthesized into `stackDir`; throws for a backend that has none. */
export function decisionStoreFor(stackDir: string, env: NodeJS.ProcessEnv = process.env): DecisionStore {
  const { kind, config } = stackBackend(stackDir);
  if (kind === 'local') return new FileDecisionStore(`${path.resolve(stackDir, config.path ?? 'terraform.tfstate')}.decisions.json`);
  if (kind === 'pg') {
    if (typeof config.schema_name !== 'string' && config.schema_name !== undefined) throw new Error(`the pg backend of ${stackDir} has no plain schema_name`);
    return new PostgresDecisionStore(config.schema_name ?? 'public', typeof config.conn_str === 'string' ? config.conn_str : env.PG_CONN_STR, env);
  }
  throw new Error(`the stack in ${stackDir} keeps its state in a '${kind}' backend: the decision record is kept only with the pg backend (PostgresBackend) or the local backend`);
}

/** The record in a file, for the local backend. */
export class FileDecisionStore implements DecisionStore {
  constructor(public readonly file: string) {}

  public get where(): string {
    return this.file;
  }

  public load(): DecisionRecord | undefined {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new Error(`cannot read the decision record ${this.file}: ${(err as Error).message}`);
    }
    return parseRecord(text, this.file);
  }

  public write(next: DecisionRecord, expected: number): boolean {
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    const lock = `${this.file}.lock`;
    takeLockDirectory(lock);
    try {
      if ((this.load()?.revision ?? 0) !== expected) return false;
      const tmp = `${this.file}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, `${JSON.stringify(next, null, 2)}\n`);
      fs.renameSync(tmp, this.file);
      return true;
    } finally {
      fs.rmSync(lock, { recursive: true, force: true });
    }
  }
}

/** A lock directory (mkdir is atomic); one left by a writer that died is taken after 10 s. */
function takeLockDirectory(lock: string): void {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let age = 0;
    try {
      age = Date.now() - fs.statSync(lock).mtimeMs;
    } catch {
      continue; // released in between
    }
    if (age > 10_000 || Date.now() > deadline) {
      fs.rmSync(lock, { recursive: true, force: true });
      continue;
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
}

/** The record in the stack's PostgreSQL schema, for the pg backend. */
export class PostgresDecisionStore implements DecisionStore {
  private ensured = false;

  constructor(
    public readonly schema: string,
    private readonly connStr: string | undefined,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  public get where(): string {
    return `PostgreSQL table ${this.schema}.${RECORD_TABLE}`;
  }

  public load(): DecisionRecord | undefined {
    this.ensure();
    const text = this.psql(`SELECT record::text FROM :"schema".${RECORD_TABLE} WHERE name = 'record';`);
    return text === '' ? undefined : parseRecord(text, this.where);
  }

  public write(next: DecisionRecord, expected: number): boolean {
    this.ensure();
    // One statement: the update finds the row only at the revision read; the insert only when there is none.
    const written = this.psql(
      `WITH up AS (UPDATE :"schema".${RECORD_TABLE} SET revision = :next, record = :'record'::jsonb, updated_at = now() WHERE name = 'record' AND revision = :expected RETURNING 1),
       ins AS (INSERT INTO :"schema".${RECORD_TABLE} (name, revision, record) SELECT 'record', :next, :'record'::jsonb WHERE :expected = 0 ON CONFLICT (name) DO NOTHING RETURNING 1)
       SELECT (SELECT count(*) FROM up) + (SELECT count(*) FROM ins);`,
      { next: String(next.revision), expected: String(expected), record: JSON.stringify(next) },
    );
    return written === '1';
  }

  /** The schema and table, created once (under an advisory lock: two first writers at once). */
  private ensure(): void {
    if (this.ensured) return;
    this.psql(
      `BEGIN; SELECT pg_advisory_xact_lock(hashtext('${RECORD_TABLE}')) \\g /dev/null
       CREATE SCHEMA IF NOT EXISTS :"schema";
       CREATE TABLE IF NOT EXISTS :"schema".${RECORD_TABLE} (name text PRIMARY KEY, revision bigint NOT NULL, record jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
       COMMIT;`,
    );
    this.ensured = true;
  }

  /** Runs SQL through psql with variables quoted by psql itself (`:'name'` literals, `:"name"` identifiers); the unaligned output. */
  private psql(sql: string, variables: Record<string, string> = {}): string {
    const vars = Object.entries({ schema: this.schema, ...variables }).flatMap(([k, v]) => ['-v', `${k}=${v}`]);
    try {
      return execFileSync('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', ...vars, ...(this.connStr ? ['-d', this.connStr] : [])], {
        input: sql,
        env: this.env,
        encoding: 'utf8',
        timeout: 30_000,
        stdio: ['pipe', 'pipe', 'pipe'],
      }).trim();
    } catch (err) {
      const e = err as { stderr?: string; message: string; code?: string };
      if (e.code === 'ENOENT') throw new Error(`the decision record is kept in PostgreSQL and psql is not installed (Debian: postgresql-client)`);
      throw new Error(`the decision record in ${this.where} cannot be reached: ${(e.stderr || e.message).trim().split('\n').slice(-2).join(' ')}`);
    }
  }
}
