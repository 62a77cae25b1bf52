#!/usr/bin/env node
// After `tsc -p tsconfig.build.json`: points every require("cdktf") in dist/lib at lib/cdk.ts's
// choice (cdktf or cdktn, whichever the user's app runs on). Idempotent; fails when no module
// requires cdktf (the build went elsewhere). The declarations keep importing 'cdktf' types.
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..', 'dist', 'lib');
const chooser = path.join(root, 'cdk.js');
if (!fs.existsSync(chooser)) {
  console.error(`no ${path.relative(process.cwd(), chooser)}: run tsc -p tsconfig.build.json first`);
  process.exit(1);
}

function* jsFiles(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* jsFiles(file);
    else if (entry.name.endsWith('.js') && file !== chooser) yield file;
  }
}

const REQUIRE = 'require("cdktf")';
let rewritten = 0;
let pointing = 0;
for (const file of jsFiles(root)) {
  const text = fs.readFileSync(file, 'utf8');
  let relative = path.relative(path.dirname(file), chooser).replace(/\\/g, '/').replace(/\.js$/, '');
  if (!relative.startsWith('.')) relative = `./${relative}`;
  const target = `require("${relative}").cdk`;
  if (text.includes(REQUIRE)) {
    fs.writeFileSync(file, text.split(REQUIRE).join(target));
    rewritten += 1;
  }
  if (text.includes(REQUIRE) || text.includes(target)) pointing += 1;
}
if (pointing === 0) {
  console.error('no module in dist/lib requires cdktf: is the build output where this script looks?');
  process.exit(1);
}
console.log(`dist/lib: ${pointing} modules use lib/cdk.ts's choice of cdktf or cdktn (${rewritten} rewritten now)`);
