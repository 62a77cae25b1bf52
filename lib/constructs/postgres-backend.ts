import { PgBackend, PgBackendConfig, TerraformStack } from 'cdktf';
import { Construct } from 'constructs';

export interface PostgresBackendProps {
  /**
   * The PostgreSQL schema that holds the stack's state: a table `states` with a row per workspace.
   * Two stacks given the same schema share one state, so each stack needs its own.
   * @default - `cdktf_<stack name>`, lower-cased, with any character other than a letter, digit or
   * `_` replaced by `_`
   */
  readonly schemaName?: string;
  /**
   * The schema exists already (created by a database administrator); the engine does not create it.
   * @default false
   */
  readonly skipSchemaCreation?: boolean;
  /**
   * The `states` table exists already; the engine does not create it.
   * @default false
   */
  readonly skipTableCreation?: boolean;
  /**
   * The table's index exists already; the engine does not create it.
   * @default false
   */
  readonly skipIndexCreation?: boolean;
}

/**
 * The stack's state in PostgreSQL (the engine's `pg` backend), where every operation that writes it
 * holds a lock: a second apply of the same stack fails on the lock (or waits, with
 * `-lock-timeout`), and a `plan -lock=false` neither takes nor waits for it.
 *
 * The connection string is never part of the configuration, so it stays out of the synthesized
 * JSON and out of the repository: the engine reads it when it runs, from `PG_CONN_STR` (a
 * `postgres://` URL) or from libpq's variables (`PGHOST`, `PGUSER`, `PGPASSWORD`, ...).
 *
 * @example
 * new PostgresBackend(stack); // then: PG_CONN_STR=postgres://terraform@db.example.net/state npx cdktf deploy
 */
export class PostgresBackend extends PgBackend {
  /** The schema the stack's state is kept in. */
  public readonly schemaName: string;

  constructor(scope: Construct, props: PostgresBackendProps = {}) {
    const schemaName = props.schemaName ?? defaultSchemaName(TerraformStack.of(scope).node.id);
    // Named fields only, and no connStr: PgBackendConfig types it as required, the pg backend
    // does not (it falls back to PG_CONN_STR), and a connection string may hold a password.
    const config: Omit<PgBackendConfig, 'connStr'> = {
      schemaName,
      skipSchemaCreation: props.skipSchemaCreation,
      skipTableCreation: props.skipTableCreation,
      skipIndexCreation: props.skipIndexCreation,
    };
    super(scope, config as PgBackendConfig);
    this.schemaName = schemaName;
  }
}

function defaultSchemaName(stackName: string): string {
  return `cdktf_${stackName.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`.slice(0, 63);
}
