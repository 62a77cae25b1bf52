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

  private readonly found = new Map<string, PolicyOptOut>();

  /** The opt-outs found in the last synthesis, sorted by path. */
  public get optOuts(): PolicyOptOut[] {
    return [...this.found.values()].sort((a, b) => (a.path + a.policy).localeCompare(b.path + b.policy));
  }

  public visit(node: IConstruct): void {
    if (node instanceof VirtualMachine) this.visitVm(node);
    if (node instanceof Host) this.visitHost(node);
  }

  private visitVm(vm: VirtualMachine): void {
    if (vm.dataDisk) {
      if (vm.dataDiskRemovalPolicy === RemovalPolicy.DESTROY) {
        this.optOut(vm, 'data-disk-protection', 'data disk is destroyed with the VM (RemovalPolicy.DESTROY)');
      } else {
        vm.dataDisk.addOverride('lifecycle.prevent_destroy', true);
      }
    }
    const listen = vm.consoleListenAddress;
    if (!LOOPBACK.test(listen)) {
      this.optOut(vm, 'console-on-localhost', `VNC console listens on ${listen}, not on localhost`);
    }
  }

  private visitHost(host: Host): void {
    if (!REMOTE_TRANSPORT.test(host.uri)) return;
    const query = new URLSearchParams(host.uri.split('?')[1] ?? '');
    const skips = query.has('no_verify') || query.get('known_hosts_verify') === 'ignore';
    const plaintext = /^[a-z0-9]+\+tcp:\/\//.test(host.uri);
    if (!skips && !plaintext) return;
    const detail = plaintext
      ? `uri ${host.uri} uses unauthenticated, unencrypted TCP`
      : `uri ${host.uri} does not verify the host key`;
    if (host.insecureSkipHostKeyVerification) {
      this.optOut(host, 'host-key-verification', detail);
    } else {
      host.node.addValidation({
        validate: () => [
          `${detail}: use qemu+ssh with a known_hosts entry (the default ~/.ssh/known_hosts or ?knownhosts=PATH), or set insecureSkipHostKeyVerification: true to accept the risk`,
        ],
      });
    }
  }

  private optOut(node: IConstruct, policy: string, detail: string): void {
    const path = node.node.path;
    if (!this.found.has(`${path}:${policy}`)) {
      Annotations.of(node).addWarning(`[${policy}] opted out: ${detail}`);
    }
    this.found.set(`${path}:${policy}`, { path, policy, detail });
  }
}
