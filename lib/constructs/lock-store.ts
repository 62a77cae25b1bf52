import * as fs from 'fs';
import * as path from 'path';
import { PlacementLock } from '../core/model';

/** A lock file as read: the lock, or nothing (no file yet), or why it cannot be used. */
export interface LockRead<T = PlacementLock> {
  readonly lock?: T;
  readonly problem?: string;
}

/** Reads a committed lock (placement or resource lock). A missing file is no lock; a broken one is a problem to fix by hand. */
export function readLock<T = PlacementLock>(file: string, kind = 'placement lock'): LockRead<T> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    return { problem: `${kind} ${file} cannot be read (${(err as Error).message})` };
  }
  let lock: unknown;
  try {
    lock = JSON.parse(text);
  } catch (err) {
    return { problem: `${kind} ${file} is not valid JSON (${(err as Error).message}); restore it from version control` };
  }
  if (typeof lock !== 'object' || lock === null || Array.isArray(lock)) {
    return { problem: `${kind} ${file} holds ${JSON.stringify(lock)}, not a lock object; restore it from version control or delete it` };
  }
  return { lock: lock as T };
}

/** Writes a lock, replacing the file in one step so a killed synth leaves the old one. */
export function writeLock(file: string, lock: PlacementLock | object): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, `${JSON.stringify(lock, null, 2)}\n`);
  fs.renameSync(temporary, file);
}
