/**
 * The stack's record of what each VM owns in Terraform, and the decisions it allows at synth: a
 * renamed construct becomes `moved` blocks, a data disk whose VM left the code becomes a `removed`
 * block that keeps the file, a disk change the provider cannot apply in place is refused or becomes
 * a new volume. Pure: the previous record and the VMs now in the code in, the blocks, problems and
 * the next record out. The record is committed beside the stack's code, like a placement lock.
 */
import { compareNames, sortedRecord } from './model';

/** A volume of a VM as recorded: where Terraform has it and what makes it the same volume. */
export interface RecordedVolume {
  /** The Terraform address, e.g. `libvirt_volume.mail_replica-1_BootDisk_A1B2C3D4`. */
  readonly address: string;
  /**
   * What, once changed, needs a new volume (the provider updates no volume in place): a boot
   * disk's image. Absent for volumes whose name already changes with their content.
   */
  readonly identity?: string;
  /** The libvirt pool and volume name (a new name replaces the volume). */
  readonly pool: string;
  readonly volume: string;
  /** Capacity in bytes, where the code gives one: it may grow, never shrink. */
  readonly capacityBytes?: number;
}

/** A data disk as recorded: a volume, and whether it outlives its VM. */
export interface RecordedDataDisk extends RecordedVolume {
  /** `true` unless the VM's removal policy is DESTROY. */
  readonly retain: boolean;
}

/** One VM's entry: its domain's address and its volumes. */
export interface RecordedVm {
  /** The host a standalone VM is on, or `cluster <id>` for a clustered one. */
  readonly where: string;
  /** The construct path, for messages. */
  readonly path: string;
  readonly domain?: string;
  /**
   * Whether the domain was given a graceful destroy (`destroy.shutdown`) when it was created. The
   * provider restarts a domain on any update, so a domain keeps what it was created with.
   */
  readonly gracefulDestroy?: true;
  readonly bootDisk?: RecordedVolume;
  readonly cloudInit?: RecordedVolume;
  readonly dataDisk?: RecordedDataDisk;
}

/** A data disk Terraform forgets (`removed`, `destroy = false`): its file stays where it is. */
export interface ForgottenDisk {
  readonly address: string;
  readonly pool: string;
  readonly volume: string;
  /** The VM it belonged to (record key) and where that VM was. */
  readonly vm: string;
  readonly where: string;
}

export interface MovedBlock {
  readonly from: string;
  readonly to: string;
}

/** The record file's content. */
export interface ResourceRecord {
  readonly version: 1;
  /** By VM key (`<libvirt name>@<host or cluster>`), sorted. */
  readonly vms: Readonly<Record<string, RecordedVm>>;
  /** Every move seen, kept so a move that has not been applied yet is still in the next synth. */
  readonly moved: readonly MovedBlock[];
  /** Data disks kept when their VM left the code, kept forgotten in every later synth. */
  readonly forgotten: readonly ForgottenDisk[];
}

export const EMPTY_RECORD: ResourceRecord = Object.freeze({ version: 1, vms: {}, moved: [], forgotten: [] });

/** The VM kinds of resources a record tracks. */
const VOLUME_KINDS = ['bootDisk', 'cloudInit', 'dataDisk'] as const;

export interface RecordDecision {
  /** The record to write. */
  readonly next: ResourceRecord;
  /** `moved` blocks for the stack: renamed constructs, from the record's history. */
  readonly moved: readonly MovedBlock[];
  /** Data disks to forget: `removed` blocks with `destroy = false`. */
  readonly forgotten: readonly ForgottenDisk[];
  /** Data disks forgotten by this synth, for the synth output and the report. */
  readonly newlyForgotten: readonly ForgottenDisk[];
  /** Moves found by this synth. */
  readonly newMoves: readonly MovedBlock[];
  /** Changes the provider cannot carry out without losing data: synth fails, by VM key. */
  readonly problems: readonly { readonly vm: string; readonly message: string }[];
  /** Whether the next record differs from the previous one. */
  readonly changed: boolean;
}

/**
 * Decides, from the previous record and the VMs now in the code (each with the addresses it now
 * has), what to move, forget and refuse. `configured` is every address the stack now declares.
 */
