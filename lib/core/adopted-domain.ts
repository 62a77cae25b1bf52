/**
 * What an adopted domain's preserved attributes (provider 0.9.7's reading of a running domain)
 * hold that libvirt assigns afresh at each start. Pure: shared by `adopt` (to report them) and
 * `AdoptedVirtualMachine` (to keep plans from comparing them).
 */

/** One runtime value: its attribute path as Terraform writes it (`devices.consoles[0].tty`) and its value. */
export interface RuntimeAttribute {
  readonly path: string;
  readonly value: string | number;
  /** A port libvirt chose because the domain asked for autoport. */
  readonly autoport: boolean;
}

/**
 * The pty of each console and serial port (`source.pty.path`, `tty`), each NIC's tap device
 * (`target.dev`) and each autoport VNC or SPICE port: read from the running domain at import, so
 * the code must match them for the first plan to be clean, but they change whenever the guest
 * starts again.
 */
export function runtimeAttributes(preserved: Readonly<Record<string, unknown>>): RuntimeAttribute[] {
  const found: RuntimeAttribute[] = [];
  const devices = (preserved.devices ?? {}) as Record<string, unknown>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const list = (key: string) => (Array.isArray(devices[key]) ? (devices[key] as Record<string, any>[]) : []);
  for (const key of ['consoles', 'serials']) {
    list(key).forEach((d, i) => {
      if (typeof d.source?.pty?.path === 'string') found.push({ path: `devices.${key}[${i}].source.pty.path`, value: d.source.pty.path, autoport: false });
      if (typeof d.tty === 'string') found.push({ path: `devices.${key}[${i}].tty`, value: d.tty, autoport: false });
    });
  }
  list('interfaces').forEach((n, i) => {
    if (typeof n.target?.dev === 'string') found.push({ path: `devices.interfaces[${i}].target.dev`, value: n.target.dev, autoport: false });
  });
  list('graphics').forEach((g, i) => {
    for (const kind of ['vnc', 'spice']) {
      if (g[kind]?.auto_port === true && g[kind]?.port !== undefined) found.push({ path: `devices.graphics[${i}].${kind}.port`, value: g[kind].port, autoport: true });
    }
  });
  return found;
}
