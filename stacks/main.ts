/**
 * The app in cdktf.json: `npx cdktf synth` writes every example stack to cdktf.out/, each with its
 * placement report. Environment (all optional): LIBVIRT_URI and LIBVIRT_POOL_PATH (demo stack),
 * LIBVIRT_HOSTS, LIBVIRT_SHARED_PATH (clustered stacks), LIBVIRT_DOMAIN_TYPE (see stacks/environment.ts).
 */
import { App } from 'cdktf';
import { RESOURCE_LOCK_CONTEXT } from '../lib';
import { BranchOfficeStack } from './branch-office';
import { DedicatedHostStack } from './dedicated-host';
import { DemoStack } from './demo';
import { stackEnvironment } from './environment';
import { MailServiceStack } from './mail-service';

// Each stack's resource lock is committed here, beside its placement lock.
const app = new App({ context: { [RESOURCE_LOCK_CONTEXT.dir]: __dirname } });
const environment = stackEnvironment();
new DemoStack(app, 'demo', {
  uri: process.env.LIBVIRT_URI,
  domainType: environment.domainType,
  poolPath: process.env.LIBVIRT_POOL_PATH,
});
new MailServiceStack(app, 'mail-service', { environment });
new BranchOfficeStack(app, 'branch-office', { environment });
new DedicatedHostStack(app, 'dedicated-host', { environment });
app.synth();
