/**
 * Reading corosync's votequorum status (`corosync-quorumtool -s -p`), as corosync 3 prints it:
 * the outputs below are verbatim from a lab of three corosync nodes, each in a network namespace of
 * the test's own, before and after the link of h3 was cut.
 */
import { describeView, parseQuorumStatus, quorumStatusArgv } from '../../lib/ops/membership';

const QUORATE = `Quorum information
------------------
Date:             Wed Dec  2 00:29:40 2026
Quorum provider:  corosync_votequorum
Nodes:            2
Node ID:          1
Ring ID:          1.11
Quorate:          Yes

Votequorum information
----------------------
Expected votes:   3
Highest expected: 3
Total votes:      2
Quorum:           2  
Flags:            Quorate 

Membership information
----------------------
    Nodeid      Votes    Qdevice Name
         1          1         NR h1 (local)
         2          1         NR h2
`;

const CUT_OFF = `Quorum information
------------------
Date:             Wed Dec  2 00:29:40 2026
Quorum provider:  corosync_votequorum
Nodes:            1
Node ID:          3
Ring ID:          3.11
Quorate:          No

Votequorum information
----------------------
Expected votes:   3
Highest expected: 3
Total votes:      1
Quorum:           2 Activity blocked
Flags:            

Membership information
----------------------
    Nodeid      Votes    Qdevice Name
         3          1         NR h3 (local)
`;

test('a quorate partition: members, votes, the local node', () => {
  const view = parseQuorumStatus(QUORATE);
  expect(view).toEqual({ quorate: true, members: ['h1', 'h2'], local: 'h1', totalVotes: 2, expectedVotes: 3, quorum: 2 });
  expect(describeView(view)).toBe('quorate (2 of 3 votes, quorum 2): h1, h2');
});

test('the node that was cut off: not quorate, alone', () => {
  const view = parseQuorumStatus(CUT_OFF);
  expect(view).toMatchObject({ quorate: false, members: ['h3'], local: 'h3', totalVotes: 1, quorum: 2 });
  expect(describeView(view)).toBe('NOT quorate (1 of 3 votes, quorum 2): h3');
});

test('without the qdevice column (older output) the names are read all the same', () => {
  const old = QUORATE.replace('    Nodeid      Votes    Qdevice Name', '    Nodeid      Votes Name').replace(/\s+NR /g, ' ');
  expect(parseQuorumStatus(old).members).toEqual(['h1', 'h2']);
});

test('corosync not running is not a view: it throws with what the tool said', () => {
  expect(() => parseQuorumStatus('Cannot initialize QUORUM service\n')).toThrow('not a corosync quorum status: Cannot initialize QUORUM service');
  expect(() => parseQuorumStatus('')).toThrow('(no output)');
});

test('the tool runs behind the configured prefix', () => {
  expect(quorumStatusArgv({ command: [] })).toEqual(['corosync-quorumtool', '-s', '-p']);
  expect(quorumStatusArgv({ command: ['nsenter', '--target', '42', '--mount', '--net', '--'] })).toEqual(['nsenter', '--target', '42', '--mount', '--net', '--', 'corosync-quorumtool', '-s', '-p']);
});