export function decideRecord(
  previous: ResourceRecord,
  current: Readonly<Record<string, RecordedVm>>,
  configured: ReadonlySet<string>,
  explicitMoves: readonly MovedBlock[] = [],
): RecordDecision {
  const problems: { vm: string; message: string }[] = [];
  const known = new Set(previous.moved.map((m) => `${m.from}\0${m.to}`));
  const newMoves: MovedBlock[] = explicitMoves.filter((m) => !known.has(`${m.from}\0${m.to}`));
  const newlyForgotten: ForgottenDisk[] = [];
  const vms = new Map<string, RecordedVm>();
  // The data disk each address had, and which VM holds it now: a new name at an old address is a rename.
  const recordedDataDisk = new Map<string, { readonly key: string; readonly disk: RecordedDataDisk }>();
  for (const [key, vm] of Object.entries(previous.vms)) if (vm.dataDisk) recordedDataDisk.set(vm.dataDisk.address, { key, disk: vm.dataDisk });
  const currentDataDisk = new Map<string, string>();
  for (const [key, vm] of Object.entries(current)) if (vm.dataDisk) currentDataDisk.set(vm.dataDisk.address, key);

  for (const key of [...new Set([...Object.keys(previous.vms), ...Object.keys(current)])].sort(compareNames)) {
    const before = own(previous.vms, key);
    const now = own(current, key);
    if (!now) {
      // The VM left the code: its data disk stays on the host unless its policy says otherwise.
      // A disk whose address another VM took now is reported below, by that VM.
      if (before?.dataDisk?.retain && !currentDataDisk.has(before.dataDisk.address)) newlyForgotten.push(forgottenOf(key, before, before.dataDisk));
      continue;
    }
    if (!before) {
      vms.set(key, now);
      continue;
    }
    if (before.domain && now.domain && before.domain !== now.domain) newMoves.push({ from: before.domain, to: now.domain });
    for (const kind of VOLUME_KINDS) {
      const [was, is] = [before[kind], now[kind]];
      if (was && is && was.address !== is.address) newMoves.push({ from: was.address, to: is.address });
    }
    const [oldImage, newImage] = [before.bootDisk?.identity, now.bootDisk?.identity];
    if (oldImage !== undefined && newImage !== undefined && oldImage !== newImage && oldImage.split(' ')[0] === newImage.split(' ')[0]) {
      problems.push({
        vm: key,
        message: `image '${newImage.split(' ')[0]}' is now ${newImage.slice(newImage.indexOf(' ') + 1)}, was ${oldImage.slice(oldImage.indexOf(' ') + 1)}: its base volume cannot be updated in place; give the new image its own name (e.g. '${newImage.split(' ')[0]}-2'), so it gets a base volume of its own and the boot disk is rebuilt on it`,
      });
    }
    const [was, is] = [before.dataDisk, now.dataDisk];
    if (was && !is && was.retain) newlyForgotten.push(forgottenOf(key, before, was));
    if (was && is && was.pool !== is.pool) {
      problems.push({
        vm: key,
        message: `its data disk ${was.volume} is in pool ${was.pool}, and the code now puts it in pool ${is.pool}: the provider would replace it, destroying its data; keep the pool, or copy the volume by hand (virsh vol-clone, vol-upload) and delete the VM's entry in the resource lock`,
      });
    }
    for (const [kind, label] of [['dataDisk', 'dataDisk.size'], ['bootDisk', 'bootDiskSize']] as const) {
      const [a, b] = [before[kind], now[kind]];
      if (a?.capacityBytes !== undefined && b?.capacityBytes !== undefined && a.volume === b.volume && b.capacityBytes < a.capacityBytes) {
        problems.push({ vm: key, message: `${label} is ${gib(b.capacityBytes)}, smaller than the ${gib(a.capacityBytes)} the disk has: a disk cannot shrink without losing data; keep ${gib(a.capacityBytes)} or more` });
      }
    }
    // What the VM has no resource for now (a replica outside its window) is kept for its return;
    // a data disk the code no longer declares was forgotten above.
    const gracefulDestroy = (now.domain !== undefined ? now.gracefulDestroy : before.gracefulDestroy) === true;
    vms.set(key, { ...now, domain: now.domain ?? before.domain, ...(gracefulDestroy ? { gracefulDestroy: true as const } : {}), bootDisk: now.bootDisk ?? before.bootDisk, cloudInit: now.cloudInit ?? before.cloudInit });
  }
  // The provider replaces a volume whose name changes: a data disk would lose its data.
  for (const [address, key] of currentDataDisk) {
    const old = recordedDataDisk.get(address);
    const disk = own(current, key)!.dataDisk!;
    if (old && old.disk.volume !== disk.volume) {
      problems.push({
        vm: key,
        message: `its data disk's Terraform address held ${old.disk.volume} (VM ${vmName(old.key)}), and a new name makes the provider replace the volume, destroying its data: keep name '${vmName(old.key)}', or give the VM a new construct id (the old data disk is then kept on the host)`,
      });
    }
  }
  const forgottenAll = dedupeForgotten([...previous.forgotten, ...newlyForgotten]);
  // A disk kept on the host has the name a new data disk would be created with: creating it would fail.
  for (const f of forgottenAll) {
    for (const [key, vm] of Object.entries(current)) {
      if (vm.dataDisk && vm.dataDisk.pool === f.pool && vm.dataDisk.volume === f.volume && vm.where === f.where) {
        problems.push({
          vm: key,
          message: `a data disk ${f.volume} in pool ${f.pool} was kept on ${f.where} when VM ${vmName(f.vm)} left the code, and the provider cannot adopt an existing volume: to keep its data, give this VM another name; to start empty, delete that volume on the host (virsh vol-delete) and its entry under "forgotten" in the resource lock`,
        });
      }
    }
  }
  const moved = mergeMoves(previous.moved, newMoves);
  const next: ResourceRecord = { version: 1, vms: sortedRecord(vms), moved, forgotten: forgottenAll };
  return {
    next,
    // A move is valid only while its target is declared and its source is not.
    moved: moved.filter((m) => configured.has(m.to) && !configured.has(m.from)),
    forgotten: forgottenAll.filter((f) => !configured.has(f.address)),
    newlyForgotten,
    newMoves,
    problems,
    changed: JSON.stringify(next) !== JSON.stringify(normalize(previous)),
  };
}

