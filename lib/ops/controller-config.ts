/**
 * The configuration file of `cdktf-libvirt-cluster controller --config FILE` (JSON), its defaults,
 * and its checks. Relative paths are taken from the working directory, as cdktf takes them.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { UnattendedAction } from '../core/model';
import { CorosyncMembership } from './membership';

/** The unattended actions, each off until named in the controller's configuration or in a stack. */
export type UnattendedName = `${UnattendedAction}`;
export const UNATTENDED_NAMES: readonly UnattendedName[] = Object.values(UnattendedAction);

/** How to power a host off and on: a command with the contract of the fence-agents package. */
export interface FenceConfig {
  /**
   * The agent's argv, e.g. `["fence_ipmilan"]` or `["fence_redfish"]`. It is run with no
   * arguments beyond these; its options come on stdin, one `name=value` a line, then `action=…`
   * (`off`, `on` or `status`). Exit 0 means the action succeeded (for `status`: the host is on;
   * 2: it is off).
   */
  readonly command: readonly string[];
  /**
   * The agent's options, written to its stdin (`ip`, `username`, `plug`, `lanplus`, ...). Only
   * their names are ever logged. Give a password through the agent's own `password_script`
   * option (a command that prints it), never here.
   * @default - none
   */
  readonly options?: Readonly<Record<string, string>>;
}

/** One host the controller watches. */
export interface ControllerHostConfig {
  /** The libvirt URI the controller probes and reconcile uses (the real one, even while the host is failed). */
  readonly uri: string;
  /**
   * Where a live migration's stream goes on this host (`reconcile --migrate-uri`).
   * @default - libvirt's choice: the host's name
   */
  readonly migrateUri?: string;
  /**
   * The host's fence agent. Without one the controller never declares the host failed and never
   * puts it to standby: it says so in the log.
   * @default - no fencing: no failover and no standby power for this host
   */
  readonly fence?: FenceConfig;
}

/** Where the controller reads membership and quorum: its own corosync node (docs/controller.md, Topology). */
export interface CorosyncConfig {
  /**
   * A command prefix that runs corosync's tools where the controller's corosync node runs, e.g.
   * `["nsenter", "--target", "<pid>", "--mount", "--net", "--"]` (the lab). The partition whose
   * quorum counts is that node's, so it must sit on the controller's own network path.
   * @default [] - the controller's machine is a corosync node
   */
  readonly command?: readonly string[];
  /**
   * The corosync node name (`nodelist.node.name`) of each watched host.
   * @default - the host's own name
   */
  readonly nodes?: Readonly<Record<string, string>>;
  /**
   * Seconds `corosync-quorumtool` may take; past them the membership is unknown and the
   * controller does nothing.
   * @default 3
   */
  readonly timeoutSeconds?: number;
}

/**
 * The membership layer: Corosync, or, accepted by name, none (`{ "probesOnly": true }`: failover
 * on this controller's probes alone, which fence hosts that are up when the controller is cut off).
 */
export type MembershipConfig = { readonly corosync: CorosyncConfig } | { readonly probesOnly: true };

