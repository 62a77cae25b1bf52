import { AdmissionResult, describeAmount, planRestarts } from './admission';
import { ClusterIndex } from './cluster-index';
import { describeSeconds } from './duration';
import { ClusterSpec, HostState, INSTANT_CONTEXT, PlacementResult, Problem, UnattendedAction, VmSpec, compareNames, lookup } from './model';
import { standbyHosts } from './power';

export interface ReportInput {
  /** @default - 'Cluster placement' */
  readonly title?: string;
  readonly cluster: ClusterSpec;
  readonly vms: readonly VmSpec[];
  readonly placement: PlacementResult;
  readonly admission: AdmissionResult;
  /** The instant the report describes; the only time that appears in it, and only when pinned. */
  readonly instant: Date;
  /**
   * Whether the instant was pinned (a prop or context value) rather than the time of synth. An
   * unpinned instant is not printed, so synths within one schedule window write the same bytes.
   * @default true
   */
  readonly instantPinned?: boolean;
  /** The cluster's IANA time zone, e.g. 'Europe/Zurich'. */
  readonly timeZone: string;
  /** The schedule window in force, for people, e.g. 'night (from 20:00)'. */
  readonly window: string;
  readonly standbyCandidates: readonly string[];
  /** Policy opt-outs and other warnings to show next to the placement warnings. */
  readonly notes: readonly string[];
  /**
   * Whether the VMs' disks are on storage every host sees, so a VM moving between two reachable
   * hosts can move live.
   * @default false
   */
  readonly sharedStorage?: boolean;
  /**
   * What the controller may do on its own for this cluster.
   * @default - none: the controller only watches
   */
  readonly unattended?: readonly UnattendedAction[];
  /**
   * The problems of a synth that failed: the report then says so at the top, and nothing in it
   * reads as deployable.
   * @default - none: the synth succeeded
   */
  readonly failed?: readonly string[];
}

/**
 * How a VM gets from `from` to `to`: a restart when `from` cannot be contacted, a live migration
 * (done by `reconcile` before the apply) when the disks are on shared storage, else a cold move. Whether
 * the destination can take the VM is known only on the hosts: `reconcile --dry-run` says live, cold or refused.
 */
export function moveMethod(fromState: HostState | undefined, sharedStorage: boolean): string {
  if (fromState === HostState.FAILED || fromState === HostState.STANDBY) return `restart: host is ${fromState}`;
  if (sharedStorage) return 'live migration by reconcile, before the apply';
  return 'cold: reconcile shuts it down through ACPI (up to its shutdownTimeout), then it starts on the new host (disks are on local storage)';
}

export interface Report {
  readonly markdown: string;
  readonly svg: string;
}

/**
 * A human-readable account of a placement: where everything runs, what happens when a host fails,
 * what could be powered down, and every warning. Same input, same bytes, so it can be committed.
 */
export function renderReport(input: ReportInput): Report {
  const view = new ReportView(input);
  return { markdown: view.markdown(), svg: view.svg() };
}

interface HostRow {
  readonly name: string;
  readonly state: HostState;
  readonly labels: string;
  readonly vms: readonly VmSpec[];
  readonly usedCpu: number;
  readonly capCpu: number;
  readonly usedMem: number;
  readonly capMem: number;
}

class ReportView {
  private readonly rows: HostRow[];
  private readonly title: string;

  constructor(private readonly input: ReportInput) {
    this.title = input.title ?? 'Cluster placement';
    const idx = new ClusterIndex(input.cluster);
    const onHost = new Map<string, VmSpec[]>();
    for (const vm of [...input.vms].sort((a, b) => compareNames(a.name, b.name))) {
      const h = lookup(input.placement.placements, vm.name);
      if (h !== undefined) onHost.set(h, [...(onHost.get(h) ?? []), vm]);
    }
    this.rows = idx.hosts.map((h, i) => {
      const vms = onHost.get(h.name) ?? [];
      return {
        name: h.name,
        state: h.state,
        labels: Object.keys(h.labels)
          .sort(compareNames)
          .map((k) => `${k}=${h.labels[k]}`)
          .join(', '),
        vms,
        usedCpu: vms.reduce((s, vm) => s + vm.vcpus, 0),
        capCpu: idx.cpuCapacity[i],
        usedMem: vms.reduce((s, vm) => s + vm.memoryMiB, 0),
        capMem: idx.memCapacity[i],
      };
    });
  }

