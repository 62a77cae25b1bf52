import * as fs from 'fs';
import * as path from 'path';

/** The Terraform engine `reconcile` reads the state with, and why that one. */
export interface TerraformEngine {
  /** The command: `tofu`, `terraform`, or what was named. */
  readonly binary: string;
  /** Why this one, in words for the user. */
  readonly reason: string;
}

/** What the choice is made from; `terraformEngine` gathers it from the machine. */
export interface EngineFacts {
  /** The engine named by the caller (`ReconcileOptions.terraformBinary`). */
  readonly named?: string;
  /** $TERRAFORM_BINARY_NAME, the variable cdktf's CLI runs its engine by. */
  readonly binaryNameVariable?: string;
  /** The registry host of each provider in the stack folder's `.terraform.lock.hcl`. */
  readonly lockedRegistryHosts: readonly string[];
  /** Whether a command is on the PATH. */
  readonly installed: (command: string) => boolean;
}

const REGISTRY_ENGINES: Readonly<Record<string, string>> = { 'registry.opentofu.org': 'tofu', 'registry.terraform.io': 'terraform' };

/**
 * The engine the user runs: the one named by the caller or by $TERRAFORM_BINARY_NAME; else the one
 * that initialized the stack folder (its lock file names OpenTofu's or Terraform's registry), when
 * installed; else the only one installed; with both installed, `terraform`, which is what cdktf runs
 * when $TERRAFORM_BINARY_NAME is unset.
 */
export function chooseTerraformEngine(facts: EngineFacts): TerraformEngine {
  if (facts.named) return { binary: facts.named, reason: 'named by the caller' };
  if (facts.binaryNameVariable) return { binary: facts.binaryNameVariable, reason: 'from TERRAFORM_BINARY_NAME' };
  const initializedBy = [...new Set(facts.lockedRegistryHosts.map((h) => REGISTRY_ENGINES[h]).filter((e) => e !== undefined))];
  if (initializedBy.length === 1 && facts.installed(initializedBy[0])) {
    return { binary: initializedBy[0], reason: `it initialized the stack folder: .terraform.lock.hcl names ${initializedBy[0] === 'tofu' ? "OpenTofu's" : "Terraform's"} registry` };
  }
  const tofu = facts.installed('tofu');
  const terraform = facts.installed('terraform');
  if (tofu && !terraform) return { binary: 'tofu', reason: 'the only engine on the PATH' };
  if (terraform && !tofu) return { binary: 'terraform', reason: 'the only engine on the PATH' };
  if (terraform && tofu) return { binary: 'terraform', reason: "cdktf's default with TERRAFORM_BINARY_NAME unset (tofu is installed too: set TERRAFORM_BINARY_NAME=tofu to use it)" };
  throw new Error('neither tofu nor terraform is on the PATH: install one, or set TERRAFORM_BINARY_NAME to the engine cdktf runs');
}

/** `chooseTerraformEngine` with the facts of this machine and the stack folder. */
export function terraformEngine(stackDir: string, named?: string, env: NodeJS.ProcessEnv = process.env): TerraformEngine {
  let lockFile = '';
  try {
    lockFile = fs.readFileSync(path.join(stackDir, '.terraform.lock.hcl'), 'utf8');
  } catch {
    // not initialized yet, or initialized elsewhere
  }
  const lockedRegistryHosts = [...lockFile.matchAll(/^provider "([^"/]+)\//gm)].map((m) => m[1]);
  const dirs = (env.PATH ?? '').split(path.delimiter).filter((d) => d !== '');
  const installed = (command: string) =>
    dirs.some((d) => {
      try {
        fs.accessSync(path.join(d, command), fs.constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
  return chooseTerraformEngine({ named, binaryNameVariable: env.TERRAFORM_BINARY_NAME, lockedRegistryHosts, installed });
}
