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
   * Commands to run once on first boot, each an argv list.
   * @default - none
   */
  readonly runCommands?: readonly (readonly string[])[];
}

const PUBLIC_KEY = /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/=]+( .*)?$/;
const LOGIN_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;

/**
 * Renders the cloud-config document (JSON is YAML, so cloud-init reads it as is) and the
 * NoCloud meta-data for a VM.
 */
export class CloudInit {
  constructor(private readonly props: CloudInitProps = {}) {}

  /** Problems with the user data, empty when valid. */
  public validate(): string[] {
    const problems: string[] = [];
    for (const user of this.props.users ?? []) {
      if (!LOGIN_NAME.test(user.name)) {
        problems.push(`cloud-init user '${user.name}' is not a valid login name (lower case letters, digits, '_' or '-')`);
      }
      for (const key of user.sshAuthorizedKeys) {
        if (key.includes('PRIVATE KEY')) {
          problems.push(`cloud-init user '${user.name}' has a private key in sshAuthorizedKeys: it would be stored in the Terraform JSON and state; pass the public key (the .pub file)`);
        } else if (!PUBLIC_KEY.test(key.trim())) {
          problems.push(`cloud-init user '${user.name}' has an SSH key that is not an OpenSSH public key ('${key.slice(0, 24)}...'); expected e.g. 'ssh-ed25519 AAAA... comment'`);
        }
      }
    }
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

  /** NoCloud meta-data: a stable instance id, so cloud-init runs once per VM, not per boot. */
  public metaData(instanceId: string, hostname: string): string {
    return `instance-id: ${instanceId}\nlocal-hostname: ${hostname}\n`;
  }
}
