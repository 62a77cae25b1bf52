import * as fs from 'fs';
import * as path from 'path';
import { scratchDir } from '../synth';

/** A copy of a committed lock file in a scratch folder, so tests never write to the repository. */
export function copyOfLock(name: string): string {
  const target = path.join(scratchDir('lock-'), `${name}.placement-lock.json`);
  fs.copyFileSync(path.join(__dirname, '..', '..', 'stacks', `${name}.placement-lock.json`), target);
  return target;
}
