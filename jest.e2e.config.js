/** Real-libvirt tests: need scripts/toolchain.sh. They skip with a reason unless REQUIRE_E2E=1. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.e2e.test.ts'],
  testTimeout: 15 * 60 * 1000,
  setupFilesAfterEnv: ['<rootDir>/test/e2e/setup-lock-context.js'],
  transform: { '^.+\\.ts$': ['ts-jest', { diagnostics: false }] },
};
