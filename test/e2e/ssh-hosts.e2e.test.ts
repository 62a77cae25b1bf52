/**
 * Hosts reached over SSH, as remote hosts are: an sshd in front of each lab host on a loopback port
 * (lab-sshd.ts), and a known_hosts file the test writes from the servers' own host keys. The demo
 * stack is applied through h1's sshd by OpenTofu and the provider, reconcile reaches the host with
 * virsh over the same URI, and a server whose key is not the one in known_hosts, or is missing from
 * it, is refused by both and never added to the file.
 */
import * as fs from 'fs';
import * as path from 'path';
import { App } from 'cdktf';
import { DomainType, reconcile } from '../../lib';
import { DemoStack } from '../../stacks/demo';
import { Lab, labPrerequisites } from '../lab/lab';
import { LabSshd, SshClientKey, sshMissing } from './lab-sshd';
import { describeE2e, destroyAfterDrills, TOFU, tofu, tofuEnv, tofuPlan } from './toolchain';

const missing = (() => {
  const lab = labPrerequisites();
  return lab.ok ? sshMissing() : lab.reason;
})();
describeE2e('lab hosts over SSH, host keys checked against a known_hosts the test writes', () => {
  let lab: Lab;
  let work: string;
  let client: SshClientKey;
  const sshd: Record<string, LabSshd> = {};
  let stackDir = '';
  let applied = false;

  /** A known_hosts file with the given lines, in the work folder. */
  function knownHosts(name: string, lines: string[]): string {
    const file = path.join(work, name);
    fs.writeFileSync(file, lines.map((l) => `${l}\n`).join(''));
    return file;
  }

  /** Synthesizes the demo stack for `uri` into `<work>/<folder>` and inits it; returns the stack folder. */
  function synth(folder: string, uri: string): string {
    const app = new App({ outdir: path.join(work, folder) });
    new DemoStack(app, 'demo', { uri, domainType: DomainType.QEMU, poolPath: path.join(work, 'pool'), statePath: path.join(work, 'demo.tfstate') });
    app.synth();
    const dir = path.join(work, folder, 'stacks', 'demo');
    tofu(dir, ['init', '-input=false']);
    return dir;
  }

  beforeAll(async () => {
    lab = await Lab.start({ hosts: 2, leases: false });
    work = path.join(lab.root, 'ssh');
    fs.mkdirSync(work, { mode: 0o755 });
    client = SshClientKey.create(work);
    for (const h of ['h1', 'h2']) sshd[h] = await LabSshd.start(lab.host(h), path.join(work, `sshd-${h}`), client);
  });

  afterAll(async () => {
    destroyAfterDrills(stackDir, applied);
    for (const s of Object.values(sshd)) await s.stop();
    LabSshd.tidy();
    await lab?.teardown();
  });

  test('OpenTofu applies the demo stack through h1 sshd, the host key checked; a second plan shows no changes', () => {
    const trusted = knownHosts('known_hosts', [sshd.h1.knownHostsLine(), sshd.h2.knownHostsLine()]);
    stackDir = synth('trusted', sshd.h1.uri(client, trusted));
    applied = true;
    const started = Date.now();
    expect(tofu(stackDir, ['apply', '-auto-approve', '-input=false'])).toContain('Apply complete! Resources: 7 added');
    console.log(`apply over SSH: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    expect(lab.host('h1').domainState('demo-vm')).toBe('running');
    expect(lab.host('h2').domains()).toEqual([]);
    expect(tofuPlan(stackDir).code).toBe(0);
    expect(fs.readFileSync(path.join(work, 'sshd-h1', 'sshd.log'), 'utf8')).toMatch(/Accepted publickey for root from 127\.0\.0\.1/);
  });

  test('reconcile reaches the host with virsh over the same URI', async () => {
    const trusted = path.join(work, 'known_hosts');
    const actions = await reconcile({ stackDir, hosts: { demo: sshd.h1.uri(client, trusted) }, terraformBinary: TOFU, env: tofuEnv() });
    expect(actions.filter((a) => a.action === 'host-unreachable')).toEqual([]);
  });

  test('a server whose key is not the one known for its address is refused by the provider and by virsh', async () => {
    // h1's address with h2's key: what a machine in the middle would present.
    const forged = knownHosts('known_hosts.forged', [`[127.0.0.1]:${sshd.h1.port} ${sshd.h2.hostKey()}`]);
    const dir = synth('forged', sshd.h1.uri(client, forged));
    let error = '';
    try {
      tofu(dir, ['plan', '-input=false']);
    } catch (err) {
      error = String(err);
    }
    expect(error).toMatch(/knownhosts: key\s+mismatch/);
    const actions = await reconcile({ stackDir, hosts: { demo: sshd.h1.uri(client, forged) }, terraformBinary: TOFU, env: tofuEnv() });
    expect(actions.map((a) => a.action)).toEqual(['host-unreachable']);
    expect(lab.host('h1').domainState('demo-vm')).toBe('running'); // nothing was done
  });

  test('a server missing from known_hosts is refused, and its key is not added to the file', async () => {
    const empty = knownHosts('known_hosts.empty', []);
    const dir = synth('unknown', sshd.h1.uri(client, empty));
    let error = '';
    try {
      tofu(dir, ['plan', '-input=false']);
    } catch (err) {
      error = String(err);
    }
    expect(error).toMatch(/knownhosts: key\s+is\s+unknown/);
    const actions = await reconcile({ stackDir, hosts: { demo: sshd.h1.uri(client, empty) }, terraformBinary: TOFU, env: tofuEnv() });
    expect(actions.map((a) => a.action)).toEqual(['host-unreachable']);
    expect(fs.readFileSync(empty, 'utf8')).toBe('');
  });
}, missing);
