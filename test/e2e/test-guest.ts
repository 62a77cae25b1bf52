/**
 * The test guest: a tiny Linux disk image that scripts/test-guest.sh builds (at toolchain time) from
 * Debian's kernel and busybox, for tests that need a real operating system in a VM. Its init reads
 * the NoCloud seed, answers ACPI power-off, brings hot-added CPUs online, loads the balloon driver,
 * never brings a network interface up, marks its data disk once (`data`), and writes a `GUEST-REPORT {json}` line to its serial console
 * at boot, on every change and at least every 5 s. With the console logged to a file
 * (`<console type='pty'>…<log file='…' append='on'/>`), these helpers read those reports.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { CACHE } from './toolchain';

/** One report of the guest, as its init wrote it. */
export interface GuestReport {
  /** 1 for the first report of a boot, then counting up */
  readonly seq: number;
  /** the guest kernel's boot id: a new one on every boot */
  readonly bootId: string;
  readonly uptimeS: number;
  readonly cpusOnline: number;
  /** the guest's MemTotal: what the balloon leaves it */
  readonly memTotalKib: number;
  /** from the seed's meta-data; '' without a seed */
  readonly instanceId: string;
  /** from the seed's meta-data; '' without a seed */
  readonly hostname: string;
  /** the MAC address of every NIC, by interface name */
  readonly macs: readonly string[];
  /** the interface addresses of the seed's network-config (not the nameservers'), in file order */
  readonly addresses: readonly string[];
  /**
   * the mark on the first sector of its data disk (vdb): `CDKTF-GUEST-DATA boot <boot id> of
   * <instance id>`, written by the first boot that found none; '' without a data disk
   */
  readonly data: string;
}

const SCRIPT = path.join(__dirname, '..', '..', 'scripts', 'test-guest.sh');
const GUEST_DIR = path.join(CACHE, 'guest');
const MARK = 'GUEST-REPORT ';

/** The cached guest image built by scripts/toolchain.sh, or why it is missing. */
export function testGuestImage(): { ok: true; path: string } | { ok: false; reason: string } {
  const image = path.join(GUEST_DIR, 'guest.qcow2');
  if (!fs.existsSync(image)) return { ok: false, reason: `no test guest image at ${image}: run scripts/toolchain.sh` };
  // guest.key: the cache key, then `script <sha256>` of the script that built the image.
  const keyFile = path.join(GUEST_DIR, 'guest.key');
  const built = fs.existsSync(keyFile) ? /^script ([0-9a-f]{64})$/m.exec(fs.readFileSync(keyFile, 'utf8'))?.[1] : undefined;
  const current = createHash('sha256').update(fs.readFileSync(SCRIPT)).digest('hex');
  if (built !== current) return { ok: false, reason: `the test guest image at ${image} was built by another version of scripts/test-guest.sh: run scripts/toolchain.sh` };
  return { ok: true, path: image };
}

/** Every GUEST-REPORT line of a console log file, oldest first ([] when the file does not exist). */
export function guestReports(logFile: string): GuestReport[] {
  let text: string;
  try {
    text = fs.readFileSync(logFile, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const reports: GuestReport[] = [];
  for (const line of text.split('\n')) {
    const at = line.indexOf(MARK);
    if (at < 0) continue;
    const report = parseReport(line.slice(at + MARK.length).trim());
    // A line cut short (the guest powered off mid-write, a kernel message in between) is skipped.
    if (report !== undefined) reports.push(report);
  }
  return reports;
}

/**
 * Polls the log until a report (newer than `after`'s seq/boot if given) satisfies `accept`; throws
 * with the last report seen on timeout. Without `after`, every report in the file counts, those of
 * earlier boots too (the log is appended to).
 */
export async function waitForGuestReport(
  logFile: string,
  accept: (r: GuestReport) => boolean,
  timeoutMs = 60_000,
  after?: GuestReport,
): Promise<GuestReport> {
  const deadline = Date.now() + timeoutMs;
  let last: GuestReport | undefined;
  for (;;) {
    const reports = newerThan(guestReports(logFile), after);
    last = reports[reports.length - 1] ?? last;
    const found = reports.find(accept);
    if (found !== undefined) return found;
    if (Date.now() >= deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const seen = last !== undefined ? `the last report was ${JSON.stringify(last)}` : `no report${after ? ' after the given one' : ''}; the log ends with:\n${tail(logFile)}`;
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for a guest report in ${logFile}: ${seen}`);
}

/** The reports after `after`: after its line in the log, or if it is not there, of its boot with a higher seq. */
function newerThan(reports: GuestReport[], after: GuestReport | undefined): GuestReport[] {
  if (after === undefined) return reports;
  let index = -1;
  reports.forEach((r, i) => {
    if (r.bootId === after.bootId && r.seq === after.seq) index = i;
  });
  if (index >= 0) return reports.slice(index + 1);
  return reports.filter((r) => r.bootId !== after.bootId || r.seq > after.seq);
}

function parseReport(json: string): GuestReport | undefined {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const num = (key: string) => (typeof raw[key] === 'number' ? (raw[key] as number) : undefined);
  const str = (key: string) => (typeof raw[key] === 'string' ? (raw[key] as string) : undefined);
  const strings = (key: string) =>
    Array.isArray(raw[key]) && (raw[key] as unknown[]).every((x) => typeof x === 'string') ? (raw[key] as string[]) : undefined;
  const report = {
    seq: num('seq'),
    bootId: str('boot_id'),
    uptimeS: num('uptime_s'),
    cpusOnline: num('cpus_online'),
    memTotalKib: num('mem_total_kib'),
    instanceId: str('instance_id'),
    hostname: str('hostname'),
    macs: strings('macs'),
    addresses: strings('addresses'),
    data: str('data'),
  };
  return Object.values(report).every((v) => v !== undefined) ? (report as GuestReport) : undefined;
}

function tail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-10).join('\n');
  } catch {
    return '(no log file)';
  }
}

/**
 * The domain type to boot the guest with: `kvm` where KVM runs on hardware virtualization
 * (kvm_intel or kvm_amd), else `qemu` (TCG), with the reason. /dev/kvm alone does not tell: under
 * kvm_pvm (KVM without hardware virtualization, in some cloud VMs) QEMU starts, but a stock
 * kernel's boot loader already fails in KVM's instruction emulator ("KVM internal error").
 */
export function guestDomainType(): { type: 'kvm' | 'qemu'; reason: string } {
  try {
    fs.accessSync('/dev/kvm', fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    return { type: 'qemu', reason: 'no usable /dev/kvm' };
  }
  const module = ['kvm_intel', 'kvm_amd'].find((m) => fs.existsSync(`/sys/module/${m}`));
  if (module !== undefined) return { type: 'kvm', reason: `/dev/kvm with ${module}` };
  const other = fs.existsSync('/sys/module/kvm_pvm') ? 'kvm_pvm' : 'neither kvm_intel nor kvm_amd';
  return { type: 'qemu', reason: `/dev/kvm is ${other}, which cannot boot a stock kernel` };
}
