/**
 * A minimal ISO 9660 image writer with a Joliet supplementary volume, for cloud-init NoCloud seed
 * disks (volume label `cidata`, files `user-data`, `meta-data`, `network-config` in the root).
 *
 * Written here rather than calling genisoimage so that a seed disk is a pure function of its files:
 * no clock, no host tool, so the same VM definition always gives the same bytes. Layout follows
 * ECMA-119 (ISO 9660) and the Joliet specification; only a root directory is supported.
 */

/** One file for the root directory of the image. Strings are written as UTF-8. */
export interface IsoFile {
  readonly name: string;
  readonly content: string | Uint8Array;
}

const SECTOR = 2048;
/** Joliet limits identifiers to 64 UCS-2 characters (128 bytes in a directory record). */
const MAX_NAME = 64;
/** ISO 9660 level 2: file name plus extension at most 30 characters. */
const MAX_PRIMARY = 30;
/** 1980-01-01 00:00:00 UTC: fixed, so output does not depend on the clock; not all zero, because
 * month 0 is no date and readers turn it into odd times in listings. */
const DIR_DATE = [80, 1, 1, 0, 0, 0, 0];
const VOLUME_DATE = '1980010100000000';
/** Escape sequence %/E marks the supplementary descriptor as Joliet UCS-2 level 3. */
const JOLIET_ESCAPE = [0x25, 0x2f, 0x45];

interface Entry {
  joliet: string; // the name as given
  primary: string; // ISO 9660 level-2 identifier, e.g. `USER_DATA.;1`
  data: Buffer;
  sector: number;
}

function both16(buf: Buffer, offset: number, value: number): void {
  buf.writeUInt16LE(value, offset);
  buf.writeUInt16BE(value, offset + 2);
}

function both32(buf: Buffer, offset: number, value: number): void {
  buf.writeUInt32LE(value, offset);
  buf.writeUInt32BE(value, offset + 4);
}

function ucs2(text: string): Buffer {
  return Buffer.from(text, 'utf16le').swap16();
}

/** Writes `text` into a fixed-width descriptor field, padded with spaces (UCS-2 spaces for Joliet). */
function field(buf: Buffer, offset: number, width: number, text: string, joliet: boolean): void {
  const padded = joliet ? ucs2(text.padEnd(width >> 1, ' ')) : Buffer.from(text.padEnd(width, ' '), 'latin1');
  padded.copy(buf, offset, 0, width);
}

function validate(volumeLabel: string, files: readonly IsoFile[]): void {
  if (!/^[A-Za-z0-9_]{1,16}$/.test(volumeLabel)) {
    throw new Error(`ISO volume label '${volumeLabel}' must be 1-16 characters of A-Z, a-z, 0-9 and _`);
  }
  const seen = new Set<string>();
  for (const { name } of files) {
    const bad = (why: string) => new Error(`ISO file name '${name}' ${why}`);
    if (name.length === 0 || name.length > MAX_NAME) throw bad(`must be 1-${MAX_NAME} characters long`);
    if (name.includes('/')) throw bad('must not contain /: only the root directory is supported');
    // Joliet forbids these; ';' would also be read as a version separator.
    if (/[\u0000-\u001f*:;?\\]/.test(name)) throw bad('must not contain control characters or * : ; ? \\');
    // UCS-2 has no surrogate pairs, so characters outside the Basic Multilingual Plane cannot be stored.
    if (/[\ud800-\udfff]/.test(name)) throw bad('must only use characters of the Basic Multilingual Plane');
    // Linux drops trailing dots from Joliet names, so `a.` would show up as `a`.
    if (name.endsWith('.')) throw bad('must not end with a dot');
    if (seen.has(name)) throw new Error(`ISO file name '${name}' is given more than once`);
    seen.add(name);
  }
}

/** Splits an identifier into name and extension at the last dot, for ECMA-119 9.3 ordering. */
function splitExt(id: string): [string, string] {
  const dot = id.lastIndexOf('.');
  return dot < 0 ? [id, ''] : [id.slice(0, dot), id.slice(dot + 1)];
}

