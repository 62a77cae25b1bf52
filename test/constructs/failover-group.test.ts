import * as fs from 'fs';
import { TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import { AntiAffinity, Cluster, FailoverGroup, FailureDomain, Host, Image, Schedule, Size } from '../../lib';
import { domains, scratchLock, synth, synthError } from '../synth';

interface GroupShape {
  readonly replicas: number | Schedule;
  /** The instant the schedule is evaluated for. */
  readonly at: string;
  readonly lockFile?: string;
  readonly timeZone?: string;
  readonly antiAffinity?: AntiAffinity;
}

/**
 * Three hosts (h1 and h3 in rack r0, h2 in r1), a cluster in Europe/Zurich that tolerates no
 * failure (admission control is tested with the cluster) and a group `web`.
 */
function group(shape: GroupShape) {
  const built: { web?: FailoverGroup } = {};
  const build = (app: Construct) => {
    const stack = new TerraformStack(app, 'test');
    const capacity = { cores: 4, memory: Size.gibibytes(8) };
    const hosts = ['h1', 'h2', 'h3'].map((h, i) => new Host(stack, h, { capacity, labels: { rack: `r${i % 2}` } }));
    const cluster = new Cluster(stack, 'cluster', {
      hosts,
      timeZone: shape.timeZone ?? 'Europe/Zurich',
      instant: new Date(shape.at),
      lockFile: shape.lockFile ?? scratchLock(),
      failuresToTolerate: 0,
      frozenLock: false,
    });
    built.web = new FailoverGroup(stack, 'web', {
      cluster,
      replicas: shape.replicas,
      antiAffinity: shape.antiAffinity ?? AntiAffinity.hard().across(FailureDomain.label('rack')),
      template: { image: Image.blank('b', Size.mebibytes(64)) },
    });
  };
  return { build, built };
}

const deployed = (json: any) => Object.values(domains(json)).map((d) => d.name).sort();

describe('FailoverGroup', () => {
  test('replica i has the stable id replica-i and the name <group>-i', () => {
    const { build, built } = group({ replicas: 2, at: '2026-11-26T12:00:00Z' });
    const json = synth(build).json('test');
    expect(built.web!.replicas.map((r) => [r.node.id, r.vmName])).toEqual([['replica-1', 'web-1'], ['replica-2', 'web-2']]);
    expect(Object.values<any>(json.resource.libvirt_domain).map((d) => [d['//'].metadata.path, d.name])).toEqual([
      ['test/web/replica-1/Resource', 'web-1'],
      ['test/web/replica-2/Resource', 'web-2'],
    ]);
  });

  test('the schedule is evaluated in the cluster time zone; off-window replicas are reserved but not deployed', () => {
    const schedule = Schedule.from('08:00', 2).and('20:00', 1);
    const lockFile = scratchLock();
    // 07:30 in Zurich: one replica runs, and the second keeps its place in the lock.
    expect(deployed(synth(group({ replicas: schedule, at: '2026-11-26T06:30:00Z', lockFile }).build).json('test'))).toEqual(['web-1']);
    const reserved = JSON.parse(fs.readFileSync(lockFile, 'utf8')).placements;
    expect(Object.keys(reserved)).toEqual(['web-1', 'web-2']);
    // 08:30 in Zurich: both run, where the lock reserved them.
    const peak = synth(group({ replicas: schedule, at: '2026-11-26T07:30:00Z', lockFile }).build).json('test');
    expect(Object.values(domains(peak)).map((d) => [d.name, d.provider])).toEqual([
      ['web-1', `libvirt.${reserved['web-1']}`],
      ['web-2', `libvirt.${reserved['web-2']}`],
    ]);
  });

  test('anti-affinity across a label is passed to placement', () => {
    const json = synth(group({ replicas: 2, at: '2026-11-26T12:00:00Z' }).build).json('test');
    const rackOf: Record<string, string> = { 'libvirt.h1': 'r0', 'libvirt.h2': 'r1', 'libvirt.h3': 'r0' };
    const racks = Object.values(domains(json)).map((d) => rackOf[d.provider]);
    expect(racks.sort()).toEqual(['r0', 'r1']);
  });

  test('3 replicas with hard anti-affinity across 2 racks cannot be placed, and synth says so', () => {
    expect(synthError(group({ replicas: 3, at: '2026-11-26T12:00:00Z' }).build)).toContain(
      '[test/cluster] [anti-affinity-hard] web: 3 replicas of group web need 3 distinct values of label rack with hard anti-affinity; active hosts span only 2 (r0, r1)',
    );
  });

  test('an unknown time zone is a validation error of the cluster, not an exception from the group', () => {
    const message = synthError(group({ replicas: Schedule.from('08:00', 2).and('20:00', 1), at: '2026-11-26T12:00:00Z', timeZone: 'Mars/Olympus' }).build);
    expect(message).toContain("[test/cluster] timeZone 'Mars/Olympus' is not an IANA time zone such as 'Europe/Zurich'");
  });

  test('a window at 02:30 on the night clocks fall back switches once: replicas never go 3 → 2 → 3', () => {
    // Europe/Zurich, 2026-10-25: 02:00-03:00 local happens twice, first at +02:00 (00:00-01:00Z),
    // then at +01:00 (01:00-02:00Z). The 02:30 window starts at its first occurrence and holds.
    const schedule = Schedule.from('02:30', 3).and('20:00', 2);
    const lockFile = scratchLock();
    const instants = ['2026-10-25T00:15:00Z', '2026-10-25T00:45:00Z', '2026-10-25T01:15:00Z', '2026-10-25T01:45:00Z', '2026-10-25T02:15:00Z'];
    const running = instants.map((at) => deployed(synth(group({ replicas: schedule, at, lockFile, antiAffinity: AntiAffinity.soft() }).build).json('test')).length);
    expect(running).toEqual([2, 3, 3, 3, 3]);
  });
});