/** The controller's configuration file. */
export interface ControllerConfig {
  /**
   * Names this controller in the event log; two controllers of one site need different ids.
   * `--id` overrides it.
   * @default - `<machine name>-<process id>`
   */
  readonly id?: string;
  /**
   * The command that synthesizes the app (run by `sh -c` in the working directory, with
   * CDKTF_OUTDIR and CDKTF_CONTEXT_JSON set, as `cdktf synth` runs it).
   * @default - `app` of cdktf.json in the working directory
   */
  readonly app?: string;
  /**
   * The controller's own synth output folder; it synthesizes into `<outdir>/<id>`, so that two
   * controllers on one machine never share a stack folder.
   * @default 'cdktf.out.controller'
   */
  readonly outdir?: string;
  /** The stacks the controller deploys, by name. */
  readonly stacks: readonly string[];
  /** The hosts it watches, by the host names the stacks use. */
  readonly hosts: Readonly<Record<string, ControllerHostConfig>>;
  /**
   * Unattended actions this controller may take on every stack it watches (a stack can also
   * enable them for itself). Nothing is enabled by default.
   * @default []
   */
  readonly unattended?: readonly UnattendedName[];
  /**
   * Membership and quorum from Corosync. With it the controller acts only while its partition is
   * quorate, fences a host only when corosync has lost it and the controller's own probe agrees,
   * and never fences a host that corosync still counts a member (libvirtd down, guests running).
   * `{ "probesOnly": true }` accepts failover on this controller's probes alone, by name (a
   * controller cut off from the hosts would then fence hosts that are up; the start-up log warns).
   * @default - none: the controller fences no host for a failover, and says why (schedules and
   *   standby power work without it)
   */
  readonly membership?: MembershipConfig;
  /**
   * Seconds between two probes of every host.
   * @default 2
   */
  readonly pollSeconds?: number;
  /**
   * Seconds a host must have stopped answering before it is fenced and declared failed; also
   * how long a returning host must have answered before it is put back in service.
   * @default 10
   */
  readonly failureAfterSeconds?: number;
  /**
   * Seconds one probe (`virsh -c URI version`) may take before it counts as no answer.
   * @default 3
   */
  readonly probeTimeoutSeconds?: number;
  /**
   * Seconds a fence agent may run before it is killed and its action counts as failed.
   * @default 60
   */
  readonly fenceTimeoutSeconds?: number;
  /**
   * Seconds a woken host may take to answer before the controller powers it on again.
   * @default 300
   */
  readonly wakeTimeoutSeconds?: number;
  /**
   * Seconds between two repetitions of the same warning (a host that cannot be fenced, ...).
   * @default 10
   */
  readonly repeatWarningSeconds?: number;
  /**
   * The event log: one JSON object a line. (The decisions are kept in each stack's decision
   * record, in its state backend: docs/controller.md.)
   * @default 'controller-events.jsonl'
   */
  readonly eventLog?: string;
  /**
   * The Terraform engine (a command or a path).
   * @default - $TERRAFORM_BINARY_NAME, else the engine that initialized the stack folder, else the one installed
   */
  readonly engine?: string;
  /**
   * Variables added to the environment of the app, the engine and reconcile (TF_CLI_CONFIG_FILE,
   * ...). Secrets such as PG_CONN_STR belong in the controller's own environment, which all of
   * them inherit, not in this file.
   * @default - none: the controller's environment as it is
   */
  readonly env?: Readonly<Record<string, string>>;
}

/** The configuration with every default filled in and every path absolute. */
export interface ResolvedControllerConfig {
  readonly id: string;
  readonly app: string;
  readonly cwd: string;
  /** `<outdir>/<id>` */
  readonly outdir: string;
  readonly stacks: readonly string[];
  readonly hosts: Readonly<Record<string, ControllerHostConfig>>;
  readonly unattended: readonly UnattendedName[];
  readonly pollMs: number;
  readonly failureAfterMs: number;
  readonly probeTimeoutMs: number;
  readonly fenceTimeoutMs: number;
  readonly wakeTimeoutMs: number;
  readonly repeatWarningMs: number;
  /** Undefined without a membership layer. */
  readonly membership?: CorosyncMembership;
  /** Failover on the probes alone was accepted by name (`membership: { probesOnly: true }`). */
  readonly probesOnly: boolean;
  readonly eventLog: string;
  readonly engine?: string;
  readonly env: Readonly<Record<string, string>>;
}

