import * as fs from 'fs';
import * as path from 'path';
import { Testing, TerraformStack } from 'cdktf';
import {
  AntiAffinity, Cluster, ClusterProps, DomainType, FailoverGroup, Host, HostState, Image, RestartPriority, Size, VirtualMachine, VmLimits,
} from '../lib';
import { appWith, domains, scratchDir, synthError } from './stacks/helpers';

const dir = scratchDir();
const image = Image.blank('base', Size.mebibytes(64));
let counter = 0;

interface Build {
  readonly hosts?: number;
  readonly capacity?: { cores: number; memoryMiB: number };
  readonly cluster?: Partial<ClusterProps>;
  readonly states?: Record<string, HostState>;
  readonly body: (stack: TerraformStack, cluster: Cluster, hosts: Host[]) => void;
  readonly lockFile?: string;
  readonly context?: Record<string, unknown>;
}

function build(b: Build) {
  const app = appWith(b.context);
  const stack = new TerraformStack(app, 'test');
  const cap = b.capacity ?? { cores: 4, memoryMiB: 4096 };
  const hosts = Array.from({ length: b.hosts ?? 2 }, (_, i) =>
    new Host(stack, `h${i + 1}`, {
      domainType: DomainType.QEMU,
      uri: `qemu+ssh://admin@h${i + 1}.example.net/system`,
      capacity: { cores: cap.cores, memory: Size.mebibytes(cap.memoryMiB) },
      labels: { rack: `r${(i % 2) + 1}` },
      state: b.states?.[`h${i + 1}`],
    }),
  );
  const cluster = new Cluster(stack, 'cluster', {
    hosts,
    lockFile: b.lockFile ?? path.join(dir, `lock-${counter++}.json`),
    frozenLock: false,
    ...b.cluster,
  });
  b.body(stack, cluster, hosts);
  return { app, stack, cluster };
}

const synth = (stack: TerraformStack) => JSON.parse(Testing.synth(stack, true));

