import { AntiAffinitySpec, FailureDomainSpec, HOST_DOMAIN, labelDomain } from '../core/model';

/**
 * What replicas are kept apart across: each host, or each value of a host label such as `rack`.
 *
 * @example
 * FailureDomain.HOST;            // no two replicas on one host
 * FailureDomain.label('rack');   // no two replicas in one rack
 */
export class FailureDomain {
  /** Every host is a failure domain of its own. */
  public static readonly HOST = new FailureDomain(HOST_DOMAIN);

  /** Hosts with the same value of the host label `name` share a failure domain. */
  public static label(name: string): FailureDomain {
    if (!/^[A-Za-z0-9][A-Za-z0-9._/-]*$/.test(name)) {
      throw new Error(`FailureDomain.label('${name}'): a label key is letters, digits, '.', '_', '/' or '-', such as 'rack'`);
    }
    return new FailureDomain(labelDomain(name));
  }

  private constructor(
    /** The domain as the placement core sees it. */
    public readonly spec: FailureDomainSpec,
  ) {}

  public toString(): string {
    return this.spec.kind === 'host' ? 'hosts' : `values of label '${this.spec.label}'`;
  }
}

/**
 * Keeps the replicas of a failover group apart: on different hosts, or in different values of a
 * host label such as `rack`.
 *
 * @example
 * AntiAffinity.hard().across(FailureDomain.label('rack')); // never two replicas in one rack
 * AntiAffinity.soft();                                      // different hosts when possible
 */
export class AntiAffinity {
  /** Never broken: placement and admission control fail rather than put two replicas together. */
  public static hard(): AntiAffinity {
    return new AntiAffinity(true, FailureDomain.HOST);
  }

  /** Kept when possible, relaxed with a warning otherwise (e.g. after a host failure). */
  public static soft(): AntiAffinity {
    return new AntiAffinity(false, FailureDomain.HOST);
  }

  private constructor(
    /** Whether the rule may never be relaxed. */
    public readonly hard: boolean,
    /** What the replicas are kept apart across. */
    public readonly domain: FailureDomain,
  ) {}

  /** The same rule across another failure domain. */
  public across(domain: FailureDomain): AntiAffinity {
    return new AntiAffinity(this.hard, domain);
  }

  /** The rule as the placement core sees it. */
  public toSpec(): AntiAffinitySpec {
    return { hard: this.hard, domain: this.domain.spec };
  }

  public toString(): string {
    return `${this.hard ? 'hard' : 'soft'} anti-affinity across ${this.domain}`;
  }
}
