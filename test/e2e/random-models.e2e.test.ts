/**
 * OpenTofu accepts what the library writes for models nobody wrote by hand: five random valid
 * models (fixed seeds, so a failure can be replayed), each synthesized as `cdktf synth` does, then
 * `tofu init` and `tofu validate` in the stack's folder. Needs tofu and the provider mirror.
 */
import fc from 'fast-check';
import { buildModel, validModelArb } from '../constructs/random-models';
import { scratchDir, synth } from '../synth';
import { describeE2e, tofu } from './toolchain';

/**
 * Seeds whose models between them have two clusters (3, 16), a host down and so removed blocks
 * (22), failover groups (3, 16, 19, 22), standalone VMs beside a cluster (4, 19), local and shared
 * storage.
 */
const SEEDS = [3, 4, 16, 19, 22];

describeE2e('tofu validate on random valid models', () => {
  const seen = { clusters: 0, removed: 0, groups: 0 };

  test.each(SEEDS)('seed %i', (seed) => {
    const [model] = fc.sample(validModelArb(), { seed, numRuns: 1 });
    const out = synth(buildModel(model, scratchDir('locks-')));
    const stackDir = out.stackDir('test');
    tofu(stackDir, ['init', '-input=false', '-backend=false']);
    expect(tofu(stackDir, ['validate'])).toContain('The configuration is valid');
    const json = out.json('test');
    seen.clusters = Math.max(seen.clusters, model.clusters.length);
    seen.removed += (json.removed ?? []).length;
    seen.groups += model.clusters.reduce((n, c) => n + c.groups.length, 0);
  });

  test('the seeds cover two clusters, removed blocks and failover groups', () => {
    expect(seen.clusters).toBe(2);
    expect(seen.removed).toBeGreaterThan(0);
    expect(seen.groups).toBeGreaterThan(0);
  });
});
