import * as path from 'path';
import { TerraformProvider } from 'cdktf';
import { Construct } from 'constructs';
import { Size } from '../core/size';
import { LeanVolume } from '../generated-lean';
import { IBaseImage } from './contract';

/**
 * A base image that boot disks are copy-on-write overlays of. An image is logical: each pool that
 * runs a VM from it (a host's local pool, or a cluster's shared pool) gets its own base volume,
 * created on first use.
 *
 * @example
 * const debian = Image.fromFile('debian-12', '/srv/images/debian-12-genericcloud-amd64.qcow2');
 * const scratch = Image.blank('scratch', Size.gibibytes(1));
 */
export class Image implements IBaseImage {
  /** A qcow2 image uploaded from a local file or http(s) URL by the machine that runs Terraform. */
  public static fromFile(name: string, source: string): Image {
    return new Image(name, source, undefined);
  }

  /** An empty qcow2 image of the given size: enough to prove provisioning, boots nothing. */
  public static blank(name: string, size: Size): Image {
    return new Image(name, undefined, size);
  }

  private constructor(
    /** Volume name stem, unique per pool. */
    public readonly name: string,
    /** File path or URL the base volume is uploaded from, if any. */
    public readonly source: string | undefined,
    /** Size of a blank image. */
    public readonly size: Size | undefined,
  ) {}

  /** Whether a VM booting it has an OS to hear ACPI: an uploaded image does, a blank one does not. */
  public get bootsOperatingSystem(): boolean {
    return this.source !== undefined;
  }

  /** What the image is made from: its name and its source file, or its size when blank. */
  public get identity(): string {
    return `${this.name} ${this.source !== undefined ? `from ${this.source}` : `blank ${this.size!.toBytes()} bytes`}`;
  }

  /** The image's base volume in `pool`, a `libvirt_volume` through `provider`. */
  public createVolume(scope: Construct, id: string, provider: TerraformProvider, pool: string): LeanVolume {
    return new LeanVolume(scope, id, {
      provider,
      pool,
      name: `base-${this.name}.qcow2`,
      target: { format: { type: 'qcow2' } },
      ...(this.source !== undefined ? { create: { content: { url: this.source } } } : { capacity: this.size!.toBytes() }),
    });
  }

  /** Problems with this image's definition, empty when valid. */
  public validate(): string[] {
    const problems: string[] = [];
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(this.name)) problems.push(`image name '${this.name}' must be letters, digits, '.', '_' or '-' (it names a volume file)`);
    const source = this.source;
    if (source !== undefined && !/^https?:\/\/\S+$/.test(source) && !path.isAbsolute(source)) {
      problems.push(
        source.trim() === ''
          ? `image '${this.name}' has an empty source: give the absolute path of a qcow2 file, or an http(s) URL`
          : `image '${this.name}' source '${source}' is neither an absolute path nor an http(s) URL: Terraform reads it from the stack's folder under cdktf.out, so a relative path breaks; give an absolute path (e.g. path.resolve('${source}'))`,
      );
    }
    if (this.size !== undefined && this.size.toBytes() <= 0) problems.push(`blank image '${this.name}' has size ${this.size}; give a size above 0`);
    return problems;
  }
}
