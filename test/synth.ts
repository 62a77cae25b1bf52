/**
 * Synthesis the way `cdktf synth` does it: an `App` writing into a temporary folder, `app.synth()`
 * (aspects, then every validation, then token resolution), and the stack's JSON read back from
 * `<outdir>/stacks/<stack>/cdk.tf.json`. Nothing is written into the repository.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App } from 'cdktf';
import { RESOURCE_LOCK_CONTEXT } from '../lib/constructs/stack-placement';

/** How cdktf starts the one Error it throws when validations fail; each problem follows as `[path] message`. */
export const VALIDATION_PREFIX = 'Validation failed with the following errors:';

// Created when a test file first imports this module, and removed after that file.
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cluster-test-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** A fresh folder under this test file's scratch root, removed after the file. */
export function scratchDir(prefix = 'dir-'): string {
  return fs.mkdtempSync(path.join(root, prefix));
}

/** A lock file path in a scratch folder (not created). */
export function scratchLock(): string {
  return path.join(scratchDir('lock-'), 'placement-lock.json');
}

/** One annotation of the synthesized manifest. */
export interface Annotation {
  readonly path: string;
  readonly level: 'warning' | 'error' | 'info';
  readonly message: string;
}

/** The output of one `app.synth()`. */
export class Synthesized {
  constructor(
    /** The app's output folder, as `cdktf.out`. */
    public readonly outdir: string,
  ) {}

  /** The folder of a stack's output: its JSON, seed disks and placement report; Terraform runs here. */
  public stackDir(stack: string): string {
    return path.join(this.outdir, 'stacks', stack);
  }

  /** The stack's `cdk.tf.json`, parsed. */
  public json(stack: string): any {
    return JSON.parse(this.text(stack));
  }

  /** The stack's `cdk.tf.json` as written. */
  public text(stack: string): string {
    return fs.readFileSync(path.join(this.stackDir(stack), 'cdk.tf.json'), 'utf8');
  }

  /** A file cdktf or the library wrote next to the stack's JSON, e.g. `placement-report.md`. */
  public file(stack: string, relative: string): string {
    return fs.readFileSync(path.join(this.stackDir(stack), relative), 'utf8');
  }

  /** The stack's annotations, from `manifest.json` as `cdktf synth` prints them. */
  public annotations(stack: string): Annotation[] {
    const manifest = JSON.parse(fs.readFileSync(path.join(this.outdir, 'manifest.json'), 'utf8'));
    const levels: Record<string, Annotation['level']> = { '@cdktf/warn': 'warning', '@cdktf/error': 'error', '@cdktf/info': 'info' };
    return manifest.stacks[stack].annotations.map((a: any) => ({ path: a.constructPath, level: levels[a.level], message: a.message }));
  }

  /** The stack's warnings as `path: message`. */
  public warnings(stack: string): string[] {
    return this.annotations(stack)
      .filter((a) => a.level === 'warning')
      .map((a) => `${a.path}: ${a.message}`);
  }
}

export interface SynthOptions {
  /** Context values, as `cdktf.json` or `--context` would give them. */
  readonly context?: Record<string, unknown>;
  /** @default - a fresh scratch folder */
  readonly outdir?: string;
}

/** Builds an app with `build` and synthesizes it into a fresh folder; throws what `app.synth()` throws. */
export function synth(build: (app: App) => void, options: SynthOptions = {}): Synthesized {
  const outdir = options.outdir ?? scratchDir('out-');
  withShortStackTraces(() => {
    // Each synth its own resource lock, written even under CI=true, unless the test says otherwise.
    // cdktf lets $CDKTF_CONTEXT_JSON (set for e2e files) override an App's own context: merged here.
    const context = { [RESOURCE_LOCK_CONTEXT.dir]: scratchDir('resource-lock-'), [RESOURCE_LOCK_CONTEXT.frozen]: false, ...options.context };
    const environment = process.env.CDKTF_CONTEXT_JSON;
    process.env.CDKTF_CONTEXT_JSON = JSON.stringify({ ...JSON.parse(environment || '{}'), ...context });
    let app: App;
    try {
      app = new App({ outdir, context });
    } finally {
      if (environment === undefined) delete process.env.CDKTF_CONTEXT_JSON;
      else process.env.CDKTF_CONTEXT_JSON = environment;
    }
    build(app);
    app.synth();
  });
  return new Synthesized(outdir);
}

