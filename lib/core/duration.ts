/**
 * A length of time, stored in whole seconds. Use the static factories so the unit is never in
 * doubt: `Duration.seconds(30)`, `Duration.minutes(2)`.
 */
export class Duration {
  public static seconds(n: number): Duration {
    return new Duration(n);
  }

  public static minutes(n: number): Duration {
    return new Duration(n * 60);
  }

  private constructor(private readonly secondsValue: number) {
    if (!Number.isSafeInteger(secondsValue) || secondsValue < 0) {
      throw new Error(`Duration of ${secondsValue} s is not a whole, non-negative number of seconds: give 0 or more whole seconds, e.g. Duration.seconds(30) or Duration.minutes(2)`);
    }
  }

  public toSeconds(): number {
    return this.secondsValue;
  }

  public toString(): string {
    return this.secondsValue % 60 === 0 && this.secondsValue > 0 ? `${this.secondsValue / 60} min` : `${this.secondsValue} s`;
  }
}

/** A number of seconds as {@link Duration} shows it (`90 s`, `2 min`), or as given when it is not whole. */
export function describeSeconds(n: number): string {
  return Number.isSafeInteger(n) && n >= 0 ? Duration.seconds(n).toString() : `${n} s`;
}

/** How long a VM's guest has to shut down through ACPI when the configuration does not say: the provider's default. */
export const DEFAULT_SHUTDOWN_TIMEOUT = Duration.seconds(30);
