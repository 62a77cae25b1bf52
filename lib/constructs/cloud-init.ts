import { createHash } from 'crypto';
import { buildIso } from '../core/iso9660';
import { Document } from 'yaml';

/** A guest user created by cloud-init. Passwords are deliberately not supported: SSH keys only. */
export interface CloudInitUser {
  /** Login name. */
  readonly name: string;
  /** Public SSH keys allowed to log in, e.g. `ssh-ed25519 AAAA... me@laptop`. */
  readonly sshAuthorizedKeys: readonly string[];
  /**
   * Passwordless sudo.
   * @default false
   */
  readonly sudo?: boolean;
  /**
   * Supplementary groups.
   * @default - none
   */
  readonly groups?: readonly string[];
  /**
   * Login shell.
   * @default /bin/bash
   */
  readonly shell?: string;
}

/** Typed cloud-init user data for a VM. */
export interface CloudInitProps {
  /**
   * Users to create.
   * @default - none; the image's default user stays as it is
   */
  readonly users?: readonly CloudInitUser[];
  /**
   * Packages to install on first boot.
   * @default - none
   */
  readonly packages?: readonly string[];
  /**
   * Commands to run once on first boot, each an argv list. They are checked for the common forms
   * of an inline secret (see `CloudInit.validate`): fetch secrets inside the guest instead.
   * @default - none
   */
  readonly runCommands?: readonly (readonly string[])[];
}

const PUBLIC_KEY = /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/=]+( .*)?$/;
const LOGIN_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;

/**
 * The forms of an inline secret that `runCommands` are checked for. Each is a pattern over one
 * command joined with spaces, and what it stands for.
 */
const SECRET_FORMS: readonly (readonly [RegExp, string])[] = [
  [/\bchpasswd\b/, 'a password set with chpasswd'],
  [/\bpasswd\b.*(--stdin|<<<)|\|\s*passwd\b/, 'a password piped into passwd'],
  [/\bopenssl\s+passwd\b|\busermod\b.*\s-p\s|\buseradd\b.*\s-p\s/, 'a password hash or password given to openssl/usermod/useradd'],
  [/--pass(word)?(=|\s+)\S|(^|\s)-p\S/, 'a --password/-p<secret> option'],
  [/\b[A-Za-z_]*(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY)[A-Za-z_]*=\S/i, 'a PASSWORD=/SECRET=/TOKEN=/API_KEY= assignment'],
  [/\bsudo\s+-S\b/, 'a password piped into sudo -S'],
  [/:\/\/[^/\s:@]+:[^@\s]+@/, 'credentials in a URL (user:password@host)'],
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----/, 'a private key'],
  [/\bAKIA[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{20,}\b|\bxox[abpr]-[A-Za-z0-9-]{10,}/, 'a cloud or forge access token'],
];

/**
 * Renders the cloud-config document (JSON is YAML, so cloud-init reads it as is) and the
 * NoCloud meta-data for a VM.
 */
export class CloudInit {
  constructor(private readonly props: CloudInitProps = {}) {}

  /**
   * Problems with the user data, empty when valid: bad login names, keys that are not OpenSSH
   * public keys (private keys above all), and run commands that carry a secret in one of the
   * forms of `SECRET_FORMS` (chpasswd, passwords piped to passwd or sudo -S, --password options,
   * PASSWORD=/TOKEN= assignments, credentials in URLs, private keys, well-known token formats).
   * A secret in another form is not caught: nothing else is guarded.
   */
  public validate(): string[] {
    const problems: string[] = [];
    for (const user of this.props.users ?? []) {
      if (!LOGIN_NAME.test(user.name)) {
        problems.push(`cloud-init user '${user.name}' is not a valid login name (lower case letters, digits, '_' or '-')`);
      }
      for (const key of user.sshAuthorizedKeys) {
        if (key.includes('PRIVATE KEY')) {
          problems.push(`cloud-init user '${user.name}' has a private key in sshAuthorizedKeys: it would be written to the seed disk and the synthesized output; pass the public key (the .pub file)`);
        } else if (!PUBLIC_KEY.test(key.trim())) {
          problems.push(`cloud-init user '${user.name}' has an SSH key that is not an OpenSSH public key ('${key.slice(0, 24)}...'); expected e.g. 'ssh-ed25519 AAAA... comment'`);
        }
      }
    }
    (this.props.runCommands ?? []).forEach((argv, i) => {
      const line = argv.join(' ');
      for (const [form, what] of SECRET_FORMS) {
        if (form.test(line)) {
          problems.push(`cloud-init runCommands[${i}] holds ${what}: it would be written in clear to the seed disk and the synthesized output; fetch the secret inside the guest (a vault agent, a mounted secret) instead`);
          break;
        }
      }
    });
    return problems;
  }

  /** The `#cloud-config` user data. */
  public userData(hostname: string): string {
    const doc: Record<string, unknown> = { hostname, preserve_hostname: false };
    const users = this.props.users ?? [];
    if (users.length > 0) {
      doc.users = [
        'default',
        ...users.map((u) => ({
          name: u.name,
          shell: u.shell ?? '/bin/bash',
          lock_passwd: true,
          ssh_authorized_keys: u.sshAuthorizedKeys.map((k) => k.trim()),
          ...(u.groups && u.groups.length > 0 ? { groups: u.groups.join(',') } : {}),
          ...(u.sudo ? { sudo: 'ALL=(ALL) NOPASSWD:ALL' } : {}),
        })),
      ];
    }
    if (this.props.packages && this.props.packages.length > 0) doc.packages = this.props.packages;
    if (this.props.runCommands && this.props.runCommands.length > 0) doc.runcmd = this.props.runCommands;
    return `#cloud-config\n${JSON.stringify(doc, null, 2)}\n`;
  }

  /**
   * NoCloud meta-data: a stable instance id, so cloud-init runs once per VM, not per boot. YAML
   * 1.1 from the `yaml` library, so a name that would read as a number (`1e3`) stays a string.
   */
  public metaData(instanceId: string, hostname: string): string {
    return new Document({ 'instance-id': instanceId, 'local-hostname': hostname }, { version: '1.1' }).toString({ lineWidth: 0 });
  }
}

/** Bumped whenever the ISO writer's output changes, so seed disks are renamed with it. */
const SEED_FORMAT = 'iso9660-joliet-1';

/**
 * A NoCloud seed disk (`cidata` ISO) built at synth: reproducible bytes, written next to the
 * stack's JSON, uploaded by a plain `libvirt_volume`. Nothing is read back from the machine that
 * runs Terraform, so a plan on any machine sees the same configuration.
 */
export class SeedDisk {
  /** Content hash of the disk; part of its volume name, so a change replaces the volume. */
  public readonly hash: string;
  /** Path of the ISO relative to the stack's working directory, where Terraform runs. */
  public readonly relativePath: string;

  constructor(private readonly files: readonly { readonly name: string; readonly content: string }[]) {
    // The ISO is a function of its files, so hashing them names it without building it.
    const digest = createHash('sha256').update(SEED_FORMAT);
    for (const f of files) digest.update(`\0${f.name}\0${f.content.length}\0${f.content}`);
    this.hash = digest.digest('hex').slice(0, 16);
    this.relativePath = `cloud-init/${this.hash}.iso`;
  }

  /** The ISO image. */
  public bytes(): Buffer {
    return buildIso('cidata', this.files);
  }
}
