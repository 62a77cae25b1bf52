/**
 * Whatever model a user writes, `cdktf synth` either writes Terraform that keeps the library's
 * promises or fails with one validation error listing `[path] message` lines: never a TypeError,
 * a `Resolution error` or a bare stack trace. 30 models per run, fresh ones each time;
 * PROPERTY_RUNS=400 searches harder.
 */
import fc from 'fast-check';
import { parseValidationError, referencedAddresses, resources, scratchDir, synth } from '../synth';
import { buildModel, Model, modelArb, reachableAliases } from './random-models';

/** The invariants of a synthesized model; returns what is broken, empty when nothing is. */
function brokenInvariants(model: Model, json: any): string[] {
  const broken: string[] = [];
  const reachable = reachableAliases(model);
  const aliases: string[] = (json.provider?.libvirt ?? []).map((p: any) => `libvirt.${p.alias}`);
  const declaredAliases = new Set(aliases);
  if (declaredAliases.size !== aliases.length) broken.push(`provider aliases are not unique: ${aliases.join(', ')}`);
  const onHost = new Map<string, string>();
  for (const [type, name, body] of resources(json)) {
    const where = `${type}.${name}`;
    if (!declaredAliases.has(body.provider)) broken.push(`${where} uses provider ${body.provider}, which is not declared`);
    else if (!reachable.has(body.provider)) broken.push(`${where} uses ${body.provider}, a host that is failed or in standby`);
    if (type !== 'libvirt_domain') continue;
    const key = `${body.provider} ${body.name}`;
    if (onHost.has(key)) broken.push(`${where} and ${onHost.get(key)} are both domain ${body.name} on ${body.provider}`);
    onHost.set(key, where);
  }
  const declared = new Set(resources(json).map(([type, name]) => `${type}.${name}`));
  const referenced = referencedAddresses(json);
  for (const { from } of json.removed ?? []) {
    if (declared.has(from)) broken.push(`${from} is both removed and declared`);
    if (referenced.has(from)) broken.push(`${from} is removed but referenced`);
  }
  for (const address of referenced) {
    if (!declared.has(address)) broken.push(`${address} is referenced but not declared`);
  }
  return broken;
}

describe('random cluster models through app.synth', () => {
  test('write Terraform that keeps the invariants, or fail with one validation error that names every mistake', () => {
    const outcomes = { written: 0, rejected: 0 };
    fc.assert(
      fc.property(modelArb(), ({ model, valid, mistakes, mustFail }) => {
        let out;
        try {
          out = synth(buildModel(model, scratchDir('locks-')));
        } catch (err) {
          if (valid) throw new Error(`a valid model was rejected: ${(err as Error).message}`);
          // Exactly cdktf's validation Error: a plain Error whose every line is `[path] message`.
          expect(err).toBeInstanceOf(Error);
          expect((err as Error).constructor).toBe(Error);
          const problems = parseValidationError((err as Error).message);
          for (const p of problems) expect(p).not.toMatch(/Resolution error|TypeError|Cannot read properties|is not a function/);
          outcomes.rejected++;
          return;
        }
        if (mustFail) throw new Error(`synth wrote a model with these mistakes: ${mistakes.join('; ')}`);
        expect(brokenInvariants(model, out.json('test'))).toEqual([]);
        outcomes.written++;
      }),
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 30) },
    );
    // Both sides were exercised: a third of the models are drawn valid, a third with mistakes.
    expect(outcomes.written).toBeGreaterThan(0);
    expect(outcomes.rejected).toBeGreaterThan(0);
  });
});