describe('Cluster', () => {
  test('3 replicas with hard anti-affinity on 2 hosts: the rule is named', () => {
    const { stack } = build({
      body: (s, cluster) => new FailoverGroup(s, 'web', { cluster, replicas: 3, antiAffinity: AntiAffinity.hard(), template: { image } }),
    });
    const message = synthError(() => synth(stack));
    expect(message).toContain('[anti-affinity-hard]');
    expect(message).toContain('3 replicas of group web need 3 distinct hosts');
  });

  test('admission control names the failure scenario, the VMs that would not restart and the shortfall', () => {
    const { stack } = build({
      capacity: { cores: 1, memoryMiB: 1024 },
      body: (s, cluster) => {
        new VirtualMachine(s, 'a', { cluster, memory: Size.mebibytes(700), image });
        new VirtualMachine(s, 'b', { cluster, memory: Size.mebibytes(700), image });
      },
    });
    const message = synthError(() => synth(stack));
    expect(message).toMatch(/admission control: if host h\d fails, VMs [ab] cannot restart \(short of 1 vCPUs and 700 MiB\)/);
  });

  test('VMs with RestartPriority.NONE need no room to restart', () => {
    const { stack } = build({
      capacity: { cores: 1, memoryMiB: 1024 },
      body: (s, cluster) => {
        new VirtualMachine(s, 'a', { cluster, memory: Size.mebibytes(700), image, priority: RestartPriority.NONE });
        new VirtualMachine(s, 'b', { cluster, memory: Size.mebibytes(700), image, priority: RestartPriority.NONE });
      },
    });
    expect(() => synth(stack)).not.toThrow();
  });

  test('adding a host or a VM moves no existing VM (the lock)', () => {
    const lockFile = path.join(dir, 'grow.json');
    const shape = (hosts: number, vms: number) =>
      build({
        hosts,
        lockFile,
        body: (s, cluster) => {
          for (let i = 1; i <= vms; i++) new VirtualMachine(s, `vm${i}`, { cluster, memory: Size.mebibytes(256), image });
        },
      });
    const before = domains(synth(shape(2, 4).stack));
    const after = domains(synth(shape(3, 6).stack));
    for (const [address, d] of Object.entries(before)) expect(after[address]).toEqual(d);
    expect(JSON.parse(fs.readFileSync(lockFile, 'utf8')).placements).toMatchObject(
      Object.fromEntries(Object.values(before).map((d) => [d.name, d.provider.replace('libvirt.', '')])),
    );
  });

  test('maintenance moves only the drained host\'s VMs', () => {
    const lockFile = path.join(dir, 'drain.json');
    const shape = (states?: Record<string, HostState>) =>
      build({
        hosts: 3,
        lockFile,
        states,
        body: (s, cluster) => {
          for (let i = 1; i <= 6; i++) new VirtualMachine(s, `vm${i}`, { cluster, memory: Size.mebibytes(256), image });
        },
      });
    const before = domains(synth(shape().stack));
    const after = domains(synth(shape({ h2: HostState.MAINTENANCE }).stack));
    for (const [address, d] of Object.entries(before)) {
      if (d.provider === 'libvirt.h2') expect(after[address].provider).not.toBe('libvirt.h2');
      else expect(after[address]).toEqual(d);
    }
  });

  test('a frozen lock fails the synth when placement would change, naming the change', () => {
    const lockFile = path.join(dir, 'frozen.json');
    fs.writeFileSync(lockFile, JSON.stringify({ version: 1, placements: {} }));
    const { stack } = build({
      lockFile,
      cluster: { frozenLock: true },
      body: (s, cluster) => new VirtualMachine(s, 'vm1', { cluster, image }),
    });
    const message = synthError(() => synth(stack));
    expect(message).toMatch(/placement lock .*frozen.json would change \(vm1 → h\d \(new\)\)/);
    expect(JSON.parse(fs.readFileSync(lockFile, 'utf8')).placements).toEqual({});
  });

  test('every problem is reported at once: limits profile, missing capacity, bad tolerance', () => {
    const app = appWith();
    const stack = new TerraformStack(app, 'test');
    const h1 = new Host(stack, 'h1', { capacity: { cores: 16, memory: Size.gibibytes(64) } });
    const h2 = new Host(stack, 'h2');
    const cluster = new Cluster(stack, 'cluster', { hosts: [h1, h2], failuresToTolerate: 2, vmLimits: VmLimits.originalProduct(), lockFile: path.join(dir, 'bad.json'), frozenLock: false });
    new VirtualMachine(stack, 'big', { cluster, vcpus: 6, memory: Size.gibibytes(40), image });
    const message = synthError(() => synth(stack));
    expect(message).toContain("6 vCPUs exceeds the 4-vCPU ceiling of the 'original product (4 vCPUs, 32 GiB)' limits profile");
    expect(message).toContain('40 GiB of memory exceeds the 32 GiB ceiling');
    expect(message).toContain('host h2 (test/h2) has no capacity');
    expect(message).toContain('failuresToTolerate is 2 but the cluster has 2 host(s)');
  });

  test('ceilings above the start values reach the domain through the stylesheet; placement reserves the ceiling', () => {
    const { stack, cluster } = build({
      body: (s, c) => new VirtualMachine(s, 'db', { cluster: c, vcpus: 2, maxVcpus: 4, memory: Size.mebibytes(512), maxMemory: Size.gibibytes(1), image }),
    });
    const json = synth(stack);
    const [domain] = Object.values<any>(json.resource.libvirt_domain);
    expect(domain).toMatchObject({ vcpu: 4, memory: 1024 });
    expect(domain.xml.xslt).toContain('<vcpu current="2">');
    expect(domain.xml.xslt).toContain('<currentMemory unit="MiB">512</currentMemory>');
    expect(cluster.resolve().vms).toEqual([expect.objectContaining({ name: 'db', vcpus: 4, memoryMiB: 1024 })]);
  });

  test('hosts with nothing running are standby candidates, in a Terraform output and the report', () => {
    const { stack, cluster } = build({
      hosts: 3,
      cluster: { placementPolicy: 'pack' as never },
      body: (s, c) => new VirtualMachine(s, 'only', { cluster: c, image }),
    });
    const json = synth(stack);
    const [output] = Object.values<any>(json.output);
    expect(output.value).toHaveLength(2);
    const report = fs.readFileSync(path.join(cluster.reportDir, 'placement-report.md'), 'utf8');
    for (const h of output.value) expect(report).toContain(h);
    expect(fs.readFileSync(path.join(cluster.reportDir, 'placement-report.svg'), 'utf8')).toMatch(/^<svg/);
  });

  test('a host unknown to the cluster cannot be pinned or preferred', () => {
    const { stack } = build({
      body: (s, cluster) => {
        const stranger = new Host(s, 'stranger', { capacity: { cores: 1, memory: Size.gibibytes(1) } });
        new VirtualMachine(s, 'vm', { cluster, host: stranger, image });
      },
    });
    expect(synthError(() => synth(stack))).toContain('VM vm names host stranger, which is not in cluster test/cluster');
  });
});
