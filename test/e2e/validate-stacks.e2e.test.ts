/**
 * OpenTofu accepts every example stack as synthesized, including the mail service with a failed
 * host (removed blocks, a provider alias pointed at the survivor). Needs tofu and the provider
 * mirror, not libvirtd.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, TerraformStack } from 'cdktf';
import { BranchOfficeStack } from '../../stacks/branch-office';
import { DedicatedHostStack } from '../../stacks/dedicated-host';
import { DemoStack } from '../../stacks/demo';
import { stackEnvironment } from '../../stacks/environment';
import { MailServiceStack } from '../../stacks/mail-service';
import { describeE2e, tofu } from './toolchain';

const environment = stackEnvironment({ LIBVIRT_DOMAIN_TYPE: 'qemu' });

type Variant = [string, Record<string, unknown>, (app: App, lockDir: string) => TerraformStack];
const lockCopy = (name: string, lockDir: string) => {
  const target = path.join(lockDir, `${name}.json`);
  fs.copyFileSync(path.join(__dirname, '..', '..', 'stacks', `${name}.placement-lock.json`), target);
  return target;
};
const variants: Variant[] = [
  ['demo', {}, (app) => new DemoStack(app, 'demo', { domainType: environment.domainType })],
  ['mail-service at 03:00', {}, (app, d) => new MailServiceStack(app, 'mail-service', { environment, lockFile: lockCopy('mail-service', d), instant: new Date('2026-11-26T03:00:00+01:00') })],
  ['mail-service at 09:00', {}, (app, d) => new MailServiceStack(app, 'mail-service', { environment, lockFile: lockCopy('mail-service', d), instant: new Date('2026-11-26T09:00:00+01:00') })],
  ['mail-service with h1 failed', { 'libvirt-cluster:host-state:h1': 'failed' }, (app, d) => new MailServiceStack(app, 'mail-service', { environment, lockFile: lockCopy('mail-service', d), frozenLock: false })],
  ['branch-office', {}, (app, d) => new BranchOfficeStack(app, 'branch-office', { environment, lockFile: lockCopy('branch-office', d) })],
  ['dedicated-host', {}, (app, d) => new DedicatedHostStack(app, 'dedicated-host', { environment, lockFile: lockCopy('dedicated-host', d) })],
];

describeE2e('tofu validate on the example stacks', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'validate-'));
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  test.each(variants)('%s', (name, context, make) => {
    const dir = path.join(work, name.replace(/\W+/g, '-'));
    fs.mkdirSync(dir);
    const app = new App({ outdir: dir, context });
    const stack = make(app, dir);
    app.synth();
    const stackDir = path.join(dir, 'stacks', stack.node.id);
    tofu(stackDir, ['init', '-input=false', '-backend=false']);
    expect(tofu(stackDir, ['validate'])).toContain('The configuration is valid');
  });
});
