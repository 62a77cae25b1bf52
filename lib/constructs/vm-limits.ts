import { Size } from '../core/size';

/**
 * Per-VM ceilings a cluster enforces on every VM it places.
 *
 * @example
 * VmLimits.originalProduct(); // 4 vCPUs and 32 GiB per VM
 * VmLimits.of({ maxVcpus: 8, maxMemory: Size.gibibytes(64) });
 */
export class VmLimits {
  /** No ceiling beyond what the largest host can give. */
  public static hostCapacity(): VmLimits {
    return new VmLimits('host capacity', undefined, undefined);
  }

  /** The ceilings of the first hypervisor-based Windows Server: 4 vCPUs and 32 GiB per VM. */
  public static originalProduct(): VmLimits {
    return new VmLimits('original product (4 vCPUs, 32 GiB)', 4, Size.gibibytes(32));
  }

  public static of(limits: { readonly name?: string; readonly maxVcpus?: number; readonly maxMemory?: Size }): VmLimits {
    return new VmLimits(limits.name ?? 'custom', limits.maxVcpus, limits.maxMemory);
  }

  private constructor(
    public readonly name: string,
    public readonly maxVcpus: number | undefined,
    public readonly maxMemory: Size | undefined,
  ) {}

  /** Problems with a VM of this shape (its ceilings, not only its current size), empty when within limits. */
  public check(vcpus: number, memory: Size): string[] {
    const problems: string[] = [];
    if (this.maxVcpus !== undefined && vcpus > this.maxVcpus) {
      problems.push(`${vcpus} vCPUs exceeds the ${this.maxVcpus}-vCPU ceiling of the '${this.name}' limits profile; lower vcpus/maxVcpus or choose another profile`);
    }
    if (this.maxMemory !== undefined && memory.isGreaterThan(this.maxMemory)) {
      problems.push(`${memory} of memory exceeds the ${this.maxMemory} ceiling of the '${this.name}' limits profile; lower memory/maxMemory or choose another profile`);
    }
    return problems;
  }
}