/** ECMA-119 9.3 order: by name, then extension, the shorter one padded with spaces. */
function compareIds(a: string, b: string): number {
  const [an, ae] = splitExt(a.replace(/;1$/, ''));
  const [bn, be] = splitExt(b.replace(/;1$/, ''));
  const cmp = (x: string, y: string) => {
    const [px, py] = [x, y].map((s) => s.padEnd(Math.max(x.length, y.length), ' '));
    return px < py ? -1 : px > py ? 1 : 0;
  };
  return cmp(an, bn) || cmp(ae, be);
}

/**
 * Maps names to unique level-2 identifiers of d-characters (A-Z 0-9 _). Readers without Joliet
 * (firmware, old tools) see these; Linux and Windows use the Joliet names.
 */
function primaryNames(names: readonly string[]): string[] {
  const used = new Set<string>();
  return names.map((name) => {
    const clean = (s: string) => s.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
    const [base, rawExt] = splitExt(name);
    const ext = clean(rawExt).slice(0, 10);
    const stem = clean(base).slice(0, MAX_PRIMARY - ext.length);
    let id = `${stem}.${ext}`;
    // A collision after mapping (`a-b` and `a_b`) gets a numeric suffix, in name order, so
    // the choice is still a function of the input.
    for (let n = 1; used.has(id); n++) id = `${stem.slice(0, MAX_PRIMARY - ext.length - String(n).length)}${n}.${ext}`;
    used.add(id);
    return `${id};1`;
  });
}

/** Length of a directory record: 33 fixed bytes, the identifier, a pad byte to keep it even. */
function recordLength(idBytes: number): number {
  return 33 + idBytes + (idBytes % 2 === 0 ? 1 : 0);
}

function dirRecord(id: Buffer, sector: number, size: number, isDir: boolean): Buffer {
  const rec = Buffer.alloc(recordLength(id.length));
  rec[0] = rec.length;
  both32(rec, 2, sector);
  both32(rec, 10, size);
  DIR_DATE.forEach((v, i) => (rec[18 + i] = v));
  rec[25] = isDir ? 0x02 : 0;
  both16(rec, 28, 1); // volume sequence number
  rec[32] = id.length;
  id.copy(rec, 33);
  return rec;
}

/** Sectors needed for directory records, which may not straddle a sector boundary (ECMA-119 6.8.1.1). */
function directorySectors(lengths: readonly number[]): number {
  let sectors = 1;
  let used = 0;
  for (const len of lengths) {
    if (used + len > SECTOR) {
      sectors++;
      used = 0;
    }
    used += len;
  }
  return sectors;
}

/** Writes a root directory: `.`, `..`, then one record per entry, in the order given. */
function writeDirectory(img: Buffer, sector: number, sectors: number, ids: Buffer[], entries: readonly Entry[]): void {
  const size = sectors * SECTOR;
  const records = [
    dirRecord(Buffer.from([0]), sector, size, true),
    dirRecord(Buffer.from([1]), sector, size, true), // the root is its own parent
    // An empty file owns no sector; extent 0 keeps it from pointing past the end of the image.
    ...entries.map((e, i) => dirRecord(ids[i], e.data.length === 0 ? 0 : e.sector, e.data.length, false)),
  ];
  let pos = sector * SECTOR;
  for (const rec of records) {
    if ((pos % SECTOR) + rec.length > SECTOR) pos += SECTOR - (pos % SECTOR);
    rec.copy(img, pos);
    pos += rec.length;
  }
}

/** A path table with its single entry, the root, in little- (L) or big-endian (M) byte order. */
function writePathTable(img: Buffer, sector: number, rootSector: number, bigEndian: boolean): void {
  const at = sector * SECTOR;
  img[at] = 1; // identifier length; the root's identifier is one zero byte
  if (bigEndian) {
    img.writeUInt32BE(rootSector, at + 2);
    img.writeUInt16BE(1, at + 6); // parent directory number: the root is its own parent
  } else {
    img.writeUInt32LE(rootSector, at + 2);
    img.writeUInt16LE(1, at + 6);
  }
}
const PATH_TABLE_SIZE = 10;

interface Volume {
  joliet: boolean;
  descriptor: number;
  pathTables: number;
  root: number;
  sectors: number; // of the root directory
}

