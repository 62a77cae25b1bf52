import * as os from 'os';
import * as path from 'path';
import { Testing, TerraformStack } from 'cdktf';
import { AntiAffinity, Cluster, FailoverGroup, Host, Image, Schedule, Size } from '../lib';

function group(replicas: number | Schedule, at: string) {
  const stack = new TerraformStack(Testing.app(), 'test');
  const capacity = { cores: 4, memory: Size.gibibytes(8) };
  const hosts = ['h1', 'h2', 'h3'].map((h, i) => new Host(stack, h, { capacity, labels: { rack: `r${i % 2}` } }));
  const cluster = new Cluster(stack, 'cluster', {
    hosts,
    timeZone: 'Europe/Zurich',
    instant: new Date(at),
    lockFile: path.join(os.tmpdir(), `fg-${process.pid}-${Math.random()}.json`),
    frozenLock: false,
  });
  const web = new FailoverGroup(stack, 'web', { cluster, replicas, antiAffinity: AntiAffinity.hard().across('rack'), template: { image: Image.blank('b', Size.mebibytes(64)) } });
  return { stack, cluster, web };
}

describe('FailoverGroup', () => {
  test('replica i has the stable id replica-i and the name <group>-i', () => {
    const { web } = group(2, '2026-11-26T12:00:00Z');
    expect(web.replicas.map((r) => [r.node.id, r.vmName])).toEqual([['replica-1', 'web-1'], ['replica-2', 'web-2']]);
  });

  test('the schedule is evaluated in the cluster time zone; off-window replicas are reserved but not deployed', () => {
    const schedule = Schedule.from('08:00', 2).and('20:00', 1);
    expect(group(schedule, '2026-11-26T06:30:00Z').web.runningReplicas).toHaveLength(1); // 07:30 in Zurich
    const { web, cluster } = group(schedule, '2026-11-26T07:30:00Z'); // 08:30 in Zurich
    expect(web.runningReplicas).toHaveLength(2);
    expect(cluster.resolve().vms.map((v) => [v.name, v.active])).toEqual([['web-1', true], ['web-2', true]]);
  });

  test('anti-affinity across a label is passed to placement', () => {
    const { cluster } = group(2, '2026-11-26T12:00:00Z');
    const { placements } = cluster.resolve().placement;
    const rackOf = (h: string) => ({ h1: 'r0', h2: 'r1', h3: 'r0' })[h as 'h1'];
    expect(rackOf(placements['web-1'])).not.toBe(rackOf(placements['web-2']));
  });

  test('3 replicas with hard anti-affinity across 2 racks cannot be placed, and synth says so', () => {
    const { stack } = group(3, '2026-11-26T12:00:00Z');
    expect(() => Testing.synth(stack, true)).toThrow(/anti-affinity-hard/);
  });
});
