import { detectDomainType, DomainType } from '../lib';

describe('detectDomainType', () => {
  test('uses kvm where the KVM device exists and qemu where it does not', () => {
    expect(detectDomainType({}, __filename)).toBe(DomainType.KVM);
    expect(detectDomainType({}, '/nonexistent/kvm')).toBe(DomainType.QEMU);
  });

  test('LIBVIRT_DOMAIN_TYPE wins, and a wrong value is an error', () => {
    expect(detectDomainType({ LIBVIRT_DOMAIN_TYPE: 'qemu' }, __filename)).toBe(DomainType.QEMU);
    expect(() => detectDomainType({ LIBVIRT_DOMAIN_TYPE: 'xen' })).toThrow('LIBVIRT_DOMAIN_TYPE=xen is not one of kvm, qemu');
  });
});
