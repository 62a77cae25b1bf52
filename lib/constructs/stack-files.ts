/**
 * Writing the files a stack's synth produces next to its JSON (seed disks): 20,000 VMs mean
 * 20,000 files, and on this kind of machine each new file costs the kernel about as much as the
 * rendering of its VM, so no file is written twice and none through more calls than needed.
 */
import * as fs from 'fs';
import * as path from 'path';

/**
 * Writes each of `files` (relative path -> bytes) under `dir` unless it is there already: the
 * names are content-addressed, so a file that exists holds these bytes and is never rewritten.
 * A folder that does not exist yet is filled under a temporary name and renamed into place, so
 * its files are written directly, once each; into a folder that exists, each new file goes
 * through a temporary name. Either way a killed synth never leaves half a file under its name.
 */
export function writeMissingFiles(dir: string, files: ReadonlyMap<string, () => Buffer>): void {
  const byFolder = new Map<string, [string, () => Buffer][]>();
  for (const [relative, produce] of files) {
    const folder = path.dirname(relative);
    const list = byFolder.get(folder) ?? [];
    list.push([path.basename(relative), produce]);
    byFolder.set(folder, list);
  }
  for (const [folder, entries] of byFolder) {
    const target = path.join(dir, folder);
    const present = existingNames(target);
    if (present === undefined && folder !== '.') {
      fs.mkdirSync(path.dirname(target), { recursive: true });
      removeStaleStaging(target);
      const staging = fs.mkdtempSync(`${target}.tmp-`);
      for (const [name, produce] of entries) fs.writeFileSync(path.join(staging, name), produce());
      fs.renameSync(staging, target);
      continue;
    }
    fs.mkdirSync(target, { recursive: true });
    for (const [name, produce] of entries) {
      if (present?.has(name)) continue;
      const file = path.join(target, name);
      fs.writeFileSync(`${file}.tmp`, produce());
      fs.renameSync(`${file}.tmp`, file);
    }
  }
}

/** The names in `folder`, or undefined when it does not exist. */
function existingNames(folder: string): Set<string> | undefined {
  try {
    return new Set(fs.readdirSync(folder));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Staging folders a killed synth left beside `target`. */
function removeStaleStaging(target: string): void {
  const prefix = `${path.basename(target)}.tmp-`;
  for (const name of fs.readdirSync(path.dirname(target))) {
    if (name.startsWith(prefix)) fs.rmSync(path.join(path.dirname(target), name), { recursive: true, force: true });
  }
}
