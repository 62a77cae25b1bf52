/**
 * Membership and quorum of the controller's partition, from Corosync's votequorum: who is in the
 * cluster as the controller's own corosync node sees it, and whether that partition is quorate.
 * The controller never derives either from its own probes; this module turns the output of
 * `corosync-quorumtool -s -p` into a {@link MembershipView} (pure) and says how to run it. The
 * controller runs the command (`controller.ts`) and decides with the view (`controller-core.ts`).
 */

/** What corosync says of the partition the controller's node is in. */
export interface MembershipView {
  /** votequorum's verdict for this partition. */
  readonly quorate: boolean;
  /** The node names in this partition's membership, sorted (the controller's own node among them). */
  readonly members: readonly string[];
  /** This node's name (marked `(local)` by the tool), when shown. */
  readonly local?: string;
  /** Votes present in this partition. */
  readonly totalVotes?: number;
  /** Votes the cluster expects. */
  readonly expectedVotes?: number;
  /** Votes needed for quorum. */
  readonly quorum?: number;
}

/** How the controller reaches its corosync (resolved from `membership.corosync` of the configuration). */
export interface CorosyncMembership {
  /** Runs before the tool (empty: the controller's machine is a corosync node). */
  readonly command: readonly string[];
  /** The corosync node name of each host. */
  readonly nodes: Readonly<Record<string, string>>;
  /** How long the tool may take before the membership counts as unknown. */
  readonly timeoutMs: number;
}

/** The argv that prints the quorum status in machine-readable form. */
export function quorumStatusArgv(membership: Pick<CorosyncMembership, 'command'>): string[] {
  return [...membership.command, 'corosync-quorumtool', '-s', '-p'];
}

/**
 * Reads `corosync-quorumtool -s -p` (the tool exits 2 when the partition is not quorate, and
 * still prints it). Throws when the text is not a quorum status (corosync not running prints
 * "Cannot initialize QUORUM service" and nothing of this).
 */
export function parseQuorumStatus(text: string): MembershipView {
  const field = (name: string) => new RegExp(`^${name}:\\s*(.*?)\\s*$`, 'm').exec(text)?.[1];
  const quorate = field('Quorate');
  if (quorate === undefined) throw new Error(`not a corosync quorum status: ${text.trim().split('\n').slice(0, 2).join(' ') || '(no output)'}`);
  const number = (name: string) => {
    const value = Number(/^\d+/.exec(field(name) ?? '')?.[0] ?? NaN);
    return Number.isNaN(value) ? undefined : value;
  };
  const members: string[] = [];
  let local: string | undefined;
  const table = text.split(/^Membership information\s*$/m)[1] ?? '';
  for (const line of table.split('\n')) {
    // "         1          1         NR h1 (local)": node id, votes, optionally the qdevice column, name.
    const row = /^\s*(\d+|0x[0-9a-f]+)\s+(\d+)\s+(?:(?:[A-Z,]+|NR)\s+)?(\S+)(\s+\(local\))?\s*$/i.exec(line);
    if (row === null) continue;
    members.push(row[3]);
    if (row[4] !== undefined) local = row[3];
  }
  return {
    quorate: /^yes$/i.test(quorate),
    members: members.sort(),
    ...(local === undefined ? {} : { local }),
    ...(number('Total votes') === undefined ? {} : { totalVotes: number('Total votes') }),
    ...(number('Expected votes') === undefined ? {} : { expectedVotes: number('Expected votes') }),
    ...(number('Quorum') === undefined ? {} : { quorum: number('Quorum') }),
  };
}

/** The view in words, for the event log: "quorate (3 of 5 votes, quorum 3): c1, h1, h2". */
export function describeView(view: MembershipView): string {
  const votes = view.totalVotes !== undefined ? ` (${view.totalVotes} of ${view.expectedVotes ?? '?'} votes, quorum ${view.quorum ?? '?'})` : '';
  return `${view.quorate ? 'quorate' : 'NOT quorate'}${votes}: ${view.members.join(', ') || 'no members'}`;
}