  public markdown(): string {
    const { input } = this;
    const { cluster, admission, placement } = input;
    const out: string[] = [];
    out.push(`# ${md(this.title)}`, '');
    const failed = input.failed;
    if (failed) {
      out.push(`**Synth FAILED with ${failed.length} problem(s): nothing here is deployed or deployable until they are fixed.**`, '');
      out.push(...failed.map((p) => `- ${md(p)}`), '');
    }
    const down = cluster.hosts.filter((h) => h.state === HostState.FAILED || h.state === HostState.MAINTENANCE);
    const tolerates =
      down.length > 0 && cluster.failuresToTolerate > 0
        ? `tolerates ${Math.max(0, cluster.failuresToTolerate - down.length)} further host failure(s) now, of ${cluster.failuresToTolerate} (${down.map((h) => `${md(h.name)} ${h.state}`).join(', ')})`
        : `tolerates ${cluster.failuresToTolerate} host failure(s)`;
    out.push(
      input.instantPinned === false
        ? `- Instant: not pinned, the time of synth (context ${INSTANT_CONTEXT} pins one); it decided the schedule window below`
        : `- Instant: ${input.instant.toISOString()} (${localTime(input.instant, input.timeZone)} ${md(input.timeZone)})`,
    );
    out.push(`- Schedule window: ${md(input.window)}`);
    out.push(
      `- Policy: ${cluster.policy}; CPU overcommit ${cluster.cpuOvercommit}; memory overcommit ${cluster.memoryOvercommit}; ` +
        tolerates,
    );
    const unattended = [...new Set(input.unattended ?? [])].sort(compareNames);
    out.push(`- Unattended actions: ${unattended.length > 0 ? unattended.join(', ') : 'none: the controller only watches'}`);
    const standby = standbyHosts(cluster);
    const counted = standby.filter((s) => s.counts).map((s) => md(s.name));
    const spares = counted.length > 0 ? `; standby host(s) ${counted.join(', ')} counted as capacity` : '';
    out.push(
      admission.ok && failed
        ? `- Admission control: passed (${admission.checked} scenarios checked${spares}), but the synth FAILED (above)`
        : admission.ok
        ? `- Admission control: OK, every VM with a restart priority restarts after any ${cluster.failuresToTolerate} host failure(s) (${admission.checked} scenarios checked${spares})`
        : `- Admission control: FAILED in ${admission.scenarios.length} of ${admission.checked} scenarios${spares}`,
    );
    out.push(`- Placement problems: ${placement.problems.length}; warnings: ${placement.warnings.length + admission.warnings.length + input.notes.length}`, '');

    out.push('## Hosts', '');
    out.push(table(
      ['Host', 'State', 'Labels', 'VMs', 'vCPU used / capacity', 'Memory MiB used / capacity'],
      this.rows.map((r) => [
        r.name,
        r.state,
        r.labels || '—',
        r.vms.map((vm) => (vm.active ? vm.name : `${vm.name} (off-window)`)).join(', ') || '—',
        `${r.usedCpu} / ${r.capCpu} (${percent(r.usedCpu, r.capCpu)})`,
        `${r.usedMem} / ${r.capMem} (${percent(r.usedMem, r.capMem)})`,
      ]),
    ), '');

    out.push('## VMs', '');
    out.push(table(
      ['VM', 'Host', 'Group', 'Priority', 'Active', 'vCPU', 'Memory MiB', 'Addresses'],
      [...input.vms]
        .sort((a, b) => compareNames(a.name, b.name))
        .map((vm) => [
          vm.name,
          lookup(placement.placements, vm.name) ?? 'unplaced',
          vm.group ?? '—',
          vm.priority,
          vm.active ? 'yes' : 'no (off-window)',
          String(vm.vcpus),
          String(vm.memoryMiB),
          vm.addresses && vm.addresses.length > 0 ? vm.addresses.join(', ') : '—',
        ]),
    ), '');

    const disks = [...input.vms]
      .flatMap((vm) => (vm.disks ?? []).map((d) => ({ ...d, vm: vm.name })))
      .sort((a, b) => compareNames(a.pool, b.pool) || compareNames(a.volume, b.volume));
    if (disks.length > 0) {
      out.push('## Storage', '');
      out.push(
        `Shared storage: ${input.sharedStorage ? 'yes, disks follow their VM' : 'no, each disk stays in the local pool of the host its VM runs on'}. ` +
          'Data disks outlive their VM unless its removal policy is DESTROY.',
        '',
      );
      out.push(table(['Pool', 'Disk', 'VM', 'Size'], disks.map((d) => [d.pool, d.volume, d.vm, d.size])), '');
    }

    const states = new Map(cluster.hosts.map((h) => [h.name, h.state]));
    if (placement.moves.length > 0) {
      out.push('## Moves', '');
      out.push(table(
        ['VM', 'From', 'To', 'Why', 'How'],
        placement.moves.map((m) => [m.vm, m.from, m.to, m.reason, moveMethod(states.get(m.from), input.sharedStorage ?? false)]),
      ), '');
    }

    out.push('## What if one host fails', '');
    const active = this.rows.filter((r) => r.state === HostState.ACTIVE);
    if (active.length === 0) out.push('No active hosts.', '');
    else {
      const plans = planRestarts(cluster, input.vms, placement.placements, active.map((r) => [r.name]));
      out.push(table(
        ['Failed host', 'Restarts on', 'Stays down'],
        active.map((r, i) => {
          const plan = plans[i];
          const restarts = Object.entries(plan.restarts).map(([vm, host]) => `${vm} → ${host}${states.get(host) === HostState.STANDBY ? ' (woken from standby)' : ''}`);
          const down = [
            ...plan.unplaced.map((vm) => `${vm} (${plan.searchBudgetExceeded ? 'search gave up; treated as down' : plan.causes[vm]})`),
            ...plan.notRestarted.map((vm) => `${vm} (priority none)`),
          ];
          return [r.name, restarts.join(', ') || '—', down.join(', ') || '—'];
        }),
      ), '');
    }

    if (!admission.ok) {
      out.push('## Admission control failures', '');
      out.push(table(
        ['Failed hosts', 'Would stay down', 'Shortfall', 'Why'],
        admission.scenarios.map((s) => [
          s.failedHosts.join(', '),
          s.unplaced.join(', '),
          Object.keys(s.short).length === 0 ? '— (not capacity)' : `${describeAmount(s.short)} (on ${Object.keys(s.shortOn).join(', ')})`,
          s.reason,
        ]),
      ), '');
    }

    out.push('## Standby candidates', '');
    out.push(
      input.standbyCandidates.length === 0
        ? 'None: every active host runs at least one VM in this window.'
        : `Run no VM in this window and could be powered down: ${input.standbyCandidates.map(md).join(', ')}.`,
      '',
    );

    if (standby.length > 0) {
      out.push('## Hosts in standby', '');
      out.push(table(
        ['Host', 'Wake time', 'Counts as capacity for failures', 'Why'],
        standby.map((s) => [s.name, s.wakeSeconds === undefined ? 'unknown' : describeSeconds(s.wakeSeconds), s.counts ? 'yes' : 'no', s.reason]),
      ), '');
    }

    out.push('## Problems', '');
    out.push(...findings(placement.problems), '');
    out.push('## Warnings', '');
    const notes = input.notes.map((n) => `- ${md(n)}`);
    const warnings = findings([...placement.warnings, ...admission.warnings]).filter((w) => w !== 'None.');
    out.push(...(warnings.length + notes.length === 0 ? ['None.'] : [...warnings, ...notes]), '');
    return out.join('\n');
  }

