import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { terraformEngine } from './engine';
import { domainSize, planResize } from './live';

/** The part of `<engine> show -json <plan file>` the comment reads. */
export interface PlanJson {
  readonly terraform_version?: string;
  readonly resource_changes?: readonly {
    readonly address: string;
    readonly type: string;
    /** Where the resource was before a `moved` block. */
    readonly previous_address?: string;
    readonly change: { readonly actions: readonly string[]; readonly before?: unknown; readonly after?: unknown };
  }[];
}

/** The attributes `reconcile` applies to a running domain without a restart (when they rise). */
const LIVE_ATTRIBUTES: readonly string[] = ['vcpu_current', 'current_memory'];

/**
 * What an in-place update of a domain does to the running VM: `live` when only the current vCPUs
 * or memory change and `reconcile` would hot-add them (the same `planResize` decides: raised within
 * unchanged ceilings), else `restart` with the attributes that force it (the provider shuts the
 * guest down and starts it).
 */
export function domainUpdateEffect(before: unknown, after: unknown): { readonly effect: 'live' | 'restart'; readonly detail: string } {
  const b = (before ?? {}) as Record<string, unknown>;
  const a = (after ?? {}) as Record<string, unknown>;
  const changed = [...new Set([...Object.keys(b), ...Object.keys(a)])]
    .filter((k) => JSON.stringify(b[k] ?? null) !== JSON.stringify(a[k] ?? null))
    .sort();
  const live = changed.length > 0 && changed.every((k) => LIVE_ATTRIBUTES.includes(k)) && planResize(domainSize(b), domainSize(a)).kind === 'hot-add';
  const describe = (k: string) => `${k} ${JSON.stringify(b[k] ?? null)} → ${JSON.stringify(a[k] ?? null)}`;
  if (live) return { effect: 'live', detail: `${changed.map(describe).join(', ')}: hot-added by reconcile, no restart` };
  return { effect: 'restart', detail: `${changed.map((k) => (LIVE_ATTRIBUTES.includes(k) || ['vcpu', 'memory'].includes(k) ? describe(k) : k)).join(', ')}: the VM restarts` };
}

export interface PlanCommentInput {
  /** The stack's name, as in `cdktf.out/stacks/<name>`. */
  readonly stack: string;
  readonly plan: PlanJson;
  /** The engine that made the plan, e.g. `tofu`. */
  readonly engine: string;
  /** The stack's placement-report.md, when it has a cluster. */
  readonly report?: string;
}

/** GitHub refuses comments longer than 65,536 characters. */
const MAX_COMMENT = 65_000;

/** How a plan's actions read in a review, in the order they are listed. */
const KINDS: readonly { readonly key: string; readonly symbol: string; readonly heading: string }[] = [
  { key: 'delete,create', symbol: '-/+', heading: 'replaced (destroyed, then created)' },
  { key: 'create,delete', symbol: '+/-', heading: 'replaced (created, then destroyed)' },
  { key: 'delete', symbol: '-', heading: 'destroyed' },
  { key: 'forget', symbol: '.', heading: 'forgotten (removed from the state, left on the host)' },
  { key: 'update', symbol: '~', heading: 'updated in place' },
  { key: 'create', symbol: '+', heading: 'created' },
];

/**
 * One Markdown comment for a pull request: the plan's changes, VM replacements called out first,
 * then the placement report. Pure: the plan JSON and the report in, Markdown out.
 */
