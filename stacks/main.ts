/**
 * The app in cdktf.json: `npx cdktf synth` writes every example stack to cdktf.out/.
 * Environment (all optional): LIBVIRT_URI, LIBVIRT_DOMAIN_TYPE (kvm|qemu; default: kvm where
 * /dev/kvm exists), LIBVIRT_POOL_PATH.
 */
import { App } from 'cdktf';
import { detectDomainType } from '../lib';
import { DemoStack } from './demo';

const app = new App();
new DemoStack(app, 'demo', {
  uri: process.env.LIBVIRT_URI,
  domainType: detectDomainType(),
  poolPath: process.env.LIBVIRT_POOL_PATH,
});
app.synth();
