#!/usr/bin/env node
/**
 * `npm run test:e2e`: the real-libvirt tests as two jest processes at once, each running its files
 * one after the other. The test files spend much of their time waiting (engine start-up, guests
 * booting), and one process alone kept only about one of the two cores busy.
 *
 *   labs: the longest lab drills (code changes, cdktf deploy, failover, controller), in a fixed order that ends with the controller drills, whose
 *         timings (recovery, a window switch within 30 s) are the most sensitive to load: by then
 *         the other stream is done (13 of 14 minutes: it was done after about 10);
 *   rest: every other e2e file (single-host tests on the machine's libvirtd run one at a time there,
 *         as its daemon is shared; the lab's own tests, the guest's, the live drills).
 *
 * Arguments are passed to jest. With a test path among them (e.g. `npm run test:e2e --
 * test/e2e/live`), one jest process runs just that. `--outputFile=F` (with `--json`) gets the results
 * of both streams added up, as one jest result.
 */
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const { LABS } = require('./e2e-sequencer');

const root = path.join(__dirname, '..');
const jest = path.join(root, 'node_modules', '.bin', 'jest');
const args = process.argv.slice(2);
const outputArg = args.find((a) => a.startsWith('--outputFile='));
const passThrough = args.filter((a) => a !== outputArg);
const namesTests = passThrough.some((a) => !a.startsWith('-'));

/** Runs jest with `extra`, its output lines prefixed; resolves with its exit code. */
function run(name, extra, outputFile) {
  const child = spawn(jest, ['--config', 'jest.e2e.config.js', '--runInBand', ...passThrough, ...(outputFile ? [`--outputFile=${outputFile}`] : []), ...extra], {
    cwd: root,
    env: process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const [from, to] of [[child.stdout, process.stdout], [child.stderr, process.stderr]]) {
    let partial = '';
    from.on('data', (chunk) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop();
      for (const line of lines) to.write(`[${name}] ${line}\n`);
    });
    from.on('end', () => partial && to.write(`[${name}] ${partial}\n`));
  }
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0))));
}

/** Adds up jest --json results into one. */
function merge(files, into) {
  // A stream that wrote no results (it crashed) counts as one failed suite.
  const crashed = { success: false, numPassedTests: 0, numFailedTests: 0, numRuntimeErrorTestSuites: 1, numPendingTests: 0, numTodoTests: 0, startTime: Date.now(), testResults: [] };
  const results = files.map((f) => (fs.existsSync(f) ? JSON.parse(fs.readFileSync(f, 'utf8')) : crashed));
  const sum = (key) => results.reduce((s, r) => s + (r[key] || 0), 0);
  const merged = { ...results[0], success: results.every((r) => r.success), testResults: results.flatMap((r) => r.testResults) };
  for (const key of new Set(results.flatMap((r) => Object.keys(r).filter((k) => /^num/.test(k))))) merged[key] = sum(key);
  merged.startTime = Math.min(...results.map((r) => r.startTime));
  fs.writeFileSync(into, JSON.stringify(merged));
}

async function main() {
  if (namesTests) return run('e2e', [], outputArg?.slice('--outputFile='.length));
  const scratch = outputArg ? fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-results-')) : undefined;
  const out = (name) => (scratch ? path.join(scratch, `${name}.json`) : undefined);
  const started = Date.now();
  const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const codes = await Promise.all([
    // The sequencer keeps the labs stream in its order.
    run('labs', ['--testSequencer', path.join(root, 'scripts', 'e2e-sequencer.js'), ...LABS.map(escape)], out('labs')),
    run('rest', ['--testPathIgnorePatterns', '/node_modules/', ...LABS.map(escape)], out('rest')),
  ]);
  if (scratch) {
    try {
      merge([out('labs'), out('rest')], outputArg.slice('--outputFile='.length));
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  }
  console.log(`e2e: both streams done in ${((Date.now() - started) / 1000).toFixed(0)} s (labs exit ${codes[0]}, rest exit ${codes[1]})`);
  return codes.every((c) => c === 0) ? 0 : 1;
}

main().then((code) => process.exit(code));
