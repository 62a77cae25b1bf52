/**
 * Child process of `npm run bench:synth`, the baseline: the resources the library stack of
 * `synth-library.ts` synthesizes, declared directly with the generated provider bindings, as a
 * user without the library would write them. No placement (hosts round-robin), no validation, no
 * report; the seed disk is a `libvirt_cloudinit_disk` the provider builds at apply time, uploaded
 * by the same `libvirt_volume` (its `create.content.url` is the disk's `path`), where the library
 * writes the ISO at synth. Construct paths mirror the library's, so addresses are as long.
 *
 *   node <compiled>/bench/synth-raw.js <vms> <outdir> <unused> [hosts]
 */
import { App, TerraformOutput, TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import { CloudinitDisk } from '../lib/generated/libvirt/cloudinit-disk';
import { Domain } from '../lib/generated/libvirt/domain';
import { Network } from '../lib/generated/libvirt/network';
import { Pool } from '../lib/generated/libvirt/pool';
import { LibvirtProvider } from '../lib/generated/libvirt/provider';
import { Volume } from '../lib/generated/libvirt/volume';
import { BENCH, benchHostName, benchHosts, benchReport, benchShape, benchUserData } from './synth-shape';

const [vms, outdir, hostCount] = [Number(process.argv[2]), process.argv[3], benchHosts(process.argv[5])];
const start = process.hrtime.bigint();
const app = new App({ outdir });
const stack = new TerraformStack(app, 'bench');
const hosts = Array.from({ length: hostCount }, (_, i) => {
  const name = benchHostName(i);
  const scope = new Construct(stack, name);
  const provider = new LibvirtProvider(scope, 'Provider', { alias: name, uri: `qemu+ssh://admin@${name}.example.net/system` });
  const pool = new Pool(scope, 'Pool', { provider, name: 'cdktf-local', type: 'dir', target: { path: `/var/lib/libvirt/images/${name}` } });
  const network = new Network(scope, 'Network', { provider, name: `${name}-isolated`, autostart: true });
  return { provider, pool, network };
});
const cluster = new Construct(stack, 'cluster');
new TerraformOutput(cluster, 'StandbyCandidates', {
  value: [],
  description: 'Active hosts that run no VM in the current schedule window: they could go to standby',
});
const base = new Volume(cluster, `Image-${BENCH.image}`, {
  provider: hosts[0].provider,
  pool: BENCH.sharedPool,
  name: `base-${BENCH.image}.qcow2`,
  target: { format: { type: 'qcow2' } },
  create: { content: { url: BENCH.imageSource } },
});

/** The same cloud-config document the library renders. */
function userData(hostname: string, g: number): string {
  const props = benchUserData(g);
  const doc = {
    hostname,
    preserve_hostname: false,
    users: ['default', ...props.users.map((u) => ({ name: u.name, shell: '/bin/bash', lock_passwd: true, ssh_authorized_keys: u.sshAuthorizedKeys, groups: u.groups.join(','), sudo: 'ALL=(ALL) NOPASSWD:ALL' }))],
    packages: props.packages,
    runcmd: props.runCommands,
  };
  return `#cloud-config\n${JSON.stringify(doc, null, 2)}\n`;
}

let made = 0;
function vm(scope: Construct, id: string, name: string, g: number): void {
  const shape = benchShape(g);
  const host = hosts[made++ % hosts.length];
  const provider = host.provider;
  const node = new Construct(scope, id);
  const data = new Volume(node, 'DataDisk', {
    provider,
    name: `${name}-data.qcow2`,
    pool: BENCH.sharedPool,
    target: { format: { type: 'qcow2' } },
    capacity: shape.dataGiB * 1024 ** 3,
    lifecycle: { preventDestroy: true },
  });
  const boot = new Volume(node, 'BootDisk', {
    provider,
    name: `${name}-boot.qcow2`,
    pool: BENCH.sharedPool,
    target: { format: { type: 'qcow2' } },
    capacity: base.capacity,
    backingStore: { path: base.path, format: { type: 'qcow2' } },
  });
  const seed = new CloudinitDisk(node, 'Seed', {
    provider,
    name: `${name}-cloudinit`,
    userData: userData(name, g),
    metaData: `instance-id: ${name}\nlocal-hostname: ${name}\n`,
  });
  const cloudInit = new Volume(node, 'CloudInit', {
    provider,
    name: `${name}-cloudinit.iso`,
    pool: host.pool.name,
    create: { content: { url: seed.path } },
  });
  const disk = (v: Volume, dev: string) => ({ source: { volume: { pool: v.pool, volume: v.name } }, target: { dev, bus: 'virtio' }, driver: { type: 'qcow2' } });
  new Domain(node, 'Resource', {
    provider,
    name,
    type: 'kvm',
    vcpu: shape.vcpus,
    memory: shape.memoryMiB,
    memoryUnit: 'MiB',
    os: { type: 'hvm', typeArch: 'x86_64', bootDevices: [{ dev: 'hd' }] },
    autostart: false,
    running: true,
    devices: {
      disks: [
        disk(boot, 'vda'),
        disk(data, 'vdb'),
        { device: 'cdrom', source: { volume: { pool: cloudInit.pool, volume: cloudInit.name } }, target: { dev: 'sda', bus: 'sata' }, readOnly: true },
      ],
      interfaces: [{ source: { network: { network: host.network.name } }, model: { type: 'virtio' } }],
      consoles: [{ target: { type: 'serial', port: 0 } }],
      graphics: [{ vnc: { autoPort: true, listen: '127.0.0.1' } }],
    },
  });
}

for (let g = 0; made < vms; g++) {
  if (benchShape(g).group) {
    const group = new Construct(stack, `svc${g}`);
    const replicas = Math.min(BENCH.replicas, vms - made);
    for (let i = 1; i <= replicas; i++) vm(group, `replica-${i}`, `svc${g}-${i}`, g);
  } else {
    vm(stack, `vm${g}`, `vm${g}`, g);
  }
}
app.synth();
benchReport('raw', vms, start);