/** Every problem of a configuration, all together; empty when it is fine. */
export function configProblems(config: unknown): string[] {
  const problems: string[] = [];
  if (typeof config !== 'object' || config === null || Array.isArray(config)) return ['the configuration is not a JSON object'];
  const c = config as Record<string, unknown>;
  const known = ['id', 'app', 'outdir', 'stacks', 'hosts', 'unattended', 'pollSeconds', 'failureAfterSeconds', 'probeTimeoutSeconds', 'fenceTimeoutSeconds', 'wakeTimeoutSeconds', 'repeatWarningSeconds', 'membership', 'eventLog', 'engine', 'env'];
  for (const key of Object.keys(c)) if (!known.includes(key)) problems.push(`unknown field '${key}'; the fields are ${known.join(', ')}`);
  const text = (key: string) => {
    if (c[key] !== undefined && (typeof c[key] !== 'string' || c[key] === '')) problems.push(`${key} must be a non-empty string`);
  };
  ['id', 'app', 'outdir', 'eventLog', 'engine'].forEach(text);
  if (!Array.isArray(c.stacks) || c.stacks.length === 0 || !c.stacks.every((s) => typeof s === 'string' && s !== '')) {
    problems.push('stacks must list at least one stack name');
  }
  if (typeof c.hosts !== 'object' || c.hosts === null || Object.keys(c.hosts).length === 0) {
    problems.push('hosts must give at least one host: { "h1": { "uri": "qemu+ssh://…/system", "fence": { "command": ["fence_ipmilan"], "options": {…} } } }');
  } else {
    for (const [name, host] of Object.entries(c.hosts as Record<string, any>)) {
      if (typeof host?.uri !== 'string' || host.uri === '') problems.push(`hosts.${name}.uri must be a libvirt URI`);
      if (host?.migrateUri !== undefined && typeof host.migrateUri !== 'string') problems.push(`hosts.${name}.migrateUri must be a string`);
      const fence = host?.fence;
      if (fence === undefined) continue;
      if (!Array.isArray(fence.command) || fence.command.length === 0 || !fence.command.every((a: unknown) => typeof a === 'string')) {
        problems.push(`hosts.${name}.fence.command must be the agent's argv, e.g. ["fence_ipmilan"]`);
      }
      for (const [key, value] of Object.entries(fence.options ?? {})) {
        if (typeof value !== 'string') problems.push(`hosts.${name}.fence.options.${key} must be a string`);
        if (/\n/.test(String(key) + String(value))) problems.push(`hosts.${name}.fence.options.${key} must be on one line`);
        if (key === 'action') problems.push(`hosts.${name}.fence.options must not set action: the controller sets it`);
        if (/^(password|passwd)$/.test(key)) problems.push(`hosts.${name}.fence.options.${key}: give the password through password_script (a command that prints it), not in the configuration`);
      }
    }
  }
  if (c.unattended !== undefined) {
    if (!Array.isArray(c.unattended)) problems.push(`unattended must be a list of ${UNATTENDED_NAMES.join(', ')}`);
    else for (const name of c.unattended) if (!UNATTENDED_NAMES.includes(name)) problems.push(`unattended: '${name}' is not one of ${UNATTENDED_NAMES.join(', ')}`);
  }
  for (const key of ['pollSeconds', 'failureAfterSeconds', 'probeTimeoutSeconds', 'fenceTimeoutSeconds', 'wakeTimeoutSeconds', 'repeatWarningSeconds']) {
    const v = c[key];
    if (v !== undefined && (typeof v !== 'number' || !(v > 0))) problems.push(`${key} must be a number of seconds above 0`);
  }
  if (c.membership !== undefined) problems.push(...membershipProblems(c.membership, c.hosts));
  if (c.env !== undefined && (typeof c.env !== 'object' || c.env === null || !Object.values(c.env).every((v) => typeof v === 'string'))) {
    problems.push('env must map variable names to strings');
  }
  return problems;
}

