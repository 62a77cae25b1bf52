import { Annotations, Aspects, IAspect, TerraformStack } from 'cdktf';
import { IConstruct } from 'constructs';
import { Host } from './host';
import { RemovalPolicy, VirtualMachine } from './virtual-machine';

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;
const REMOTE_TRANSPORT = /^[a-z0-9]+\+(ssh|libssh|libssh2|tls|tcp):\/\//;

/** One explicit, per-construct departure from a secure default: listed in the report. */
export interface PolicyOptOut {
  readonly path: string;
  readonly policy: string;
  readonly detail: string;
}

/**
 * The policy every stack with a libvirt host gets: data disks protected from destroy, consoles on
 * localhost, remote connections that verify the host's key. Each has an explicit per-construct
 * opt-out (a `RemovalPolicy.DESTROY` data disk, a console `listenAddress`, a host's
 * `insecureSkipHostKeyVerification`), which becomes a warning and a line in `optOuts`.
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
      .flatMap((node) => optOutsOf(node))
      .sort((a, b) => (a.path + a.policy).localeCompare(b.path + b.policy));
  }

  public visit(node: IConstruct): void {
    if (node instanceof VirtualMachine && node.dataDisk && node.dataDiskRemovalPolicy !== RemovalPolicy.DESTROY) {
      node.dataDisk.addOverride('lifecycle.prevent_destroy', true);
    }
    if (node instanceof Host && unverifiedConnection(node) && !node.insecureSkipHostKeyVerification) {
      node.node.addValidation({
        validate: () => [
          `${unverifiedConnection(node)}: use qemu+ssh with a known_hosts entry (the default ~/.ssh/known_hosts or ?knownhosts=PATH), or set insecureSkipHostKeyVerification: true to accept the risk`,
        ],
      });
    }
    for (const o of optOutsOf(node)) Annotations.of(node).addWarning(`[${o.policy}] opted out: ${o.detail}`);
  }
}

function optOutsOf(node: IConstruct): PolicyOptOut[] {
  const found: PolicyOptOut[] = [];
  const path = node.node.path;
  if (node instanceof VirtualMachine) {
    if (node.dataDisk && node.dataDiskRemovalPolicy === RemovalPolicy.DESTROY) {
      found.push({ path, policy: 'data-disk-protection', detail: 'data disk is destroyed with the VM (RemovalPolicy.DESTROY)' });
    }
    if (!LOOPBACK.test(node.consoleListenAddress)) {
      found.push({ path, policy: 'console-on-localhost', detail: `VNC console listens on ${node.consoleListenAddress}, not on localhost` });
    }
  }
  if (node instanceof Host && node.insecureSkipHostKeyVerification) {
    const detail = unverifiedConnection(node);
    if (detail) found.push({ path, policy: 'host-key-verification', detail });
  }
  return found;
}

/** Why a host's connection is not verified, or undefined when it is (or is local). */
function unverifiedConnection(host: Host): string | undefined {
  if (!REMOTE_TRANSPORT.test(host.uri)) return undefined;
  if (/^[a-z0-9]+\+tcp:\/\//.test(host.uri)) return `uri ${host.uri} uses unauthenticated, unencrypted TCP`;
  const query = new URLSearchParams(host.uri.split('?')[1] ?? '');
  const skips = query.has('no_verify') || query.get('known_hosts_verify') === 'ignore';
  return skips ? `uri ${host.uri} does not verify the host key` : undefined;
}
