/**
 * The app of the pull-request pipeline test (pr-pipeline.e2e.test.ts), run by the cdktf CLI as a
 * user's `main.ts` is: a failover group on a two-host cluster, its state in PostgreSQL. The lab
 * passes its hosts in the environment:
 *
 *   PIPELINE_HOSTS        h1=URI,h2=URI
 *   PIPELINE_SHARED_PATH  the shared pool's folder on every host
 *   PIPELINE_LOCK_FILE    the committed placement lock
 *   PIPELINE_PEAK         replicas from 08:00 (default 2; 1 from 20:00)
 */
import { App, TerraformStack } from 'cdktf';
import { AntiAffinity, Cluster, DomainType, FailoverGroup, Host, Image, PostgresBackend, Schedule, Size } from '../../lib';

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const app = new App();
const stack = new TerraformStack(app, 'web');
new PostgresBackend(stack);
const hosts = env('PIPELINE_HOSTS')
  .split(',')
  .map((pair) => pair.split(/=(.*)/s))
  .map(([name, uri]) => new Host(stack, name, { uri, domainType: DomainType.QEMU, capacity: { cores: 4, memory: Size.gibibytes(4) } }));
const cluster = new Cluster(stack, 'cluster', {
  hosts,
  sharedStorage: { poolName: 'shared', path: env('PIPELINE_SHARED_PATH') },
  timeZone: 'Europe/Zurich',
  lockFile: env('PIPELINE_LOCK_FILE'),
});
new FailoverGroup(stack, 'web', {
  cluster,
  replicas: Schedule.from('08:00', Number(process.env.PIPELINE_PEAK ?? 2)).and('20:00', 1),
  antiAffinity: AntiAffinity.soft(),
  template: { vcpus: 1, memory: Size.mebibytes(96), image: Image.blank('blank', Size.mebibytes(16)) },
});
app.synth();
