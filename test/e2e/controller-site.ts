/**
 * The operations site the controller drills run (test/e2e/controller.e2e.test.ts and
 * decision-record.e2e.test.ts): the mail-service example on a two-host lab with the real test
 * guest, its state (and the controllers' mutex and decision record) in PostgreSQL.
 */
import * as fs from 'fs';
import * as path from 'path';
import { RESOURCE_LOCK_CONTEXT } from '../../lib/constructs/stack-placement';
import type { ControllerEvent } from '../../lib/ops/controller';
import { Lab, labPrerequisites } from '../lab/lab';
import { postgresMissing } from './postgres';
import { guestDomainType, testGuestImage } from './test-guest';
import { TOFU_RC } from './toolchain';

export const REPO = path.join(__dirname, '..', '..');
export const TSX = path.join(REPO, 'node_modules', '.bin', 'tsx');
export const HOSTS = ['h1', 'h2'];
/** The VMs of the night window. */
export const NIGHT = ['directory-1', 'mail-1', 'mail-2'];

/** Why the drills cannot run here, or undefined. */
export function siteMissing(): string | undefined {
  const lab = labPrerequisites();
  const guest = testGuestImage();
  const pg = postgresMissing();
  return !lab.ok ? `lab unavailable: ${lab.reason}` : !guest.ok ? `no test guest: ${guest.reason}` : pg !== undefined ? `no PostgreSQL: ${pg}` : undefined;
}

/** The app the controllers (and the deploys by hand) run: the mail-service example, state in PostgreSQL. */
const APP = (repo: string) => `
import { App } from '${repo}/node_modules/cdktf';
import { PostgresBackend, RemovalPolicy } from '${repo}/lib';
import { stackEnvironment } from '${repo}/stacks/environment';
import { MailServiceStack } from '${repo}/stacks/mail-service';

const app = new App();
const unattended = (process.env.DRILL_UNATTENDED ?? '').split(',').filter((a) => a !== '');
const stack = new MailServiceStack(app, 'mail-service', {
  environment: stackEnvironment(),
  lockFile: process.env.DRILL_LOCK_FILE,
  frozenLock: false,
  dataRemovalPolicy: RemovalPolicy.DESTROY,
  ...(unattended.length > 0 ? { unattended } : {}),
} as any);
stack.node.tryRemoveChild('backend'); // the example's local state, replaced by PostgreSQL
new PostgresBackend(stack);
app.synth();
`;

/**
 * Writes the site into `<lab root>/site` (main.ts, a cdktf.json whose locks are written: an
 * operations machine, not CI) and defines the lab's shared pool; returns the site folder.
 */
export function writeSite(lab: Lab): string {
  const work = path.join(lab.root, 'site');
  fs.mkdirSync(work);
  fs.writeFileSync(path.join(work, 'main.ts'), APP(REPO));
  fs.writeFileSync(path.join(work, 'cdktf.json'), JSON.stringify({ language: 'typescript', app: `${TSX} main.ts`, context: { [RESOURCE_LOCK_CONTEXT.frozen]: false } }));
  const shared = path.join(lab.sharedDir, 'pool');
  fs.mkdirSync(shared);
  lab.defineSharedPool('shared', shared, { autostart: true }); // back by itself after a power-on, like a site's NFS pool
  return work;
}

/** The environment the site's app needs (hosts, guest image, shared pool, bridge, lock file). */
export function siteEnv(lab: Lab, work: string): Record<string, string> {
  const guest = testGuestImage();
  return {
    LIBVIRT_HOSTS: HOSTS.map((h) => `${h}=${lab.host(h).uri}`).join(','),
    LIBVIRT_DOMAIN_TYPE: guestDomainType().type,
    LIBVIRT_IMAGE: guest.ok ? guest.path : '',
    LIBVIRT_CONSOLE_LOG: '1',
    LIBVIRT_SHARED_PATH: path.join(lab.sharedDir, 'pool'),
    LIBVIRT_BRIDGE: lab.bridge,
    DRILL_LOCK_FILE: path.join(work, 'mail-service.placement-lock.json'),
    TF_CLI_CONFIG_FILE: TOFU_RC,
  };
}

/** The event log's lines. */
export function readEventLog(file: string): ControllerEvent[] {
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n').filter((l) => l).map((l) => JSON.parse(l) as ControllerEvent) : [];
}
