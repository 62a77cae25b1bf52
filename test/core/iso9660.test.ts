/**
 * Tests for the NoCloud seed ISO writer: structure parsed back with a small reader written here
 * from ECMA-119 and the Joliet spec, determinism, input checks, and (where installed) the real
 * tools cloud-init and people use on such images: blkid and isoinfo.
 */
import { execFileSync, spawnSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { IsoFile, buildIso } from '../../lib/core/iso9660';

const SECTOR = 2048;

interface DirRecord {
  name: string;
  sector: number;
  size: number;
  isDir: boolean;
}

/** Reads a both-endian 32-bit field and checks its two halves agree. */
function both32(buf: Buffer, at: number): number {
  const le = buf.readUInt32LE(at);
  expect(buf.readUInt32BE(at + 4)).toBe(le);
  return le;
}

function sector(img: Buffer, n: number): Buffer {
  return img.subarray(n * SECTOR, (n + 1) * SECTOR);
}

function parseRecord(rec: Buffer, joliet: boolean): DirRecord {
  const id = rec.subarray(33, 33 + rec[32]);
  const decode = () => (joliet ? Buffer.from(id).swap16().toString('utf16le') : id.toString('latin1'));
  const name = id.length === 1 && id[0] <= 1 ? ['.', '..'][id[0]] : decode();
  return { name, sector: both32(rec, 2), size: both32(rec, 10), isDir: (rec[25] & 2) !== 0 };
}

/** Walks a directory extent; fails if a record straddles a sector boundary. */
function readDirectory(img: Buffer, dir: DirRecord, joliet: boolean): DirRecord[] {
  const records: DirRecord[] = [];
  const start = dir.sector * SECTOR;
  for (let pos = start; pos < start + dir.size; ) {
    const len = img[pos];
    if (len === 0) {
      pos = (Math.floor(pos / SECTOR) + 1) * SECTOR; // rest of the sector is padding
      continue;
    }
    expect(Math.floor(pos / SECTOR)).toBe(Math.floor((pos + len - 1) / SECTOR));
    records.push(parseRecord(img.subarray(pos, pos + len), joliet));
    pos += len;
  }
  return records;
}

/** The volume descriptor of `type` (1 primary, 2 supplementary), its root record, and its label. */
function volume(img: Buffer, type: number): { desc: Buffer; root: DirRecord; label: string } {
  for (let n = 16; ; n++) {
    const desc = sector(img, n);
    expect(desc.subarray(1, 6).toString('latin1')).toBe('CD001');
    if (desc[0] === 255) throw new Error(`no volume descriptor of type ${type}`);
    if (desc[0] !== type) continue;
    const joliet = type === 2;
    const rawLabel = desc.subarray(40, 72);
    const label = (joliet ? Buffer.from(rawLabel).swap16().toString('utf16le') : rawLabel.toString('latin1')).trimEnd();
    return { desc, root: parseRecord(desc.subarray(156, 190), joliet), label };
  }
}

/** File name to content, from the Joliet (type 2) or primary (type 1) root directory. */
function readFiles(img: Buffer, type: 1 | 2): Map<string, Buffer> {
  const { root } = volume(img, type);
  const files = new Map<string, Buffer>();
  for (const r of readDirectory(img, root, type === 2).slice(2)) {
    expect(r.isDir).toBe(false);
    files.set(r.name, img.subarray(r.sector * SECTOR, r.sector * SECTOR + r.size));
  }
  return files;
}

const bigText = Array.from({ length: 500 }, (_, i) => `line ${i}: ${'#'.repeat(i % 61)}`).join('\n');
const binary = Uint8Array.from({ length: 5000 }, (_, i) => (i * 7 + 3) & 0xff);
const seed: IsoFile[] = [
  { name: 'user-data', content: '#cloud-config\nhostname: vm1\n' },
  { name: 'meta-data', content: 'instance-id: vm1\nlocal-hostname: vm1\n' },
  { name: 'network-config', content: bigText },
  { name: 'vendor-data', content: '' },
  { name: 'blob.bin', content: binary },
];

describe('buildIso structure', () => {
  const img = buildIso('cidata', seed);

  test('whole sectors; descriptors at 16 (primary), 17 (Joliet), 18 (terminator)', () => {
    expect(img.length % SECTOR).toBe(0);
    expect([16, 17, 18].map((n) => sector(img, n)[0])).toEqual([1, 2, 255]);
    for (const type of [1, 2]) expect(both32(volume(img, type).desc, 80)).toBe(img.length / SECTOR);
    expect([...volume(img, 2).desc.subarray(88, 91)]).toEqual([0x25, 0x2f, 0x45]); // %/E: UCS-2 level 3
  });

  test('the label is in both descriptors', () => {
    expect(volume(img, 1).label).toBe('cidata');
    expect(volume(img, 2).label).toBe('cidata');
  });

  test('L and M path tables of both volumes point at their root directory', () => {
    for (const type of [1, 2]) {
      const { desc, root } = volume(img, type);
      expect(both32(desc, 132)).toBe(10);
      const l = sector(img, desc.readUInt32LE(140));
      const m = sector(img, desc.readUInt32BE(148));
      expect([l[0], l.readUInt32LE(2), l.readUInt16LE(6)]).toEqual([1, root.sector, 1]);
      expect([m[0], m.readUInt32BE(2), m.readUInt16BE(6)]).toEqual([1, root.sector, 1]);
    }
  });

  test('Joliet names and contents round-trip, including empty, binary and multi-sector files', () => {
    const files = readFiles(img, 2);
    expect([...files.keys()]).toEqual(['blob.bin', 'meta-data', 'network-config', 'user-data', 'vendor-data']);
    // hex strings: jest compares Buffers element by element, slowly
    for (const f of seed) expect(files.get(f.name)?.toString('hex')).toBe(Buffer.from(f.content).toString('hex'));
    expect(bigText.length).toBeGreaterThan(4 * SECTOR);
  });

  test('primary names are level-2 d-characters with the same contents', () => {
    const files = readFiles(img, 1);
    const names = ['BLOB.BIN;1', 'META_DATA.;1', 'NETWORK_CONFIG.;1', 'USER_DATA.;1', 'VENDOR_DATA.;1'];
    expect([...files.keys()]).toEqual(names);
    expect(files.get('USER_DATA.;1')?.toString()).toBe(seed[0].content);
  });

  test('names that map to the same primary identifier get distinct ones', () => {
    const input = [
      { name: 'a-b', content: '1' },
      { name: 'a_b', content: '2' },
      { name: 'A.B', content: '3' },
    ];
    const files = readFiles(buildIso('x', input), 1);
    expect([...files.keys()]).toEqual(['A.B;1', 'A_B.;1', 'A_B1.;1']);
    expect(new Set([...files.values()].map(String))).toEqual(new Set(['1', '2', '3']));
  });

  test('a root directory with many long names spans several sectors', () => {
    const many = Array.from({ length: 40 }, (_, i) => ({
      name: `${String(i).padStart(2, '0')}-${'n'.repeat(61)}`, // 64 characters
      content: `file ${i}`,
    }));
    const big = buildIso('cidata', many);
    expect(volume(big, 2).root.size).toBeGreaterThan(2 * SECTOR);
    const files = readFiles(big, 2);
    expect(files.size).toBe(40);
    for (const f of many) expect(files.get(f.name)?.toString()).toBe(f.content);
  });

  test('an empty file list gives a valid empty volume', () => {
    expect(readFiles(buildIso('cidata', []), 2).size).toBe(0);
  });
});

describe('buildIso determinism', () => {
  test('same input, same bytes; file order does not matter', () => {
    expect(buildIso('cidata', seed).equals(buildIso('cidata', seed))).toBe(true);
    expect(buildIso('cidata', [...seed].reverse()).equals(buildIso('cidata', seed))).toBe(true);
  });

  test('different content or label, different bytes', () => {
    const changed = seed.map((f) => (f.name === 'user-data' ? { ...f, content: `${f.content}# changed\n` } : f));
    expect(buildIso('cidata', changed).equals(buildIso('cidata', seed))).toBe(false);
    expect(buildIso('CIDATA', seed).equals(buildIso('cidata', seed))).toBe(false);
  });

  test('the bytes of a typical seed are pinned: a change here re-creates every seed disk', () => {
    const img = buildIso('cidata', [
      { name: 'user-data', content: '#cloud-config\n' },
      { name: 'meta-data', content: 'instance-id: vm1\n' },
    ]);
    expect(img.length).toBe(27 * SECTOR);
    const sha256 = createHash('sha256').update(img).digest('hex');
    expect(sha256).toBe('a78edd777b8f131771c5d1ee00a8f5007e23ffb90bc408d65f2ee5cde2af69c5');
  });
});

describe('buildIso rejects input it cannot carry faithfully', () => {
  const one = (name: string) => () => buildIso('cidata', [{ name, content: '' }]);
  test.each(['', 'cidata-1', 'x'.repeat(17), 'ci data', 'ü'])('label %j', (label) => {
    expect(() => buildIso(label, [])).toThrow(/volume label/);
  });
  test('duplicate names', () => {
    expect(() => buildIso('cidata', [seed[0], seed[0]])).toThrow(/more than once/);
  });
  test.each([
    ['', /1-64 characters/],
    ['x'.repeat(65), /1-64 characters/],
    ['dir/user-data', /root directory/],
    ['a;1', /must not contain/],
    ['tab\there', /must not contain/],
    ['trailing.', /end with a dot/],
    ['emoji \u{1f600}', /Basic Multilingual Plane/],
  ])('file name %j', (name, message) => {
    expect(one(name)).toThrow(message);
  });
  test('64 characters is still fine', () => {
    expect(one('x'.repeat(64))).not.toThrow();
  });
});

/**
 * Tests with a real tool: skipped with the reason when it is not installed, failing instead
 * under REQUIRE_E2E=1 so CI cannot pass them by accident.
 */
function withTool(tool: string, name: string, body: (iso: string) => void): void {
  const found = spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
  if (found) {
    test(name, () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iso9660-'));
      try {
        const iso = path.join(dir, 'seed.iso');
        fs.writeFileSync(iso, buildIso('cidata', seed));
        body(iso);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  } else if (process.env.REQUIRE_E2E === '1') {
    test(name, () => {
      throw new Error(`REQUIRE_E2E=1 but ${tool} is not installed`);
    });
  } else {
    test.skip(`${name} [skipped: ${tool} is not installed]`, () => undefined);
  }
}

describe('real tools', () => {
  const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' });

  withTool('blkid', 'blkid sees an iso9660 filesystem labelled cidata', (iso) => {
    const fields = run('blkid', ['-o', 'export', iso]).split('\n');
    expect(fields).toEqual(expect.arrayContaining(['LABEL=cidata', 'TYPE=iso9660']));
  });

  withTool('isoinfo', 'isoinfo lists and extracts the Joliet files', (iso) => {
    const listed = run('isoinfo', ['-J', '-f', '-i', iso]).trim().split('\n');
    expect(listed.sort()).toEqual(seed.map((f) => `/${f.name}`).sort());
    for (const f of seed) {
      const out = execFileSync('isoinfo', ['-J', '-i', iso, '-x', `/${f.name}`]);
      expect(out).toEqual(Buffer.from(f.content));
    }
    expect(run('isoinfo', ['-d', '-i', iso])).toMatch(/Volume id: cidata\n[\s\S]*Joliet with UCS level 3 found/);
  });
});
