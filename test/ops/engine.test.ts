import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { chooseTerraformEngine, EngineFacts, terraformEngine } from '../../lib/ops/engine';

const facts = (over: Partial<EngineFacts> & { on?: string[] }): EngineFacts => ({
  lockedRegistryHosts: [],
  installed: (cmd) => (over.on ?? ['tofu', 'terraform']).includes(cmd),
  ...over,
});

describe('the engine reconcile reads the state with', () => {
  test('the caller names it, else TERRAFORM_BINARY_NAME does, whatever is installed', () => {
    expect(chooseTerraformEngine(facts({ named: '/opt/tofu', binaryNameVariable: 'terraform' }))).toEqual({ binary: '/opt/tofu', reason: 'named by the caller' });
    expect(chooseTerraformEngine(facts({ binaryNameVariable: 'tofu', on: [] }))).toEqual({ binary: 'tofu', reason: 'from TERRAFORM_BINARY_NAME' });
  });

  test('else the engine that initialized the stack folder, told by the registry its lock file names', () => {
    expect(chooseTerraformEngine(facts({ lockedRegistryHosts: ['registry.opentofu.org'] })).binary).toBe('tofu');
    expect(chooseTerraformEngine(facts({ lockedRegistryHosts: ['registry.terraform.io'] })).binary).toBe('terraform');
    expect(chooseTerraformEngine(facts({ lockedRegistryHosts: ['registry.opentofu.org'] })).reason).toContain("OpenTofu's registry");
    // ... when that engine is still installed
    expect(chooseTerraformEngine(facts({ lockedRegistryHosts: ['registry.opentofu.org'], on: ['terraform'] })).binary).toBe('terraform');
  });

  test('else the only one installed; with both, terraform (what cdktf runs), and the reason says how to pick tofu', () => {
    expect(chooseTerraformEngine(facts({ on: ['tofu'] }))).toEqual({ binary: 'tofu', reason: 'the only engine on the PATH' });
    expect(chooseTerraformEngine(facts({ on: ['terraform'] })).binary).toBe('terraform');
    const both = chooseTerraformEngine(facts({}));
    expect(both.binary).toBe('terraform');
    expect(both.reason).toContain('TERRAFORM_BINARY_NAME=tofu');
    expect(() => chooseTerraformEngine(facts({ on: [] }))).toThrow('neither tofu nor terraform is on the PATH');
  });

  test('terraformEngine reads the lock file of the stack folder and looks on the PATH', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'engine-'));
    try {
      const bin = path.join(dir, 'bin');
      fs.mkdirSync(bin);
      for (const cmd of ['tofu', 'terraform']) fs.writeFileSync(path.join(bin, cmd), '#!/bin/sh\n', { mode: 0o755 });
      fs.writeFileSync(path.join(dir, '.terraform.lock.hcl'), 'provider "registry.opentofu.org/dmacvicar/libvirt" {\n  version = "0.9.7"\n}\n');
      expect(terraformEngine(dir, undefined, { PATH: bin }).binary).toBe('tofu');
      fs.rmSync(path.join(dir, '.terraform.lock.hcl'));
      expect(terraformEngine(dir, undefined, { PATH: bin }).binary).toBe('terraform');
      fs.rmSync(path.join(bin, 'terraform'));
      expect(terraformEngine(dir, undefined, { PATH: bin })).toEqual({ binary: 'tofu', reason: 'the only engine on the PATH' });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