  /** One row per host: CPU and memory bars against capacity, VM names beside them. */
  public svg(): string {
    const rowHeight = 44;
    const top = 56;
    const labelWidth = 180;
    const barWidth = 320;
    const width = 1000;
    const height = top + this.rows.length * rowHeight + 16;
    const parts: string[] = [];
    parts.push(
      `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
      `<title>${xml(this.title)}</title>`,
      `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
      `<text x="12" y="22" font-size="16" font-weight="bold">${xml(this.title)}</text>`,
      `<text x="12" y="42" fill="#555555">${xml(`${this.input.instantPinned === false ? 'instant of synth' : this.input.instant.toISOString()} · ${this.input.timeZone} · ${this.input.window}`)}</text>`,
      `<text x="${width - 12}" y="42" fill="#555555" text-anchor="end">(name): off-window replica, room reserved</text>`,
    );
    this.rows.forEach((r, i) => {
      const y = top + i * rowHeight;
      const muted = r.state !== HostState.ACTIVE;
      parts.push(`<g transform="translate(0 ${y})">`);
      parts.push(`<text x="12" y="14" font-weight="bold"${muted ? ' fill="#888888"' : ''}>${xml(r.name)}</text>`);
      parts.push(`<text x="12" y="30" fill="#888888">${xml(r.state)}</text>`);
      parts.push(...bar(labelWidth, 2, barWidth, 'CPU', r.usedCpu, r.capCpu, 'vCPU', '#4878a8'));
      parts.push(...bar(labelWidth, 20, barWidth, 'MEM', r.usedMem, r.capMem, 'MiB', '#58a058'));
      const names = r.vms.map((vm) => (vm.active ? vm.name : `(${vm.name})`)).join(', ');
      parts.push(`<text x="${labelWidth + barWidth + 130}" y="22">${xml(truncate(names, 60))}<title>${xml(names)}</title></text>`);
      parts.push('</g>');
    });
    parts.push('</svg>');
    return parts.join('\n') + '\n';
  }
}

