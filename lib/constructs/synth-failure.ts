/**
 * How a failed synth reads through `cdktf synth` and `cdktn synth`. cdktf's `app.synth()` throws
 * one Error listing every validation problem; uncaught, Node prints it with the source line that
 * threw, about ten frames of cdktf's own code and cdktf's advice to pass `skipValidation: true`,
 * and the CLI prints the app's output twice (as it comes, then in its summary). The library cannot
 * change the CLI, but it can change what the app prints: under a CDK CLI (which runs the app with
 * CDKTF_OUTDIR set), that error is printed as its list of problems alone, and the app exits 1.
 * Any other uncaught error is printed with its stack, and the app exits 1, as Node does.
 */

/** How cdktf (and cdktn) start the Error that lists the failed validations. */
export const VALIDATION_FAILED = 'Validation failed with the following errors:';
const SKIP_ADVICE = /\s*If you wish to ignore these validations, pass 'skipValidation: true' to your App configuration\.\s*$/;

/** The text printed for an uncaught `error`: the problem list alone for a failed validation, else the stack. */
export function describeUncaught(error: unknown): string {
  const message = error instanceof Error ? error.message : undefined;
  if (message === undefined || !message.startsWith(VALIDATION_FAILED)) {
    return `${error instanceof Error ? (error.stack ?? String(error)) : String(error)}\n`;
  }
  const list = message.slice(VALIDATION_FAILED.length).replace(SKIP_ADVICE, '').replace(/^\n+/, '');
  const count = (list.match(/^ {2}\[/gm) ?? []).length;
  return `synth failed: ${count} problem${count === 1 ? '' : 's'}, each with its construct path and how to fix it:\n${list}\n`;
}

let installed = false;

/** Under a CDK CLI, prints an uncaught error as {@link describeUncaught} says and exits 1 (once per process). */
export function briefSynthFailures(env: NodeJS.ProcessEnv = process.env): void {
  if (installed || env.CDKTF_OUTDIR === undefined) return;
  installed = true;
  process.on('uncaughtException', (error) => {
    process.exitCode = 1;
    process.stderr.write(describeUncaught(error), () => process.exit(1));
  });
}
