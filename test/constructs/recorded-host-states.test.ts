/**
 * A deploy from the repository that sees the controllers' decisions: the synth given their record
 * (context libvirt-cluster:decision-record) applies the host states they decided, warns, and says
 * so in the placement report; an explicit host-state override still wins; a record named but
 * missing fails the synth once.
 */
import * as fs from 'fs';
import * as path from 'path';
import { TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import { emptyRecord, revise } from '../../lib/core/decision-record';
import { Cluster, DomainType, Host, Image, Size, VirtualMachine } from '../../lib';
import { domains, scratchDir, scratchLock, synth, synthProblems } from '../synth';

const image = Image.blank('base', Size.mebibytes(64));

function app(lockFile: string) {
  return (scope: Construct) => {
    const stack = new TerraformStack(scope, 'test');
    const hosts = ['h1', 'h2'].map((name) => new Host(stack, name, { domainType: DomainType.QEMU, uri: `qemu+ssh://admin@${name}.example.net/system`, capacity: { cores: 4, memory: Size.gibibytes(4) } }));
    const cluster = new Cluster(stack, 'cluster', { hosts, lockFile, frozenLock: false });
    for (const vm of ['a', 'b']) new VirtualMachine(stack, vm, { cluster, memory: Size.mebibytes(256), image });
  };
}

function recordFile(states: Record<string, 'failed' | 'standby' | 'active'>): string {
  const file = path.join(scratchDir('record-'), 'decisions.json');
  const record = revise(emptyRecord({ hostStates: {}, poweredOff: [] as string[] }), { decisions: { hostStates: states, poweredOff: [] } }, 'b', Date.parse('2026-11-26T02:00:15Z'), 'fenced');
  fs.writeFileSync(file, JSON.stringify(record));
  return file;
}

test('the record says h2 failed: the synth places everything on h1, warns, and the report says why and how to catch the code up', () => {
  const lockFile = scratchLock();
  const before = domains(synth(app(lockFile)).json('test'));
  expect(new Set(Object.values(before).map((d) => d.provider))).toEqual(new Set(['libvirt.h1', 'libvirt.h2']));
  const file = recordFile({ h2: 'failed' });
  const out = synth(app(lockFile), { context: { 'libvirt-cluster:decision-record': file } });
  const after = domains(out.json('test'));
  expect(Object.keys(after).sort()).toEqual(Object.keys(before).sort()); // same addresses: nothing destroyed
  expect(new Set(Object.values(after).map((d) => d.provider))).toEqual(new Set(['libvirt.h1']));
  const warning = `host h2 is failed, not active as in code: fenced (powered off) and declared failed: its VMs were restarted elsewhere by controller b at 2026-11-26T02:00:15.000Z (decision record ${file}, revision 1). Commit state: HostState.FAILED for h2 to catch the code up, or reconcile --override-decision h2 to undo the decision.`;
  expect(out.warnings('test')).toContain(`test/h2: ${warning}`);
  expect(out.file('test', 'placement-report.md')).toContain(warning);
  expect(JSON.parse(out.file('test', 'controller.json')).clusters[0].hosts).toEqual([{ name: 'h1', state: 'active' }, { name: 'h2', state: 'failed' }]);
});

test('an explicit host-state override wins over the record; a record with nothing to say, or that agrees, changes nothing', () => {
  const file = recordFile({ h2: 'failed' });
  const overridden = synth(app(scratchLock()), { context: { 'libvirt-cluster:decision-record': file, 'libvirt-cluster:host-state:h2': 'active' } });
  expect(new Set(Object.values(domains(overridden.json('test'))).map((d) => d.provider))).toEqual(new Set(['libvirt.h1', 'libvirt.h2']));
  expect(overridden.warnings('test').filter((w) => w.includes('decision record'))).toEqual([]);
  const none = path.join(scratchDir('record-'), 'none.json');
  fs.writeFileSync(none, 'null\n'); // `record --out` before any controller wrote one
  expect(synth(app(scratchLock()), { context: { 'libvirt-cluster:decision-record': none } }).warnings('test').filter((w) => w.includes('decision record'))).toEqual([]);
});

test('a record named but missing fails the synth, once, saying how to write it', () => {
  const missing = path.join(scratchDir('record-'), 'missing.json');
  const problems = synthProblems(app(scratchLock()), { context: { 'libvirt-cluster:decision-record': missing } });
  expect(problems.filter((p) => p.includes('decision-record'))).toEqual([
    `[test/h1] context libvirt-cluster:decision-record names ${missing}, which does not exist: write it with \`cdktf-libvirt-cluster record --stack-dir <stack folder> --out ${missing}\`, or remove the context value`,
  ]);
});