function writeDescriptor(img: Buffer, v: Volume, label: string, totalSectors: number): void {
  const d = img.subarray(v.descriptor * SECTOR, (v.descriptor + 1) * SECTOR);
  d[0] = v.joliet ? 2 : 1;
  d.write('CD001', 1, 'latin1');
  d[6] = 1;
  field(d, 8, 32, '', v.joliet); // system identifier
  // The label is kept as given in both descriptors, as genisoimage -V does: blkid then prints it
  // exactly, and NoCloud seeds made by cloud-localds carry a lower-case `cidata` here too.
  field(d, 40, 32, label, v.joliet);
  both32(d, 80, totalSectors);
  if (v.joliet) JOLIET_ESCAPE.forEach((b, i) => (d[88 + i] = b));
  both16(d, 120, 1); // volume set size
  both16(d, 124, 1); // volume sequence number
  both16(d, 128, SECTOR);
  both32(d, 132, PATH_TABLE_SIZE);
  d.writeUInt32LE(v.pathTables, 140);
  d.writeUInt32BE(v.pathTables + 1, 148);
  dirRecord(Buffer.from([0]), v.root, v.sectors * SECTOR, true).copy(d, 156);
  // Volume set, publisher, data preparer, application, then copyright, abstract and
  // bibliographic file identifiers: all empty.
  [190, 318, 446, 574].forEach((at) => field(d, at, 128, '', v.joliet));
  [702, 739, 776].forEach((at) => field(d, at, 37, '', v.joliet));
  // Creation and modification dates fixed (blkid derives its UUID from them); expiration and
  // effective dates "not specified".
  [813, 830].forEach((at) => d.write(VOLUME_DATE, at, 'latin1'));
  [847, 864].forEach((at) => d.write('0'.repeat(16), at, 'latin1'));
  d[881] = 1; // file structure version
}

/**
 * Builds an ISO 9660 + Joliet image holding `files` in its root directory. Same input, same bytes:
 * the order of `files` does not matter either, as directory entries and data are laid out in name
 * order. Throws on a label or file name the image cannot carry faithfully.
 */
export function buildIso(volumeLabel: string, files: readonly IsoFile[]): Buffer {
  validate(volumeLabel, files);
  const sorted = [...files].sort((a, b) => compareIds(a.name, b.name) || (a.name < b.name ? -1 : 1));
  const primary = primaryNames(sorted.map((f) => f.name));
  const entries: Entry[] = sorted.map((f, i) => ({
    joliet: f.name,
    primary: primary[i],
    data: typeof f.content === 'string' ? Buffer.from(f.content, 'utf8') : Buffer.from(f.content),
    sector: 0,
  }));

  // Each volume lists the files in its own order; both point at the same data extents.
  const primaryOrder = [...entries].sort((a, b) => compareIds(a.primary, b.primary));
  const primaryIds = primaryOrder.map((e) => Buffer.from(e.primary, 'latin1'));
  const jolietIds = entries.map((e) => ucs2(e.joliet));
  const dotRecords = [recordLength(1), recordLength(1)];
  const primarySectors = directorySectors([...dotRecords, ...primaryIds.map((id) => recordLength(id.length))]);
  const jolietSectors = directorySectors([...dotRecords, ...jolietIds.map((id) => recordLength(id.length))]);

  // Layout: sectors 0-15 are the system area (zero); 16-18 the primary, Joliet and terminating
  // volume descriptors; 19-22 the L and M path tables of each volume; the root directories; data.
  const pvd: Volume = { joliet: false, descriptor: 16, pathTables: 19, root: 23, sectors: primarySectors };
  const svd: Volume = { joliet: true, descriptor: 17, pathTables: 21, root: 23 + primarySectors, sectors: jolietSectors };
  let next = svd.root + jolietSectors;
  for (const e of entries) {
    e.sector = next;
    next += Math.ceil(e.data.length / SECTOR);
  }

  const img = Buffer.alloc(next * SECTOR);
  for (const v of [pvd, svd]) {
    writeDescriptor(img, v, volumeLabel, next);
    writePathTable(img, v.pathTables, v.root, false);
    writePathTable(img, v.pathTables + 1, v.root, true);
  }
  const term = 18 * SECTOR;
  img[term] = 255;
  img.write('CD001', term + 1, 'latin1');
  img[term + 6] = 1;

  writeDirectory(img, pvd.root, primarySectors, primaryIds, primaryOrder);
  writeDirectory(img, svd.root, jolietSectors, jolietIds, entries);
  for (const e of entries) e.data.copy(img, e.sector * SECTOR);
  return img;
}