/**
 * cdktf records the whole stack wherever a token is made (a domain makes hundreds, and jest's
 * stacks are deep), and under jest each frame is source-mapped: that made a synth three to four
 * times slower. While `fn` runs, traces keep their top 12 frames, formatted as V8 does by default;
 * they only ever appear in the text of a Resolution error.
 */
function withShortStackTraces(fn: () => void): void {
  const mapped = Error.prepareStackTrace;
  const capture = Error.captureStackTrace;
  Error.prepareStackTrace = (error, trace) => `${error}\n${trace.map((frame) => `    at ${frame}`).join('\n')}`;
  Error.captureStackTrace = (target, below) => {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 12;
    try {
      capture(target, below);
    } finally {
      Error.stackTraceLimit = limit;
    }
  };
  try {
    fn();
  } finally {
    Error.prepareStackTrace = mapped;
    Error.captureStackTrace = capture;
  }
}

/**
 * The problems a synth that must fail reports: the `[path] message` lines of cdktf's one
 * validation Error. Fails the test when the synth succeeds or throws anything else.
 */
export function synthProblems(build: (app: App) => void, options: SynthOptions = {}): string[] {
  return parseValidationError(synthFailure(build, options));
}

/** The message of the validation Error a failing synth throws (see {@link synthProblems}). */
export function synthError(build: (app: App) => void, options: SynthOptions = {}): string {
  const message = synthFailure(build, options);
  parseValidationError(message);
  return message;
}

function synthFailure(build: (app: App) => void, options: SynthOptions): string {
  try {
    synth(build, options);
  } catch (err) {
    if (!(err instanceof Error) || err.constructor !== Error) throw new Error(`synth threw ${String(err)}, not cdktf's validation Error`);
    return err.message;
  }
  throw new Error('expected the synth to fail validation, but it succeeded');
}

const VALIDATION_TRAILER = `\n\nIf you wish to ignore these validations, pass 'skipValidation: true' to your App configuration.\n`;

/** The `[path] message` lines of a cdktf validation error; throws if `message` is not exactly one. */
export function parseValidationError(message: string): string[] {
  if (!message.startsWith(`${VALIDATION_PREFIX}\n  `) || !message.endsWith(VALIDATION_TRAILER)) throw new Error(`not a cdktf validation error:\n${message}`);
  const lines = message.slice(VALIDATION_PREFIX.length + 3, -VALIDATION_TRAILER.length).split('\n  ');
  const stray = lines.filter((l) => !/^\[[^\]\s]+\] \S[^\n]*$/.test(l));
  if (stray.length > 0) throw new Error(`a validation error with lines that are not one [path] message each:\n${stray.join('\n')}`);
  return lines;
}

/** Runs `fn` with `dir` as the working directory (where default lock files go), then goes back. */
export function inDirectory<T>(dir: string, fn: () => T): T {
  const before = process.cwd();
  process.chdir(dir);
  try {
    return fn();
  } finally {
    process.chdir(before);
  }
}

/** Domains of a synthesized stack: address -> { name, provider }. */
export function domains(json: any): Record<string, { name: string; provider: string }> {
  return Object.fromEntries(
    Object.entries<any>(json.resource?.libvirt_domain ?? {}).map(([k, v]) => [k, { name: v.name, provider: v.provider }]),
  );
}

/** The resource addresses (`type.name`) the stack's expressions refer to, e.g. `libvirt_pool.h1_Pool_ABC`. */
export function referencedAddresses(json: any): Set<string> {
  const found = new Set<string>();
  const walk = (value: unknown): void => {
    if (typeof value === 'string') for (const m of value.matchAll(/\$\{([a-z][a-z0-9_]*\.[A-Za-z0-9_-]+)/g)) found.add(m[1]);
    else if (Array.isArray(value)) value.forEach(walk);
    else if (value && typeof value === 'object') Object.values(value).forEach(walk);
  };
  walk(json.resource);
  walk(json.output);
  return found;
}

/** Every resource of a synthesized stack as [type, address, body]. */
export function resources(json: any): [string, string, any][] {
  return Object.entries<any>(json.resource ?? {}).flatMap(([type, byName]) => Object.entries<any>(byName).map(([name, body]) => [type, name, body] as [string, string, any]));
}

