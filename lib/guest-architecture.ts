/** The CPU architecture a guest sees. Hosts are always 64-bit; guests may be 32- or 64-bit. */
export enum GuestArchitecture {
  /** 64-bit x86. */
  X86_64 = 'x86_64',
  /** 32-bit x86. */
  I686 = 'i686',
}