function bar(x: number, y: number, width: number, label: string, used: number, capacity: number, unit: string, color: string): string[] {
  const ratio = capacity > 0 ? used / capacity : used > 0 ? 1 : 0;
  const filled = Math.round(Math.min(1, ratio) * width * 10) / 10;
  return [
    `<text x="${x - 34}" y="${y + 11}" fill="#555555">${label}</text>`,
    `<rect x="${x}" y="${y}" width="${width}" height="14" fill="#e6e6e6"/>`,
    `<rect x="${x}" y="${y}" width="${filled}" height="14" fill="${ratio > 1 ? '#c84040' : color}"/>`,
    `<text x="${x + width + 6}" y="${y + 11}">${used} / ${capacity} ${unit}</text>`,
  ];
}

function findings(list: readonly Problem[]): string[] {
  if (list.length === 0) return ['None.'];
  return list.map((p) => `- **${md(p.rule)}** (${md(p.subject)}): ${md(p.message)}. Fix: ${md(p.hint)}.`);
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.map(md).join(' | ')} |`;
  return [line(header), `|${header.map(() => '---').join('|')}|`, ...rows.map(line)].join('\n');
}

/** Keeps names from breaking a table row or being read as HTML. */
function md(text: string): string {
  return text
    .replace(/\r?\n/g, ' ')
    .replace(/\\/g, '\\\\')
    .replace(/\|/g, '\\|')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;');
}

function xml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function percent(used: number, capacity: number): string {
  return capacity > 0 ? `${Math.round((used / capacity) * 100)}%` : used > 0 ? 'over' : '0%';
}

/** 'YYYY-MM-DD HH:MM' in the time zone, independent of the machine's locale. */
function localTime(instant: Date, timeZone: string): string {
  const parts = new Intl.DateTimeFormat('en-GB', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(instant);
  const get = (type: string): string => parts.find((p) => p.type === type)?.value ?? '';
  return `${get('year')}-${get('month')}-${get('day')} ${get('hour')}:${get('minute')}`;
}
