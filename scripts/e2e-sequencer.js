/**
 * Jest test sequencer for the labs stream of `npm run test:e2e` (scripts/e2e.js): runs the files in
 * the order of LABS, so the controller drills, the most sensitive to load, come last.
 */
const path = require('path');
const Sequencer = require('@jest/test-sequencer').default;

/** The multi-host lab files, in the order they run. */
const LABS = [
  'test/e2e/code-changes.e2e.test.ts',
  'test/e2e/adopt.e2e.test.ts',
  'test/e2e/cdktf-deploy.e2e.test.ts',
  'test/e2e/drills.e2e.test.ts',
  'test/e2e/controller.e2e.test.ts',
  'test/e2e/quorum.e2e.test.ts',
];

class LabsSequencer extends Sequencer {
  sort(tests) {
    const rank = (t) => {
      const i = LABS.indexOf(path.relative(path.join(__dirname, '..'), t.path));
      return i < 0 ? LABS.length : i;
    };
    return [...tests].sort((a, b) => rank(a) - rank(b));
  }
}

module.exports = LabsSequencer;
module.exports.LABS = LABS;
