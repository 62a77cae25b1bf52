/** Unit tests: no tofu, provider or libvirtd needed. Type checking is done once by `tsc --noEmit`
 * (see `npm test`), so ts-jest only transpiles: the generated bindings are large. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '\\.e2e\\.test\\.ts$'],
  transform: { '^.+\\.ts$': ['ts-jest', { diagnostics: false }] },
  // Every core: the default leaves one of two idle, and the synth tests are CPU-bound.
  maxWorkers: '100%',
};
