import { Annotations, Aspects, IAspect, TerraformStack } from 'cdktf';
import { IConstruct } from 'constructs';

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;
const REMOTE_TRANSPORT = /^[a-z0-9]+\+(ssh|libssh|libssh2|sshcmd|tls|tcp):\/\//;

/** One explicit, per-construct departure from a secure default: listed in the report. */
export interface PolicyOptOut {
  readonly path: string;
  readonly policy: string;
  readonly detail: string;
}

/** A construct the policy applies to: it applies each default to itself and names its opt-outs. */
export interface IPolicyTarget extends IConstruct {
  /** Applies the defaults the construct has not opted out of (e.g. `prevent_destroy`). */
  applySecureDefaults(): void;
  /** The defaults the construct opted out of, explicitly. */
  policyOptOuts(): PolicyOptOut[];
}

const POLICY_TARGETS = new WeakSet<IConstruct>();

/** Called by a policy target's constructor, so the aspect finds it without knowing its class. */
export function markPolicyTarget(target: IPolicyTarget): void {
  POLICY_TARGETS.add(target);
}

function isPolicyTarget(node: IConstruct): node is IPolicyTarget {
  return POLICY_TARGETS.has(node);
}

/**
 * The policy every stack with a libvirt host gets: data disks protected from destroy, consoles on
 * localhost, remote connections that verify the host's key. Each has an explicit per-construct
 * opt-out (a `RemovalPolicy.DESTROY` data disk, a console `listenAddress`, a host's
 * `insecureSkipHostKeyVerification`), which becomes a warning and a line in the report.
 */
export class SecureDefaults implements IAspect {
  /** Adds the policy to the stack holding `scope`, once. */
  public static applyTo(scope: IConstruct): SecureDefaults {
    const stack = TerraformStack.of(scope);
    const existing = Aspects.of(stack).all.find((a): a is SecureDefaults => a instanceof SecureDefaults);
    if (existing) return existing;
    const aspect = new SecureDefaults();
    Aspects.of(stack).add(aspect);
    return aspect;
  }

  /** Every opt-out under `scope`, sorted by path: for the report. */
  public static optOutsIn(scope: IConstruct): PolicyOptOut[] {
    return scope.node
      .findAll()
      .flatMap((node) => (isPolicyTarget(node) ? node.policyOptOuts() : []))
      .sort((a, b) => (a.path + a.policy).localeCompare(b.path + b.policy));
  }

  public visit(node: IConstruct): void {
    if (!isPolicyTarget(node)) return;
    node.applySecureDefaults();
    for (const o of node.policyOptOuts()) Annotations.of(node).addWarning(`[${o.policy}] opted out: ${o.detail}`);
  }
}

/** The console opt-out of a VM whose console listens on `address`, if it is not on localhost. */
export function consoleOptOut(path: string, address: string): PolicyOptOut | undefined {
  return LOOPBACK.test(address) ? undefined : { path, policy: 'console-on-localhost', detail: `VNC console listens on ${address}, not on localhost` };
}

/** Why a connection URI is not verified, or undefined when it is (or is local). */
export function unverifiedConnection(uri: string): string | undefined {
  if (!REMOTE_TRANSPORT.test(uri)) return undefined;
  if (/^[a-z0-9]+\+tcp:\/\//.test(uri)) return `uri ${uri} uses unauthenticated, unencrypted TCP`;
  const query = new URLSearchParams(uri.split('?')[1] ?? '');
  const skips = query.has('no_verify') || query.get('known_hosts_verify') === 'ignore';
  return skips ? `uri ${uri} does not verify the host key` : undefined;
}
