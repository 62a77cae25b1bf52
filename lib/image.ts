import { Size } from './core/size';

/**
 * A base image that boot disks are copy-on-write overlays of. An image is logical: each host that
 * runs a VM from it gets its own base volume in its local pool, created on first use.
 *
 * @example
 * const debian = Image.fromFile('debian-12', '/srv/images/debian-12-genericcloud-amd64.qcow2');
 * const scratch = Image.blank('scratch', Size.gibibytes(1));
 */
export class Image {
  /** An image uploaded from a local file or http(s) URL by the machine that runs Terraform. */
  public static fromFile(name: string, source: string): Image {
    return new Image(name, source, undefined);
  }

  /** An empty qcow2 image of the given size: enough to prove provisioning, boots nothing. */
  public static blank(name: string, size: Size): Image {
    return new Image(name, undefined, size);
  }

  private constructor(
    /** Volume name stem, unique per host. */
    public readonly name: string,
    /** File path or URL the base volume is uploaded from, if any. */
    public readonly source: string | undefined,
    /** Size of a blank image. */
    public readonly size: Size | undefined,
  ) {}

  /** The libvirt volume of this image, for a `libvirt_volume` in any pool. */
  public volumeConfig(): { name: string; format: string; source?: string; size?: number } {
    return {
      name: `base-${this.name}.qcow2`,
      format: 'qcow2',
      ...(this.source !== undefined ? { source: this.source } : { size: this.size!.toBytes() }),
    };
  }

  /** Problems with this image's definition, empty when valid. */
  public validate(): string[] {
    return /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(this.name)
      ? []
      : [`image name '${this.name}' must be letters, digits, '.', '_' or '-' (it names a volume file)`];
  }
}
