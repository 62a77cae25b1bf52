#!/usr/bin/env node
// Adds up jest --json result files into the plain closing line CI reads:
// "tests: N passed, N failed, N skipped". Usage: node scripts/jest-summary.js a.json [b.json ...]
// Above that line it names every failed test (file, title, the first lines of its failure), as
// CI keeps only the end of a long output.
const fs = require('fs');
const path = require('path');
let passed = 0, failed = 0, skipped = 0;
const failures = [];
const firstLines = (text, n) => text.replace(/\u001b\[[0-9;]*m/g, '').split('\n').filter((l) => l.trim()).slice(0, n).map((l) => `    ${l.trim().slice(0, 300)}`);
for (const file of process.argv.slice(2)) {
  let r;
  try {
    r = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    console.error(`no jest results in ${file}: counting the run as one failure`);
    failed += 1;
    continue;
  }
  passed += r.numPassedTests;
  failed += r.numFailedTests + (r.numRuntimeErrorTestSuites || 0);
  skipped += r.numPendingTests + r.numTodoTests;
  for (const suite of r.testResults || []) {
    const where = path.relative(process.cwd(), suite.name);
    const failedTests = (suite.assertionResults || []).filter((t) => t.status === 'failed');
    for (const t of failedTests) failures.push([`${where} › ${t.fullName}`, ...firstLines((t.failureMessages || []).join('\n'), 8)]);
    if (!failedTests.length && suite.status === 'failed') failures.push([`${where} (the file failed to run)`, ...firstLines(suite.message || '', 8)]);
  }
}
if (failures.length) console.log(`failed:\n${failures.map((f) => f.join('\n')).join('\n')}`);
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
