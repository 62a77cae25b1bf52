/**
 * Keeps the replicas of a failover group apart: on different hosts, or in different values of a
 * host label such as `rack`.
 *
 * @example
 * AntiAffinity.hard().across('rack'); // never two replicas in one rack
 * AntiAffinity.soft();                 // different hosts when possible
 */
export class AntiAffinity {
  /** Never broken: placement and admission control fail rather than put two replicas together. */
  public static hard(): AntiAffinity {
    return new AntiAffinity(true, 'host');
  }

  /** Kept when possible, relaxed with a warning otherwise (e.g. after a host failure). */
  public static soft(): AntiAffinity {
    return new AntiAffinity(false, 'host');
  }

  private constructor(
    /** Whether the rule may be relaxed. */
    public readonly hard: boolean,
    /** `host`, or the host label whose values are the failure domains. */
    public readonly scope: string,
  ) {}

  /** The same rule across the values of a host label instead of across hosts. */
  public across(label: string): AntiAffinity {
    return new AntiAffinity(this.hard, label);
  }

  public toString(): string {
    return `${this.hard ? 'hard' : 'soft'} anti-affinity across ${this.scope === 'host' ? 'hosts' : `'${this.scope}' labels`}`;
  }
}
