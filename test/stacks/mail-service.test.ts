import { UnattendedAction } from '../../lib';
import { stackEnvironment } from '../../stacks/environment';
import { MailServiceStack } from '../../stacks/mail-service';
import { domains, resources, synth, SynthOptions } from '../synth';
import { copyOfLock } from './helpers';

const environment = stackEnvironment({ LIBVIRT_DOMAIN_TYPE: 'qemu' });

/** The example at a local time of 2026-11-26 in Zurich (+01:00), from a copy of its committed lock. */
function synthAt(
  localTime: string,
  options: SynthOptions & { readonly lockFile?: string; readonly frozenLock?: boolean; readonly unattended?: UnattendedAction[] } = {},
) {
  return synth(
    (app) =>
      new MailServiceStack(app, 'mail-service', {
        environment,
        lockFile: options.lockFile ?? copyOfLock('mail-service'),
        instant: new Date(`2026-11-26T${localTime}:00+01:00`),
        frozenLock: options.frozenLock ?? false,
        unattended: options.unattended,
      }),
    options,
  );
}

function mailDomains(json: any) {
  return Object.values(domains(json)).filter((d) => d.name.startsWith('mail-'));
}

describe('mail-service example', () => {
  test('at 03:00 two mail replicas run, on two different hosts', () => {
    const mail = mailDomains(synthAt('03:00').json('mail-service'));
    expect(mail.map((d) => d.name).sort()).toEqual(['mail-1', 'mail-2']);
    expect(new Set(mail.map((d) => d.provider)).size).toBe(2);
  });

  test('the replicas are on the LAN bridge with fixed addresses, and the report lists them', () => {
    const out = synthAt('09:00');
    const report = out.file('mail-service', 'placement-report.md');
    for (const [vm, n] of [['directory-1', 10], ['mail-1', 11], ['mail-2', 12], ['mail-3', 13]] as const) {
      expect(report).toMatch(new RegExp(`^\\| ${vm} \\|.*\\| lan 192\\.0\\.2\\.${n}/24, lan 2001:db8:25::${n}/64 \\|$`, 'm'));
    }
    const nics = Object.values<any>(out.json('mail-service').resource.libvirt_domain).map((d) => d.devices.interfaces);
    for (const list of nics) expect(list.map((n: any) => n.source)).toEqual([{ bridge: { bridge: 'br0' } }]);
  });

  test('the report says how each VM moves: live off a host in maintenance, restarted off a failed one', () => {
    const drained = synthAt('09:00', { context: { 'libvirt-cluster:host-state:h2': 'maintenance' } }).file('mail-service', 'placement-report.md');
    const moves = (report: string) => report.split('## Moves')[1]?.split('\n## ')[0] ?? '';
    expect(moves(drained)).toMatch(/\| mail-1 \| h2 \| h1 \| [^|]+ \| live migration by reconcile, before the apply \|/);
    const failed = synthAt('09:00', { context: { 'libvirt-cluster:host-state:h1': 'failed' } }).file('mail-service', 'placement-report.md');
    expect(moves(failed)).toMatch(/\| mail-2 \| h1 \| h2 \| [^|]+ \| restart: host is failed \|/);
    expect(moves(synthAt('09:00').file('mail-service', 'placement-report.md'))).toBe('');
  });

  test('at 09:00 three run, and the two night replicas have not moved', () => {
    const night = mailDomains(synthAt('03:00').json('mail-service'));
    const peak = mailDomains(synthAt('09:00').json('mail-service'));
    expect(peak.map((d) => d.name).sort()).toEqual(['mail-1', 'mail-2', 'mail-3']);
    for (const d of night) expect(peak).toContainEqual(d);
  });

  test('the third replica keeps its data disk off-peak: only its domain, boot and cloud-init disks go', () => {
    const json = synthAt('03:00').json('mail-service');
    const volumes = Object.values<any>(json.resource.libvirt_volume).map((v) => v.name);
    expect(volumes).toContain('mail-3-data.qcow2');
    expect(volumes).not.toContain('mail-3-boot.qcow2');
    expect(volumes.filter((v) => v.startsWith('mail-3-cloudinit-'))).toEqual([]);
    expect(volumes.filter((v) => v.startsWith('mail-2-cloudinit-'))).toHaveLength(1);
  });

  test('with h1 failed, everything runs on h2 at the same addresses, and h1 is never contacted', () => {
    const normal = synthAt('09:00').json('mail-service');
    const failedSynth = synthAt('09:00', { context: { 'libvirt-cluster:host-state:h1': 'failed' } });
    const failed = failedSynth.json('mail-service');
    expect(failedSynth.file('mail-service', 'placement-report.md')).toContain(
      'cluster is degraded: h1 (failed) down; it now tolerates 0 further host failure(s) instead of 1',
    );
    const before = domains(normal);
    const after = domains(failed);
    expect(Object.keys(after).sort()).toEqual(Object.keys(before).sort());
    for (const d of Object.values(after)) expect(d.provider).toBe('libvirt.h2');

    const providers = Object.fromEntries(failed.provider.libvirt.map((p: any) => [p.alias, p.uri]));
    expect(providers.h1).toBe(providers.h2);
    const removed = failed.removed.map((r: any) => r.from);
    // With shared storage the base image and boot disks live there: h1 only had its pool and network.
    expect(removed).toEqual([expect.stringMatching(/^libvirt_network\.h1_Network_/), expect.stringMatching(/^libvirt_pool\.h1_Pool_/)]);
    for (const r of failed.removed) expect(r.lifecycle).toEqual({ destroy: false });
    expect(resources(failed).filter(([, , body]) => body.provider === 'libvirt.h1')).toEqual([]);
  });

  test('boot disks and their base image are on the shared pool, so they follow their VM', () => {
    const volumes = Object.values<any>(synthAt('09:00').json('mail-service').resource.libvirt_volume);
    const followers = volumes.filter((x) => /-boot\.qcow2$|^base-/.test(x.name));
    expect(followers).toHaveLength(5); // four boot disks and one base image
    for (const v of followers) expect(v.pool).toBe('shared');
    expect(volumes.filter((x) => /^base-/.test(x.name))).toHaveLength(1);
  });

  test('mail data disks are on the shared pool and protected from destroy', () => {
    const data = Object.values<any>(synthAt('09:00').json('mail-service').resource.libvirt_volume).filter((v) => /^mail-\d-data/.test(v.name));
    expect(data).toHaveLength(3);
    for (const v of data) {
      expect(v.pool).toBe('shared');
      expect(v.lifecycle).toEqual({ prevent_destroy: true });
    }
  });

  test('mail replicas start after the directory', () => {
    const json = synthAt('09:00').json('mail-service');
    const [directoryAddress] = Object.entries<any>(json.resource.libvirt_domain).find(([, d]) => d.name === 'directory-1')!;
    const mail = Object.values<any>(json.resource.libvirt_domain).filter((x) => x.name.startsWith('mail-'));
    expect(mail).toHaveLength(3);
    for (const d of mail) expect(d.depends_on).toEqual([`libvirt_domain.${directoryAddress}`]);
  });

  test('the lock makes a second synth identical, and the committed lock is current', () => {
    const lockFile = copyOfLock('mail-service');
    const first = synthAt('09:00', { lockFile }).text('mail-service');
    const second = synthAt('09:00', { lockFile }).text('mail-service');
    expect(second).toEqual(first);
    // Frozen, as in CI: the synth fails if the committed lock would change.
    expect(() => synthAt('09:00', { frozenLock: true })).not.toThrow();
  });

  test('no unattended action by default: the controller only watches; controller.json has the hosts and the schedule', () => {
    const out = synthAt('03:00');
    expect(out.file('mail-service', 'placement-report.md')).toContain('\n- Unattended actions: none: the controller only watches\n');
    expect(JSON.parse(out.file('mail-service', 'controller.json'))).toEqual({
      version: 1,
      stack: 'mail-service',
      clusters: [
        {
          id: 'cluster',
          timeZone: 'Europe/Zurich',
          instant: '2026-11-26T02:00:00.000Z',
          unattended: [],
          // the directory's constant schedule never switches; the mail schedule does at 08:00 and 20:00
          windowStarts: ['08:00', '20:00'],
          nextWindowStart: '2026-11-26T07:00:00.000Z',
          hosts: [
            { name: 'h1', state: 'active', wakeSeconds: 60 },
            { name: 'h2', state: 'active', wakeSeconds: 60 },
          ],
          standbyCandidates: [],
          recoverySeconds: 120,
          failuresToTolerate: 1,
        },
      ],
    });
  });

  test('the drills can turn unattended actions on', () => {
    const out = synthAt('21:00', { unattended: [UnattendedAction.SCHEDULE, UnattendedAction.FAILOVER] });
    expect(out.file('mail-service', 'placement-report.md')).toContain('\n- Unattended actions: failover, schedule\n');
    const [cluster] = JSON.parse(out.file('mail-service', 'controller.json')).clusters;
    expect(cluster).toMatchObject({ unattended: ['failover', 'schedule'], nextWindowStart: '2026-11-27T07:00:00.000Z' });
  });

  test('h2 powered down at night still counts for failures: it wakes in 60 s, within the 2 min a failover may take', () => {
    const out = synthAt('03:00', { context: { 'libvirt-cluster:host-state:h2': 'standby' } });
    const report = out.file('mail-service', 'placement-report.md');
    expect(report).toContain('standby host(s) h2 counted as capacity');
    expect(report).toContain('| h2 | 1 min | yes | wakes in 1 min, within the recovery time of 2 min |');
    expect(report).toMatch(/^\| h1 \| directory-1 → h2 \(woken from standby\), mail-1 → h2 \(woken from standby\), /m);
  });
});
