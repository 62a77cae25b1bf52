import * as fs from 'fs';
import * as path from 'path';
import { Testing } from 'cdktf';
import { stackEnvironment } from '../../stacks/environment';
import { MailServiceStack } from '../../stacks/mail-service';
import { appWith, copyOfLock, domains, scratchDir } from './helpers';

const dir = scratchDir();
const environment = stackEnvironment({ LIBVIRT_DOMAIN_TYPE: 'qemu' });

function synthAt(localTime: string, context: Record<string, unknown> = {}, lockFile = copyOfLock('mail-service', dir)) {
  const stack = new MailServiceStack(appWith(context), 'mail-service', {
    environment,
    lockFile,
    instant: new Date(`2026-11-26T${localTime}:00+01:00`), // Europe/Zurich in November
    frozenLock: false,
  });
  return { stack, json: JSON.parse(Testing.synth(stack, true)) };
}

function mailDomains(json: any) {
  return Object.values(domains(json)).filter((d) => d.name.startsWith('mail-'));
}

describe('mail-service example', () => {
  test('at 03:00 two mail replicas run, on two different hosts', () => {
    const mail = mailDomains(synthAt('03:00').json);
    expect(mail.map((d) => d.name).sort()).toEqual(['mail-1', 'mail-2']);
    expect(new Set(mail.map((d) => d.provider)).size).toBe(2);
  });

  test('at 09:00 three run, and the two night replicas have not moved', () => {
    const night = mailDomains(synthAt('03:00').json);
    const peak = mailDomains(synthAt('09:00').json);
    expect(peak.map((d) => d.name).sort()).toEqual(['mail-1', 'mail-2', 'mail-3']);
    for (const d of night) expect(peak).toContainEqual(d);
  });

  test('the third replica keeps its data disk off-peak: only its domain, boot and cloud-init disks go', () => {
    const { json } = synthAt('03:00');
    const volumes = Object.values<any>(json.resource.libvirt_volume).map((v) => v.name);
    expect(volumes).toContain('mail-3-data.qcow2');
    expect(volumes).not.toContain('mail-3-boot.qcow2');
  });

  test('with h1 failed, everything runs on h2 at the same addresses, and h1 is never contacted', () => {
    const normal = synthAt('09:00').json;
    const failedSynth = synthAt('09:00', { 'libvirt-cluster:host-state:h1': 'failed' });
    const failed = failedSynth.json;
    const report = fs.readFileSync(path.join(failedSynth.stack.cluster.reportDir, 'placement-report.md'), 'utf8');
    expect(report).toContain('cluster is degraded: h1 (failed) down; it now tolerates 0 further host failure(s) instead of 1');
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
    const h1Resources = Object.values<any>(failed.resource).flatMap((byType) => Object.values<any>(byType)).filter((r) => r.provider === 'libvirt.h1');
    expect(h1Resources).toEqual([]);
  });

  test('boot disks and their base image are on the shared pool, so they follow their VM', () => {
    const { json } = synthAt('09:00');
    const volumes = Object.values<any>(json.resource.libvirt_volume);
    for (const v of volumes.filter((x) => /-boot\.qcow2$|^base-/.test(x.name))) expect(v.pool).toBe('shared');
    expect(volumes.filter((x) => /^base-/.test(x.name))).toHaveLength(1);
  });

  test('mail data disks are on the shared pool and protected from destroy', () => {
    const { json } = synthAt('09:00');
    const data = Object.values<any>(json.resource.libvirt_volume).filter((v) => /^mail-\d-data/.test(v.name));
    expect(data).toHaveLength(3);
    for (const v of data) {
      expect(v.pool).toBe('shared');
      expect(v.lifecycle).toEqual({ prevent_destroy: true });
    }
  });

  test('mail replicas start after the directory', () => {
    const { json } = synthAt('09:00');
    const [directoryAddress] = Object.entries<any>(json.resource.libvirt_domain).find(([, d]) => d.name === 'directory-1')!;
    for (const d of Object.values<any>(json.resource.libvirt_domain).filter((x) => x.name.startsWith('mail-'))) {
      expect(d.depends_on).toEqual([`libvirt_domain.${directoryAddress}`]);
    }
  });

  test('the lock makes a second synth identical, and the committed lock is current', () => {
    const lockFile = copyOfLock('mail-service', dir);
    const first = Testing.synth(synthAt('09:00', {}, lockFile).stack);
    const second = Testing.synth(synthAt('09:00', {}, lockFile).stack);
    expect(second).toEqual(first);
    // frozen: fails if the committed lock would change
    const frozen = new MailServiceStack(appWith(), 'mail-service', { environment, lockFile: copyOfLock('mail-service', dir), frozenLock: true, instant: new Date('2026-11-26T09:00:00+01:00') });
    expect(() => Testing.synth(frozen, true)).not.toThrow();
  });
});
