import * as fs from 'fs';

/** How a host runs its guests: the libvirt domain type. */
export enum DomainType {
  /** Hardware virtualization through /dev/kvm. */
  KVM = 'kvm',
  /** QEMU software emulation (TCG): slow, but needs no /dev/kvm. */
  QEMU = 'qemu',
}

/**
 * The domain type for a libvirt host on this machine: `LIBVIRT_DOMAIN_TYPE` when set (`kvm` or
 * `qemu`), else `kvm` where /dev/kvm exists and `qemu` where it does not. For example stacks that
 * run on a laptop and in CI alike; real estates should state their domain type.
 */
export function detectDomainType(env: NodeJS.ProcessEnv = process.env, kvmDevice = '/dev/kvm'): DomainType {
  const forced = env.LIBVIRT_DOMAIN_TYPE;
  if (forced !== undefined && forced !== '') {
    const known = Object.values(DomainType) as string[];
    if (!known.includes(forced)) {
      throw new Error(`LIBVIRT_DOMAIN_TYPE=${forced} is not one of ${known.join(', ')}`);
    }
    return forced as DomainType;
  }
  return fs.existsSync(kvmDevice) ? DomainType.KVM : DomainType.QEMU;
}
