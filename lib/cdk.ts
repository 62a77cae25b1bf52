/**
 * Which CDK the built package runs on: CDK for Terraform (`cdktf` 0.21) or CDK Terrain (`cdktn`
 * 0.24, cdktf's maintained fork, same API). The sources import 'cdktf'; the build points every one
 * of those imports in dist/ at `cdk` below (scripts/use-either-cdk.js), so the constructs and the
 * provider bindings are classes of the same CDK as the user's App. Mixing does not work: each CDK
 * keeps its aspects to itself, and cdktn 0.24 calls methods that cdktf 0.21 elements lack.
 */
import type * as Cdktf from 'cdktf';

export type CdkName = 'cdktf' | 'cdktn';

/** The environment variable that settles the choice by hand. */
export const CDK_ENV = 'CDKTF_LIBVIRT_CLUSTER_CDK';

/**
 * Picks the CDK: the one named in $CDKTF_LIBVIRT_CLUSTER_CDK; else the only one installed; else,
 * with both installed, the one the app has already loaded (it imports its `App` first), and cdktn
 * when it has loaded neither or both.
 *
 * @param installedAt where a CDK's main module is, undefined when it is not installed
 * @param loaded whether that module file is already loaded
 */
export function chooseCdk(env: Readonly<Record<string, string | undefined>>, installedAt: (name: CdkName) => string | undefined, loaded: (file: string) => boolean): CdkName {
  const named = env[CDK_ENV];
  if (named === 'cdktf' || named === 'cdktn') return named;
  if (named !== undefined && named !== '') throw new Error(`${CDK_ENV}=${named}: give cdktf or cdktn`);
  const cdktf = installedAt('cdktf');
  const cdktn = installedAt('cdktn');
  if (!cdktf && !cdktn) throw new Error('cdktf-libvirt-cluster runs on cdktf 0.21 or cdktn 0.24 and finds neither: npm install cdktf@^0.21 (or cdktn@^0.24)');
  if (!cdktn) return 'cdktf';
  if (!cdktf) return 'cdktn';
  return loaded(cdktf) && !loaded(cdktn) ? 'cdktf' : 'cdktn';
}

function installedAt(name: CdkName): string | undefined {
  try {
    return require.resolve(name);
  } catch {
    return undefined;
  }
}

/** The chosen CDK's module; the built package's modules use it wherever the sources import 'cdktf'. */
export const cdk: typeof Cdktf = require(chooseCdk(process.env, installedAt, (file) => require.cache[file] !== undefined));
