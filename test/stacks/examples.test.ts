import * as fs from 'fs';
import * as path from 'path';
import { App, TerraformStack } from 'cdktf';
import { DomainType } from '../../lib';
import { BranchOfficeStack } from '../../stacks/branch-office';
import { DedicatedHostStack } from '../../stacks/dedicated-host';
import { DEMO_PUBLIC_KEY, DemoStack } from '../../stacks/demo';
import { stackEnvironment } from '../../stacks/environment';
import { MailServiceStack } from '../../stacks/mail-service';
import { synth } from '../synth';
import { copyOfLock } from './helpers';

const environment = stackEnvironment({ LIBVIRT_DOMAIN_TYPE: 'qemu' });
const instant = new Date('2026-11-26T09:00:00+01:00');

/** Every example stack of stacks/main.ts, on copies of their committed locks. */
const examples: [string, (app: App) => TerraformStack][] = [
  ['demo', (app) => new DemoStack(app, 'demo', { domainType: DomainType.QEMU })],
  ['mail-service', (app) => new MailServiceStack(app, 'mail-service', { environment, lockFile: copyOfLock('mail-service'), instant, frozenLock: true })],
  ['branch-office', (app) => new BranchOfficeStack(app, 'branch-office', { environment, lockFile: copyOfLock('branch-office'), frozenLock: true })],
  ['dedicated-host', (app) => new DedicatedHostStack(app, 'dedicated-host', { environment, lockFile: copyOfLock('dedicated-host'), frozenLock: true })],
];

describe('example stacks', () => {
  test.each(examples)('%s: user data lives in seed disks next to the JSON, never in the JSON', (name, make) => {
    const out = synth((app) => make(app));
    const text = out.text(name);
    for (const secretish of ['#cloud-config', 'user_data', 'ssh_authorized_keys', 'preserve_hostname', DEMO_PUBLIC_KEY, 'dovecot-imapd']) {
      expect(text).not.toContain(secretish);
    }
    const seeds = Object.values<any>(out.json(name).resource.libvirt_volume).filter((v) => /-cloudinit-[0-9a-f]{16}\.iso$/.test(v.name));
    expect(seeds.length).toBeGreaterThan(0);
    for (const seed of seeds) {
      expect(seed.create.content.url).toMatch(/^cloud-init\/[0-9a-f]{16}\.iso$/);
      const iso = fs.readFileSync(path.join(out.stackDir(name), seed.create.content.url));
      expect(iso.includes('#cloud-config')).toBe(true);
      expect(iso.includes(`local-hostname: ${seed.name.replace(/-cloudinit-.*$/, '')}`)).toBe(true);
    }
    if (name === 'demo') expect(fs.readFileSync(path.join(out.stackDir(name), seeds[0].create.content.url)).includes(DEMO_PUBLIC_KEY)).toBe(true);
  });
});
