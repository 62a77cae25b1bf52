import { TerraformStack } from 'cdktf';
import { PostgresBackend } from '../../lib';
import { synth } from '../synth';

describe('PostgresBackend', () => {
  test('the pg backend with a schema of its own per stack and no connection string: the engine reads PG_CONN_STR', () => {
    const out = synth((app) => {
      new PostgresBackend(new TerraformStack(app, 'mail-service'));
      new PostgresBackend(new TerraformStack(app, 'Branch.Office'));
    });
    expect(out.json('mail-service').terraform.backend).toEqual({ pg: { schema_name: 'cdktf_mail_service' } });
    expect(out.json('Branch.Office').terraform.backend).toEqual({ pg: { schema_name: 'cdktf_branch_office' } });
  });

  test('a named schema and the skip flags, and nothing else, reach the JSON', () => {
    const out = synth((app) => {
      const stack = new TerraformStack(app, 'db');
      // A connection string slipped in from JavaScript, past the types, is still left out.
      const props = { schemaName: 'ops_state', skipSchemaCreation: true, connStr: 'postgres://tf:secret@db/state' };
      expect(new PostgresBackend(stack, props).schemaName).toBe('ops_state');
    });
    expect(out.json('db').terraform.backend).toEqual({ pg: { schema_name: 'ops_state', skip_schema_creation: true } });
    expect(out.text('db')).not.toContain('secret');
  });
});
