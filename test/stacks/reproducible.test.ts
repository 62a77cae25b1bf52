/**
 * Reproducible outputs: the same code, lock and schedule window give the same bytes in every file
 * a synth writes (JSON, seed disks, placement report, controller.json, manifest), so a pull request
 * shows no diff when nothing changed. The instant is left unpinned, as on a user's laptop: the clock
 * decides the window, and only the window may show.
 */
import { App } from 'cdktf';
import { stackEnvironment } from '../../stacks/environment';
import { MailServiceStack } from '../../stacks/mail-service';
import { synth, Synthesized } from '../synth';
import { copyOfLock } from './helpers';
import { files } from '../files';

const environment = stackEnvironment({ LIBVIRT_DOMAIN_TYPE: 'qemu' });

/** A synth of the mail-service example with the clock at `now` and the instant not pinned. */
function synthAt(now: string, lock: string): Synthesized {
  jest.useFakeTimers({ now: new Date(now), doNotFake: ['nextTick', 'setImmediate', 'setTimeout', 'setInterval', 'clearTimeout', 'clearInterval', 'queueMicrotask'] });
  try {
    return synth((app: App) => new MailServiceStack(app, 'mail-service', { environment, lockFile: lock, frozenLock: true }));
  } finally {
    jest.useRealTimers();
  }
}

describe('two synths of an unchanged example stack', () => {
  test('within one schedule window (09:00 and 19:59 Europe/Zurich, the day window) write identical files', () => {
    const lock = copyOfLock('mail-service');
    const first = files(synthAt('2026-11-26T09:00:00+01:00', lock).outdir);
    const second = files(synthAt('2026-11-26T19:59:59+01:00', lock).outdir);
    expect([...second.keys()].sort()).toEqual([...first.keys()].sort());
    expect([...first.keys()]).toEqual(expect.arrayContaining(['manifest.json', 'stacks/mail-service/cdk.tf.json', 'stacks/mail-service/placement-report.md', 'stacks/mail-service/placement-report.svg', 'stacks/mail-service/controller.json']));
    for (const [name, bytes] of first) expect([name, second.get(name)!.equals(bytes)]).toEqual([name, true]);
    // What shows is the window, not the instant.
    const report = first.get('stacks/mail-service/placement-report.md')!.toString();
    expect(report).toContain('- Instant: not pinned, the time of synth (context libvirt-cluster:instant pins one)');
    expect(report).not.toMatch(/2026-11-26T\d\d:\d\d/);
    const controller = JSON.parse(first.get('stacks/mail-service/controller.json')!.toString());
    expect(controller.clusters[0].instant).toBeNull();
    expect(controller.clusters[0].nextWindowStart).toBe('2026-11-26T19:00:00.000Z');
  });

  test('in another window the report says so (the check above can fail)', () => {
    const lock = copyOfLock('mail-service');
    const day = files(synthAt('2026-11-26T09:00:00+01:00', lock).outdir);
    const night = files(synthAt('2026-11-26T21:00:00+01:00', lock).outdir);
    expect(night.get('stacks/mail-service/placement-report.md')!.equals(day.get('stacks/mail-service/placement-report.md')!)).toBe(false);
    expect(night.get('stacks/mail-service/cdk.tf.json')!.equals(day.get('stacks/mail-service/cdk.tf.json')!)).toBe(false);
  });

  test('a pinned instant is printed, as given', () => {
    const out = synth((app: App) => new MailServiceStack(app, 'mail-service', { environment, lockFile: copyOfLock('mail-service'), frozenLock: true }), {
      context: { 'libvirt-cluster:instant': '2026-11-26T09:00:00+01:00' },
    });
    expect(out.file('mail-service', 'placement-report.md')).toContain('- Instant: 2026-11-26T08:00:00.000Z (2026-11-26 09:00 Europe/Zurich)');
    expect(JSON.parse(out.file('mail-service', 'controller.json')).clusters[0].instant).toBe('2026-11-26T08:00:00.000Z');
  });
});
