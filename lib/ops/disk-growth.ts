/**
 * Growing a disk the code made bigger. Provider 0.9.7 updates no volume in place ("Storage volumes
 * cannot be updated"), so a larger `capacity` would fail every apply. Reconcile grows the volume
 * first: through QEMU (`virsh blockresize`) while a running domain uses it, so the guest sees the
 * new size at once, else with `virsh vol-resize`; then the pool is refreshed, the provider reads
 * the new capacity, and the apply finds nothing to do. A smaller capacity is never applied (synth
 * refuses it; a disk cannot shrink without losing data).
 */

/** One volume to grow. */
export interface VolumeGrowth {
  /** The volume's Terraform address. */
  readonly address: string;
  /** The host (provider alias) the volume is managed through. */
  readonly host: string;
  readonly pool: string;
  readonly volume: string;
  readonly fromBytes: number;
  readonly toBytes: number;
  /** The domain that has the volume as a disk, and its target device, if one does. */
  readonly domain?: { readonly name: string; readonly dev: string };
}

/** Resource values as `show -json` has them, by address. */
export type StateAttributes = ReadonlyMap<string, Readonly<Record<string, unknown>>>;

/**
 * The volumes whose configured capacity is above what the state has, and those below it (never
 * shrunk: reported). Pure: the synthesized JSON and the state's values in.
 */
export function planDiskGrowth(config: any, state: StateAttributes): { readonly grow: VolumeGrowth[]; readonly shrink: string[] } {
  const grow: VolumeGrowth[] = [];
  const shrink: string[] = [];
  const domains = [...state.entries()].filter(([address]) => address.startsWith('libvirt_domain.'));
  for (const [name, body] of Object.entries<any>(config?.resource?.libvirt_volume ?? {})) {
    const address = `libvirt_volume.${name}`;
    const known = state.get(address);
    const wanted = body?.capacity;
    const had = known?.capacity;
    if (typeof wanted !== 'number' || typeof had !== 'number' || wanted === had) continue;
    if (wanted < had) {
      shrink.push(`${address}: the configuration asks for ${wanted} bytes, the volume has ${had}; a disk is never shrunk`);
      continue;
    }
    const pool = String(known?.pool ?? '');
    const volume = String(known?.name ?? '');
    const host = typeof body.provider === 'string' ? body.provider.replace(/^libvirt\./, '') : '';
    grow.push({ address, host, pool, volume, fromBytes: had, toBytes: wanted, ...domainOf(domains, pool, volume) });
  }
  return { grow: grow.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0)), shrink };
}

/** The domain (in the state) with `pool/volume` as a disk, and the disk's target device. */
function domainOf(domains: readonly [string, Readonly<Record<string, unknown>>][], pool: string, volume: string): { domain?: VolumeGrowth['domain'] } {
  for (const [, values] of domains) {
    const disks = ((values.devices as any)?.disks ?? []) as any[];
    const disk = disks.find((d) => d?.source?.volume?.volume === volume && (d?.source?.volume?.pool ?? pool) === pool);
    if (disk?.target?.dev && typeof values.name === 'string') return { domain: { name: values.name, dev: String(disk.target.dev) } };
  }
  return {};
}

/**
 * Grows one volume on its host: through the running domain that uses it, else offline; then
 * refreshes the pool so the provider reads the new size. Returns how it was grown.
 */
export function growVolume(growth: VolumeGrowth, virsh: (...args: string[]) => string): string {
  const size = `${growth.toBytes}B`;
  const running = growth.domain !== undefined && virsh('domstate', growth.domain.name).trim() === 'running';
  if (running) virsh('blockresize', growth.domain!.name, growth.domain!.dev, size);
  else virsh('vol-resize', '--pool', growth.pool, growth.volume, size);
  virsh('pool-refresh', growth.pool);
  return running ? `live, through ${growth.domain!.name}'s ${growth.domain!.dev}: the guest sees the new size now` : 'offline (no running domain uses it)';
}
