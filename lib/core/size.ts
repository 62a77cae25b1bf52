/**
 * An amount of memory or disk, stored exactly in bytes. Use the static factories so the unit is
 * always explicit at the call site.
 *
 * @example
 * const ram = Size.gibibytes(4);
 * ram.toMebibytes(); // 4096
 */
export class Size {
  /** @param n a whole number of bytes, at least zero */
  public static bytes(n: number): Size {
    return new Size(n, `${n} B`);
  }

  public static kibibytes(n: number): Size {
    return new Size(n * 1024, `${n} KiB`);
  }

  public static mebibytes(n: number): Size {
    return new Size(n * 1024 ** 2, `${n} MiB`);
  }

  public static gibibytes(n: number): Size {
    return new Size(n * 1024 ** 3, `${n} GiB`);
  }

  public static tebibytes(n: number): Size {
    return new Size(n * 1024 ** 4, `${n} TiB`);
  }

  private constructor(private readonly totalBytes: number, private readonly text: string) {
    if (!Number.isSafeInteger(totalBytes) || totalBytes < 0) {
      throw new RangeError(`Size ${text} is not a whole, non-negative number of bytes: give 0 or more, in a unit that makes it whole (Size.mebibytes(512) rather than Size.gibibytes(0.5) of an odd fraction)`);
    }
  }

  public toBytes(): number {
    return this.totalBytes;
  }

  /** Whole mebibytes, rounded up: libvirt and the provider count memory in MiB. */
  public toMebibytes(): number {
    return Math.ceil(this.totalBytes / 1024 ** 2);
  }

  public toGibibytes(): number {
    return this.totalBytes / 1024 ** 3;
  }

  public plus(other: Size): Size {
    return Size.bytes(this.totalBytes + other.totalBytes);
  }

  public isGreaterThan(other: Size): boolean {
    return this.totalBytes > other.totalBytes;
  }

  /** The amount as it was written, e.g. `4 GiB`. */
  public toString(): string {
    return this.text;
  }
}
