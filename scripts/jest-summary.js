#!/usr/bin/env node
// Adds up jest --json result files into the plain closing line CI reads:
// "tests: N passed, N failed, N skipped". Usage: node scripts/jest-summary.js a.json [b.json ...]
const fs = require('fs');
let passed = 0, failed = 0, skipped = 0;
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
}
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
