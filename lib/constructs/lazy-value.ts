/**
 * Values the constructs compute at synth, as cdktf's `Lazy` computes them, without the stack trace
 * `Lazy` captures for each: a VM makes several and nobody reads theirs (cdktf shows a token's
 * creation stack only when its own resolution fails, and these produce plain values). Where a
 * lean resource renders its attributes, it takes their value directly, without cdktf's lookup.
 */
import { Token } from 'cdktf';
import { ISelfRendering, selfRenderingNumber, selfRenderingString } from '../generated-lean/rendered';

class LazyValue implements ISelfRendering {
  public readonly creationStack: string[] = [];

  constructor(private readonly produce: () => unknown) {}

  public resolve(): unknown {
    return this.produce();
  }

  public renderIn(): unknown {
    return this.produce();
  }

  public toString(): string {
    return Token.asString(this);
  }

  public toJSON(): string {
    return '<unresolved-lazy>';
  }
}

/** A string token whose value `produce` gives at synth, like `Lazy.stringValue({ produce })`. */
export function lazyString(produce: () => string): string {
  return selfRenderingString(new LazyValue(produce));
}

/** A number token whose value `produce` gives at synth, like `Lazy.numberValue({ produce })`. */
export function lazyNumber(produce: () => number): number {
  return selfRenderingNumber(new LazyValue(produce));
}
