import { parse } from 'yaml';
import { TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import { CloudInit, DomainType, Host, Image, Size, VirtualMachine } from '../../lib';
import { synth, synthProblems } from '../synth';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbTDT0vB3vSzqmnMJV3B2mUj4dd3yp7PqAf6l0uVvJq ops@example';

describe('CloudInit', () => {
  test('renders a #cloud-config document cloud-init can parse, with locked passwords', () => {
    const text = new CloudInit({
      users: [{ name: 'ops', sshAuthorizedKeys: [KEY], sudo: true, groups: ['adm', 'wheel'] }],
      packages: ['postfix'],
      runCommands: [['systemctl', 'enable', '--now', 'postfix']],
    }).userData('mail-1');
    expect(text.startsWith('#cloud-config\n')).toBe(true);
    expect(JSON.parse(text.slice('#cloud-config\n'.length))).toEqual({
      hostname: 'mail-1',
      preserve_hostname: false,
      users: ['default', { name: 'ops', shell: '/bin/bash', lock_passwd: true, ssh_authorized_keys: [KEY], groups: 'adm,wheel', sudo: 'ALL=(ALL) NOPASSWD:ALL' }],
      packages: ['postfix'],
      runcmd: [['systemctl', 'enable', '--now', 'postfix']],
    });
  });

  test('the instance id is the VM name, so cloud-init runs once per VM', () => {
    expect(new CloudInit().metaData('mail-1', 'mail-1')).toBe('instance-id: mail-1\nlocal-hostname: mail-1\n');
  });

  test('meta-data is YAML from a YAML library: a name that would read as a number or a boolean stays a string', () => {
    for (const name of ['1e3', 'yes', '0x10', '12:30']) {
      expect(parse(new CloudInit().metaData(name, name), { version: '1.1' })).toEqual({ 'instance-id': name, 'local-hostname': name });
    }
  });

  test('rejects private keys and anything that is not an OpenSSH public key', () => {
    const problems = new CloudInit({
      users: [{ name: 'ops', sshAuthorizedKeys: ['-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn', 'hunter2', KEY] }],
    }).validate();
    expect(problems).toHaveLength(2);
    expect(problems[0]).toContain('private key');
    expect(problems[1]).toContain('not an OpenSSH public key');
  });
});

describe('secrets in runCommands, at synth', () => {
  const vmWith = (runCommands: readonly (readonly string[])[]) => (app: Construct) => {
    const stack = new TerraformStack(app, 'test');
    const host = new Host(stack, 'kvm1', { domainType: DomainType.QEMU });
    new VirtualMachine(stack, 'vm', { host, image: Image.blank('base', Size.mebibytes(64)), cloudInit: { runCommands } });
  };

  test.each([
    [['sh', '-c', 'echo root:hunter2 | chpasswd'], 'a password set with chpasswd'],
    [['mysql', '-psecret'], 'a --password/-p<secret> option'],
    [['curl', 'https://user:pw@host/x'], 'credentials in a URL (user:password@host)'],
    [['sh', '-c', 'MYSQL_PASSWORD=hunter2 ./install.sh'], 'a PASSWORD=/SECRET=/TOKEN=/API_KEY= assignment'],
  ])('%j is rejected with the VM path and what it holds', (argv, what) => {
    const problems = synthProblems(vmWith([['systemctl', 'enable', '--now', 'postfix'], argv]));
    expect(problems).toEqual([expect.stringMatching(new RegExp(`^\\[test/vm\\] cloud-init runCommands\\[1\\] holds ${escape(what)}: .*fetch the secret inside the guest`))]);
  });

  test('a harmless command synthesizes', () => {
    const out = synth(vmWith([['systemctl', 'enable', '--now', 'postfix']]));
    expect(Object.keys(out.json('test').resource.libvirt_domain)).toHaveLength(1);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
