import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Testing } from 'cdktf';

/** A scratch folder removed after the test file. */
export function scratchDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cluster-test-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A copy of a committed lock file, so tests never write to the repository. */
export function copyOfLock(name: string, dir: string): string {
  const target = path.join(dir, `${name}-${Math.random().toString(36).slice(2)}.json`);
  const source = path.join(__dirname, '..', '..', 'stacks', `${name}.placement-lock.json`);
  if (fs.existsSync(source)) fs.copyFileSync(source, target);
  return target;
}

export function appWith(context: Record<string, unknown> = {}): App {
  return Testing.app({ context });
}

/** Domains of a synthesized stack: address -> { name, provider }. */
export function domains(json: any): Record<string, { name: string; provider: string }> {
  return Object.fromEntries(
    Object.entries<any>(json.resource?.libvirt_domain ?? {}).map(([k, v]) => [k, { name: v.name, provider: v.provider }]),
  );
}

export function synthError(run: () => void): string {
  try {
    run();
  } catch (err) {
    return String(err);
  }
  return '';
}