export function renderPlanComment(input: PlanCommentInput): string {
  const changes = (input.plan.resource_changes ?? []).filter((c) => !['no-op', 'read'].includes(c.change.actions.join(',')));
  const count = (...keys: string[]) => changes.filter((c) => keys.includes(c.change.actions.join(','))).length;
  const replaced = count('delete,create', 'create,delete');
  const summary = `${count('create') + replaced} to add, ${count('update')} to change, ${count('delete') + replaced} to destroy${count('forget') > 0 ? `, ${count('forget')} to forget` : ''}`;
  const lines = [`## Plan for stack \`${input.stack}\``, '', `**${summary}** (${input.engine}${input.plan.terraform_version ? ` ${input.plan.terraform_version}` : ''})`, ''];
  const vmsReplaced = changes.filter((c) => c.type === 'libvirt_domain' && c.change.actions.length === 2);
  if (vmsReplaced.length > 0) {
    lines.push(`> [!WARNING]`, `> ${vmsReplaced.length === 1 ? 'A VM is' : `${vmsReplaced.length} VMs are`} replaced, not updated: ${vmsReplaced.map((c) => `\`${c.address}\``).join(', ')}`, '');
  }
  const nameOf = (value: unknown) => String((value as { name?: unknown } | undefined)?.name ?? '');
  const dataDestroyed = changes.filter((c) => c.type === 'libvirt_volume' && c.change.actions.includes('delete') && /-data\.qcow2$/.test(nameOf(c.change.before)));
  if (dataDestroyed.length > 0) {
    lines.push(`> [!CAUTION]`, `> Data disks are destroyed: ${dataDestroyed.map((c) => `\`${c.address}\` (${nameOf(c.change.before)})`).join(', ')}`, '');
  }
  const rebuilt = changes.filter((c) => c.type === 'libvirt_volume' && c.change.actions.length === 2 && /-boot(-[0-9a-f]{8})?\.qcow2$/.test(nameOf(c.change.after)) && nameOf(c.change.before) !== nameOf(c.change.after));
  if (rebuilt.length > 0) {
    lines.push('Boot disks rebuilt from a new image (what the guest wrote to its boot disk is gone; its data disk is kept):', '');
    for (const c of rebuilt) lines.push(`- \`${c.address}\`: ${nameOf(c.change.before)} → ${nameOf(c.change.after)}`);
    lines.push('');
  }
  const moved = (input.plan.resource_changes ?? []).filter((c) => c.previous_address !== undefined && c.previous_address !== c.address);
  if (moved.length > 0) {
    lines.push(`<details><summary>${moved.length} moved (renamed in the code; nothing destroyed)</summary>`, '', '```');
    for (const c of moved) lines.push(`${c.previous_address} → ${c.address}`);
    lines.push('```', '</details>', '');
  }
  const domainUpdates = changes.filter((c) => c.type === 'libvirt_domain' && c.change.actions.join(',') === 'update');
  if (domainUpdates.length > 0) {
    lines.push('VM updates in place:', '');
    for (const c of domainUpdates) {
      const { effect, detail } = domainUpdateEffect(c.change.before, c.change.after);
      lines.push(`- \`${c.address}\`: **${effect === 'live' ? 'live' : 'restart'}**: ${detail}`);
    }
    lines.push('');
  }
  if (changes.length === 0) lines.push('No changes.', '');
  for (const kind of KINDS) {
    const of = changes.filter((c) => c.change.actions.join(',') === kind.key);
    if (of.length === 0) continue;
    lines.push(`<details${kind.key === 'create' ? '' : ' open'}><summary>${of.length} ${kind.heading}</summary>`, '', '```diff');
    for (const c of of) lines.push(`${kind.symbol} ${c.address}`);
    lines.push('```', '</details>', '');
  }
  const other = changes.filter((c) => !KINDS.some((k) => k.key === c.change.actions.join(',')));
  for (const c of other) lines.push(`- \`${c.address}\`: ${c.change.actions.join(', ')}`);
  if (other.length > 0) lines.push('');
  let text = lines.join('\n');
  if (input.report !== undefined) text += `\n<details open><summary>Placement report</summary>\n\n${input.report.trim()}\n\n</details>\n`;
  if (text.length > MAX_COMMENT) text = `${text.slice(0, MAX_COMMENT)}\n\n… cut at ${MAX_COMMENT} characters: the full plan is in the job's log.\n`;
  return text;
}

/**
 * `renderPlanComment` for a saved plan in a synthesized stack folder: runs `<engine> show -json` on
 * it (the engine as `terraformEngine` picks it) and reads the folder's placement-report.md.
 */
export function planComment(stackDir: string, planFile: string, engine: string = terraformEngine(stackDir).binary, env: NodeJS.ProcessEnv = process.env): string {
  const plan = JSON.parse(execFileSync(engine, ['show', '-json', '-no-color', planFile], { cwd: stackDir, env, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 })) as PlanJson;
  const reportFile = path.join(stackDir, 'placement-report.md');
  return renderPlanComment({
    stack: path.basename(path.resolve(stackDir)),
    plan,
    engine: path.basename(engine),
    report: fs.existsSync(reportFile) ? fs.readFileSync(reportFile, 'utf8') : undefined,
  });
}
