/**
 * Generates the TypeScript provider bindings in lib/generated/ from the committed provider schema
 * (provider-schema/libvirt.json), with the same generator `cdktf get` uses. No Terraform engine or
 * network needed. Usage: ts-node scripts/generate-bindings.ts [outDir]
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ConstructsMakerProviderTarget, LANGUAGES, TerraformProviderConstraint } from '@cdktf/commons';
import { CodeMaker, TerraformProviderGenerator } from '@cdktf/provider-generator';

/** The short source, so each engine resolves it against its own default registry. */
const PROVIDER = { name: 'libvirt', source: 'dmacvicar/libvirt' };

export const SCHEMA_FILE = path.join(__dirname, '..', 'provider-schema', 'libvirt.json');
export const GENERATED_DIR = path.join(__dirname, '..', 'lib', 'generated');

/** Writes the bindings for the committed schema into `outDir`, replacing what was there. */
export async function generateBindings(outDir: string): Promise<void> {
  const schema = JSON.parse(fs.readFileSync(SCHEMA_FILE, 'utf8'));
  const staging = fs.mkdtempSync(path.join(os.tmpdir(), 'libvirt-bindings-'));
  try {
    const version: string = Object.values<string>(schema.provider_versions)[0];
    const code = new CodeMaker();
    new TerraformProviderGenerator(code, schema).generate(
      new ConstructsMakerProviderTarget(new TerraformProviderConstraint({ ...PROVIDER, version }), LANGUAGES[0]),
    );
    await code.save(staging);
    fs.rmSync(outDir, { recursive: true, force: true });
    fs.mkdirSync(path.dirname(outDir), { recursive: true });
    fs.cpSync(path.join(staging, 'providers'), outDir, { recursive: true });
    fs.writeFileSync(
      path.join(outDir, 'README.md'),
      '# Generated: do not edit\n\nProvider bindings generated from `provider-schema/libvirt.json` by ' +
        '`npm run get` (`scripts/generate-bindings.ts`). Edit the generator input, never these files.\n',
    );
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

if (require.main === module) {
  generateBindings(process.argv[2] ?? GENERATED_DIR).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
