import * as fs from 'fs';
import * as path from 'path';
import { writeMissingFiles } from '../../lib/constructs/stack-files';
import { scratchDir } from '../synth';

const bytes = (text: string) => () => Buffer.from(text);

describe('writeMissingFiles', () => {
  test('fills a new folder in one go, leaving nothing temporary behind', () => {
    const dir = scratchDir('files-');
    fs.mkdirSync(path.join(dir, 'cloud-init.tmp-left'), { recursive: true }); // a killed synth's staging folder
    writeMissingFiles(dir, new Map([['cloud-init/a.iso', bytes('A')], ['cloud-init/b.iso', bytes('B')], ['top.txt', bytes('T')]]));
    expect(fs.readdirSync(dir).sort()).toEqual(['cloud-init', 'top.txt']);
    expect(fs.readdirSync(path.join(dir, 'cloud-init')).sort()).toEqual(['a.iso', 'b.iso']);
    expect(fs.readFileSync(path.join(dir, 'cloud-init', 'b.iso'), 'utf8')).toBe('B');
    expect(fs.readFileSync(path.join(dir, 'top.txt'), 'utf8')).toBe('T');
  });

  test('never rewrites, nor even builds, a file that is already there; adds the missing ones', () => {
    const dir = scratchDir('files-');
    fs.mkdirSync(path.join(dir, 'cloud-init'));
    fs.writeFileSync(path.join(dir, 'cloud-init', 'a.iso'), 'kept');
    const before = fs.statSync(path.join(dir, 'cloud-init', 'a.iso')).mtimeMs;
    const built: string[] = [];
    const produce = (name: string) => () => {
      built.push(name);
      return Buffer.from(name);
    };
    writeMissingFiles(dir, new Map([['cloud-init/a.iso', produce('a')], ['cloud-init/c.iso', produce('c')]]));
    expect(built).toEqual(['c']);
    expect(fs.readFileSync(path.join(dir, 'cloud-init', 'a.iso'), 'utf8')).toBe('kept');
    expect(fs.statSync(path.join(dir, 'cloud-init', 'a.iso')).mtimeMs).toBe(before);
    expect(fs.readdirSync(path.join(dir, 'cloud-init')).sort()).toEqual(['a.iso', 'c.iso']);
  });
});
