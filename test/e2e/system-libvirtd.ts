/**
 * The machine's own libvirtd (qemu:///system) for the single-host test: used as it is when one
 * answers, else started here with our own pid files, and then stopped by those pids only.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readPidFile } from '../lab/processes';
import { waitFor } from './toolchain';

const URI = 'qemu:///system';

function answers(): boolean {
  try {
    execFileSync('virsh', ['-c', URI, 'version'], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}



export class SystemLibvirtd {
  /** Ensures qemu:///system answers; remembers whether we started it. */
  public static async ensure(): Promise<SystemLibvirtd> {
    if (answers()) return new SystemLibvirtd(undefined);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'system-libvirtd-'));
    execFileSync('virtlogd', ['-d', '-p', path.join(dir, 'virtlogd.pid')]);
    execFileSync('libvirtd', ['-d', '-p', path.join(dir, 'libvirtd.pid')]);
    await waitFor(answers, 'libvirtd on qemu:///system');
    return new SystemLibvirtd(dir);
  }

  public readonly uri = URI;

  private constructor(private readonly pidDir: string | undefined) {}

  /** Stops the daemons we started (by their pid files); leaves a daemon we found alone. */
  public async release(): Promise<void> {
    if (!this.pidDir) return;
    for (const name of ['libvirtd', 'virtlogd']) {
      const pid = readPidFile(path.join(this.pidDir, `${name}.pid`));
      if (pid === undefined) continue;
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        continue; // already gone
      }
      await waitFor(() => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      }, `${name} (pid ${pid}) to exit`);
    }
    fs.rmSync(this.pidDir, { recursive: true, force: true });
  }
}
