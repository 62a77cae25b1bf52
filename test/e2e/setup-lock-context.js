/**
 * Each e2e test file gets a resource-lock folder of its own, and its locks are written even under
 * CI=true (as on a developer's machine): every App a test builds in this process, and every
 * `cdktf synth` it runs (the CLI passes $CDKTF_CONTEXT_JSON on to the app), reads this context. A
 * test that plays CI sets CI=true and its own context; cdktf.json's context replaces this one.
 */
const fs = require('fs');
const os = require('os');
const path = require('path');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-resource-locks-'));
const context = JSON.parse(process.env.CDKTF_CONTEXT_JSON || '{}');
process.env.CDKTF_CONTEXT_JSON = JSON.stringify({ 'libvirt-cluster:resource-lock-dir': dir, 'libvirt-cluster:frozen-lock': false, ...context });
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
