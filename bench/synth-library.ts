/**
 * Child process of `npm run bench:synth`, the library side: one stack of 50 hosts (or `hosts`) in a `Cluster`
 * with shared storage and N VMs (nine in ten as replicas of 3-replica failover groups with soft
 * anti-affinity, the rest plain clustered VMs), each with a data disk and cloud-init user data.
 * Synthesized as `cdktf synth` does, with `app.synth()`.
 *
 *   node <compiled>/bench/synth-library.js <vms> <outdir> <lockdir> [hosts]
 *
 * An empty outdir leaves it to the App (`cdktf synth` names it in $CDKTF_OUTDIR).
 */
import * as path from 'path';
import { App, TerraformStack } from 'cdktf';
import { AntiAffinity, Cluster, FailoverGroup, Host, Image, Size, VirtualMachine } from '../lib';
import { BENCH, benchHostName, benchHosts, benchReport, benchShape, benchUserData } from './synth-shape';

const [vms, outdir, lockDir, hostCount] = [Number(process.argv[2]), process.argv[3], process.argv[4], benchHosts(process.argv[5])];
const start = process.hrtime.bigint();
const app = new App(outdir === '' ? {} : { outdir });
const stack = new TerraformStack(app, 'bench');
const hosts = Array.from({ length: hostCount }, (_, i) =>
  new Host(stack, benchHostName(i), {
    uri: `qemu+ssh://admin@${benchHostName(i)}.example.net/system`,
    capacity: { cores: BENCH.cores, memory: Size.gibibytes(BENCH.memoryGiB), reservedMemory: Size.gibibytes(BENCH.reservedMemoryGiB) },
    labels: { rack: `r${i % BENCH.racks}` },
  }),
);
const cluster = new Cluster(stack, 'cluster', {
  hosts,
  sharedStorage: { poolName: BENCH.sharedPool, path: '/srv/vmstore' },
  failuresToTolerate: 1,
  lockFile: path.join(lockDir, 'bench.placement-lock.json'),
  instant: new Date('2026-01-05T12:00:00Z'),
  frozenLock: false,
});
const image = Image.fromFile(BENCH.image, BENCH.imageSource);
let made = 0;
for (let g = 0; made < vms; g++) {
  const shape = benchShape(g);
  const template = {
    vcpus: shape.vcpus,
    memory: Size.mebibytes(shape.memoryMiB),
    image,
    dataDisk: { size: Size.gibibytes(shape.dataGiB) },
    cloudInit: benchUserData(g),
  };
  if (shape.group) {
    const replicas = Math.min(BENCH.replicas, vms - made);
    new FailoverGroup(stack, `svc${g}`, { cluster, replicas, antiAffinity: AntiAffinity.soft(), template });
    made += replicas;
  } else {
    new VirtualMachine(stack, `vm${g}`, { cluster, ...template });
    made += 1;
  }
}
app.synth();
benchReport('library', vms, start);