function membershipProblems(membership: unknown, hosts: unknown): string[] {
  const m = membership as Record<string, any>;
  if (typeof m === 'object' && m !== null && !Array.isArray(m) && 'probesOnly' in m) {
    return m.probesOnly === true && Object.keys(m).length === 1 ? [] : ['membership.probesOnly must be true, alone: { "probesOnly": true } (or configure { "corosync": { … } })'];
  }
  if (typeof m !== 'object' || m === null || Array.isArray(m) || typeof m.corosync !== 'object' || m.corosync === null) {
    return ['membership must be { "corosync": { … } } (docs/controller.md, Topology), or { "probesOnly": true } to accept failover on the probes alone'];
  }
  const problems: string[] = [];
  for (const key of Object.keys(m)) if (key !== 'corosync') problems.push(`unknown field 'membership.${key}'; the membership layer is corosync`);
  const c = m.corosync as Record<string, unknown>;
  for (const key of Object.keys(c)) if (!['command', 'nodes', 'timeoutSeconds'].includes(key)) problems.push(`unknown field 'membership.corosync.${key}'; the fields are command, nodes, timeoutSeconds`);
  if (c.command !== undefined && (!Array.isArray(c.command) || !c.command.every((a) => typeof a === 'string' && a !== ''))) problems.push('membership.corosync.command must be a list of arguments');
  if (c.timeoutSeconds !== undefined && (typeof c.timeoutSeconds !== 'number' || !(c.timeoutSeconds > 0))) problems.push('membership.corosync.timeoutSeconds must be a number of seconds above 0');
  if (c.nodes !== undefined) {
    if (typeof c.nodes !== 'object' || c.nodes === null || !Object.values(c.nodes).every((v) => typeof v === 'string' && v !== '')) problems.push('membership.corosync.nodes must map host names to corosync node names');
    else {
      const known = typeof hosts === 'object' && hosts !== null ? Object.keys(hosts) : [];
      for (const host of Object.keys(c.nodes)) if (!known.includes(host)) problems.push(`membership.corosync.nodes names ${host}, which is not one of the hosts`);
    }
  }
  return problems;
}

/** Fills in the defaults; throws listing every problem. */
export function resolveConfig(config: unknown, options: { cwd: string; id?: string; readFile?: (file: string) => string }): ResolvedControllerConfig {
  const problems = configProblems(config);
  if (problems.length > 0) throw new Error(`the controller's configuration has ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n  ${problems.join('\n  ')}`);
  const c = config as ControllerConfig;
  const corosync = c.membership !== undefined && 'corosync' in c.membership ? c.membership.corosync : undefined;
  const readFile = options.readFile ?? ((file: string) => fs.readFileSync(file, 'utf8'));
  let app = c.app;
  if (app === undefined) {
    const cdktfJson = path.join(options.cwd, 'cdktf.json');
    try {
      app = JSON.parse(readFile(cdktfJson)).app;
    } catch (err) {
      throw new Error(`no app in the configuration and none read from ${cdktfJson}: ${(err as Error).message}`);
    }
    if (typeof app !== 'string' || app === '') throw new Error(`${cdktfJson} has no app: give "app" in the controller's configuration`);
  }
  const id = options.id ?? c.id ?? `${os.hostname()}-${process.pid}`;
  if (!/^[A-Za-z0-9._-]+$/.test(id)) throw new Error(`controller id '${id}' must be letters, digits, '.', '_' or '-'`);
  const eventLog = path.resolve(options.cwd, c.eventLog ?? 'controller-events.jsonl');
  const seconds = (value: number | undefined, fallback: number) => Math.round((value ?? fallback) * 1000);
  return {
    id,
    app,
    cwd: options.cwd,
    outdir: path.join(path.resolve(options.cwd, c.outdir ?? 'cdktf.out.controller'), id),
    stacks: [...c.stacks],
    hosts: c.hosts,
    unattended: [...(c.unattended ?? [])],
    pollMs: seconds(c.pollSeconds, 2),
    failureAfterMs: seconds(c.failureAfterSeconds, 10),
    probeTimeoutMs: seconds(c.probeTimeoutSeconds, 3),
    fenceTimeoutMs: seconds(c.fenceTimeoutSeconds, 60),
    wakeTimeoutMs: seconds(c.wakeTimeoutSeconds, 300),
    repeatWarningMs: seconds(c.repeatWarningSeconds, 10),
    probesOnly: c.membership !== undefined && 'probesOnly' in c.membership,
    ...(corosync === undefined
      ? {}
      : {
          membership: {
            command: [...(corosync.command ?? [])],
            nodes: Object.fromEntries(Object.keys(c.hosts).map((h) => [h, corosync.nodes?.[h] ?? h])),
            timeoutMs: seconds(corosync.timeoutSeconds, 3),
          },
        }),
    eventLog,
    engine: c.engine,
    env: { ...(c.env ?? {}) },
  };
}
