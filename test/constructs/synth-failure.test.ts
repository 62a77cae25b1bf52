/**
 * A failed synth as a user reads it through `cdktf synth`: the app, run as the CLI runs it (with
 * CDKTF_OUTDIR set), prints the problem list once, without stack frames or cdktf's advice to skip
 * validation, and exits 1. Outside a CLI (tests, a user's own try/catch) nothing changes.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { describeUncaught, VALIDATION_FAILED } from '../../lib/constructs/synth-failure';
import { scratchDir, synthError } from '../synth';
import { Host, Size, VirtualMachine, Image } from '../../lib';
import { TerraformStack } from 'cdktf';

const ROOT = path.join(__dirname, '..', '..');

/** An app with two mistakes, as a user writes it. */
const BROKEN_APP = `
import { App, TerraformStack } from '${ROOT}/node_modules/cdktf';
import { Host, Image, Size, VirtualMachine } from '${ROOT}/lib';
const app = new App();
const stack = new TerraformStack(app, 'broken');
const host = new Host(stack, 'kvm1', { uri: 'qemu:///system', capacity: { cores: 2, memory: Size.gibibytes(2) } });
new VirtualMachine(stack, 'big', { host, vcpus: 64, memory: Size.gibibytes(1), image: Image.blank('blank', Size.mebibytes(64)) });
new VirtualMachine(stack, 'huge', { host, vcpus: 1, memory: Size.gibibytes(64), image: Image.blank('blank', Size.mebibytes(64)) });
app.synth();
`;

function runApp(env: NodeJS.ProcessEnv): { status: number | null; stderr: string; stdout: string } {
  const dir = scratchDir('app-');
  fs.writeFileSync(path.join(dir, 'main.ts'), BROKEN_APP);
  // As on a developer's machine: under CI=true the app's fresh locks would be frozen (one more problem).
  const { CI: _ci, ...machine } = process.env;
  const r = spawnSync(path.join(ROOT, 'node_modules', '.bin', 'tsx'), ['main.ts'], { cwd: dir, env: { ...machine, ...env }, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

test('under a CDK CLI (CDKTF_OUTDIR set), the app prints the problem list alone and exits 1', () => {
  const r = runApp({ CDKTF_OUTDIR: path.join(scratchDir('out-'), 'cdktf.out') });
  expect(r.status).toBe(1);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines[0]).toBe('synth failed: 2 problems, each with its construct path and how to fix it:');
  expect(lines.slice(1).every((l) => l.startsWith('  [broken/'))).toBe(true);
  expect(lines).toHaveLength(3);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stderr).not.toContain('skipValidation');
});

test('run directly (no CLI), the app fails as cdktf makes it: its Error, uncaught, with frames', () => {
  const r = runApp({ CDKTF_OUTDIR: undefined });
  expect(r.status).toBe(1);
  expect(r.stderr).toContain(VALIDATION_FAILED);
  expect(r.stderr).toMatch(/^\s+at /m);
});

test('describeUncaught keeps every problem of the validation Error and nothing of cdktf around it', () => {
  const message = synthError((app) => {
    const stack = new TerraformStack(app, 's');
    const host = new Host(stack, 'kvm1', { uri: 'qemu:///system', capacity: { cores: 2, memory: Size.gibibytes(2) } });
    new VirtualMachine(stack, 'big', { host, vcpus: 64, memory: Size.gibibytes(1), image: Image.blank('blank', Size.mebibytes(64)) });
  });
  const problems = message.split('\n').filter((l) => l.startsWith('  ['));
  expect(problems.length).toBeGreaterThan(0);
  const error = new Error(message);
  expect(describeUncaught(error)).toBe(`synth failed: ${problems.length} problem${problems.length === 1 ? '' : 's'}, each with its construct path and how to fix it:\n${problems.join('\n')}\n`);
  const other = new Error('something else');
  expect(describeUncaught(other)).toBe(`${other.stack}\n`);
});