/** The record in the shape decideRecord writes, for comparing. */
function normalize(record: ResourceRecord): ResourceRecord {
  return { version: 1, vms: sortedRecord(Object.entries(record.vms)), moved: record.moved, forgotten: record.forgotten };
}

/**
 * Adds new moves to the history. A move from B to C after one from A to B becomes A → C and B → C
 * (Terraform follows chains, but not cycles): a move back drops the one it undoes.
 */
export function mergeMoves(history: readonly MovedBlock[], added: readonly MovedBlock[]): MovedBlock[] {
  let moves = [...history];
  for (const m of added) {
    moves = moves.filter((h) => h.from !== m.to && !(h.from === m.from));
    moves = moves.map((h) => (h.to === m.from ? { from: h.from, to: m.to } : h));
    moves.push(m);
  }
  const seen = new Set<string>();
  return moves
    .filter((m) => m.from !== m.to && !seen.has(m.from) && (seen.add(m.from), true))
    .sort((a, b) => compareNames(a.from, b.from));
}

function dedupeForgotten(list: readonly ForgottenDisk[]): ForgottenDisk[] {
  const byAddress = new Map<string, ForgottenDisk>();
  for (const f of list) byAddress.set(`${f.address}\0${f.pool}\0${f.volume}`, f);
  return [...byAddress.values()].sort((a, b) => compareNames(a.address, b.address) || compareNames(a.volume, b.volume));
}

function forgottenOf(key: string, vm: RecordedVm, disk: RecordedDataDisk): ForgottenDisk {
  return { address: disk.address, pool: disk.pool, volume: disk.volume, vm: key, where: vm.where };
}

function own<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.prototype.hasOwnProperty.call(record, key) ? record[key] : undefined;
}

/** The record key of a VM: its libvirt name where it is unique (its host, or its cluster). */
export function vmKey(name: string, where: string): string {
  return `${name}@${where}`;
}

function vmName(key: string): string {
  return key.slice(0, key.lastIndexOf('@'));
}

function gib(bytes: number): string {
  const g = bytes / 2 ** 30;
  return Number.isInteger(g) ? `${g} GiB` : `${bytes} bytes`;
}

/** Why a record read from a file cannot be used, or undefined when it can. */
export function recordProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'it is not an object';
  const r = value as Partial<ResourceRecord>;
  if (r.version !== 1) return `its version is ${JSON.stringify(r.version)}, not 1`;
  if (typeof r.vms !== 'object' || r.vms === null || !Array.isArray(r.moved) || !Array.isArray(r.forgotten)) return 'it lacks vms, moved or forgotten';
  return undefined;
}
