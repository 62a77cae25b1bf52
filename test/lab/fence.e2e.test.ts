/**
 * Self-test of the lab's power switch and its fence agent (test/lab/fence_lab), run the way a
 * controller runs fence-agents: options on stdin, the exit code is the answer. Two real hosts: h1 is
 * fenced, h2 must not notice.
 */
import { execFile, spawnSync } from 'child_process';
import { existsSync } from 'fs';
import { FENCE_AGENT, FenceRun, isRunning, isStillRunning, Lab, LabHost, labPrerequisites, pidsInNamespace, runFenceAgent, tinyDomainXml } from './lab';

const prerequisites = labPrerequisites();

/** `virsh version` against a host, giving up after `ms`: how a controller finds a host that does not answer. */
function virshVersion(host: LabHost, ms: number): { ok: boolean; timedOut: boolean; ms: number } {
  const started = Date.now();
  const result = spawnSync('virsh', ['-c', host.uri, 'version'], { stdio: 'ignore', timeout: ms, killSignal: 'SIGKILL' });
  return { ok: result.status === 0, timedOut: (result.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT', ms: Date.now() - started };
}

if (!prerequisites.ok) {
  const reason = prerequisites.reason;
  (process.env.REQUIRE_E2E === '1' ? test : test.skip)(`fence agent self-test cannot run here: ${reason}`, () => {
    throw new Error(`REQUIRE_E2E=1 but the lab cannot run: ${reason}`);
  });
} else {
  describe('fence_lab against a 2-host lab', () => {
    const timings: string[] = [];
    let lab: Lab;
    let h1: LabHost;
    let h2: LabHost;
    let disk: string;

    /** The agent with `socket=` set to this lab's switch, plus the options a real controller would pass. */
    const agent = (options: Record<string, string>, extra: Parameters<typeof runFenceAgent>[1] = {}): Promise<FenceRun> =>
      runFenceAgent({ socket: lab.powerSocket, ...options }, extra);
    /** How long the switch itself took for the last `request` (the rest of an agent run is node starting). */
    const switchMs = (request: string): string => `${lab.powerRequests().filter((r) => r.request === request).slice(-1)[0]?.ms} ms in the switch`;
    const startGuest = (): number => {
      h1.virsh('start', 'guest');
      return h1.qemuPid('guest')!;
    };

    beforeAll(async () => {
      lab = await Lab.start({ hosts: 2 });
      h1 = lab.host('h1');
      h2 = lab.host('h2');
      disk = lab.createDisk('guest');
      h1.virsh('define', lab.writeFile('guest.xml', tinyDomainXml({ name: 'guest', disk })));
      h2.virsh('define', lab.writeFile('bystander.xml', tinyDomainXml({ name: 'bystander', disk: lab.createDisk('bystander') })));
      h2.virsh('start', 'bystander');
    }, 120_000);

    afterAll(async () => {
      await lab?.teardown();
      console.log(`fence_lab timings: ${timings.join('; ')}`);
    }, 60_000);

    test('the power socket exists; monitor, list, list-status and metadata answer like a real agent', async () => {
      expect(existsSync(lab.powerSocket)).toBe(true);
      expect(await agent({ action: 'monitor' })).toMatchObject({ code: 0, stdout: "Success: the lab's power switch answers (2 hosts)\n" });
      expect(await agent({ action: 'list' })).toMatchObject({ code: 0, stdout: 'h1,\nh2,\n' });
      expect(await agent({ action: 'list-status' })).toMatchObject({ code: 0, stdout: 'h1,,ON\nh2,,ON\n' });
      const metadata = await agent({ action: 'metadata' });
      expect(metadata.code).toBe(0);
      expect(metadata.stdout).toMatch(/^<\?xml version="1.0" \?>\n<resource-agent name="fence_lab" /);
      for (const action of ['on', 'off', 'reboot', 'status', 'monitor', 'metadata']) expect(metadata.stdout).toContain(`<action name="${action}"`);
    });

    test("lab.fenceConfig is a controller's configuration: its argv with the options and an action on stdin; the script runs on its own too", async () => {
      const config = lab.fenceConfig('h2');
      expect(config).toEqual({ command: [process.execPath, FENCE_AGENT], options: { plug: 'h2', socket: lab.powerSocket } });
      const stdin = Object.entries({ ...config.options, action: 'status' }).map(([k, v]) => `${k}=${v}\n`).join('');
      for (const argv of [config.command, [FENCE_AGENT]]) {
        const child = execFile(argv[0], argv.slice(1), { encoding: 'utf8' });
        child.stdin!.end(stdin);
        let stdout = '';
        child.stdout!.on('data', (chunk: string) => (stdout += chunk));
        const code = await new Promise((resolve) => child.on('close', resolve));
        expect({ argv, code, stdout }).toEqual({ argv, code: 0, stdout: 'Status: ON\n' });
      }
    });

    test('status of a running host exits 0; options a real agent needs are ignored, unknown ones with a warning', async () => {
      const run = await agent({ action: 'status', plug: 'h1', ip: '192.0.2.1', username: 'admin', password_script: '/bin/false', nodename: 'h1', lanplus: '1', colour: 'blue' });
      expect(run).toMatchObject({ code: 0, stdout: 'Status: ON\n', stderr: "Parse error: Ignoring unknown option 'colour=blue'\n" });
      // fence-agents' other names: port for plug, option for action.
      expect(await agent({ option: 'status', port: 'h2' })).toMatchObject({ code: 0, stdout: 'Status: ON\n' });
      const unknown = await agent({ action: 'status', plug: 'h9' });
      expect(unknown).toMatchObject({ code: 1, stdout: '' });
      expect(unknown.stderr).toContain('no host h9; the hosts are h1, h2');
      expect((await agent({ action: 'off' })).code).toBe(1); // no plug
    });

    test('off exits 0 once the host is off: its daemons and guest are gone, virsh fails, its lease is free; h2 runs on', async () => {
      const qemu = startGuest();
      const pidNs = h1.pidNamespace!;
      const h1Processes = lab.processes().filter((p) => p.role.startsWith('h1 '));
      expect(lab.leaseHolder(disk)).toBe(h1);

      const off = await agent({ action: 'off', plug: 'h1' });
      timings.push(`off ${off.ms} ms (${switchMs('off h1')})`);

      expect(off).toMatchObject({ code: 0, stdout: 'Success: Powered OFF\n', stderr: '' });
      expect(isRunning(qemu)).toBe(false);
      expect(h1Processes.filter(isStillRunning)).toEqual([]);
      expect(pidsInNamespace(pidNs)).toEqual([]);
      expect(h1.isPoweredOn()).toBe(false);
      expect(() => h1.virsh('version')).toThrow(/Failed to connect socket/);
      expect(lab.leaseHolder(disk)).toBeUndefined();
      expect(h2.runningDomains()).toEqual(['bystander']);
    });

    test('status of the off host exits 2; off again exits 0 (already off)', async () => {
      expect(await agent({ action: 'status', plug: 'h1' })).toMatchObject({ code: 2, stdout: 'Status: OFF\n' });
      expect(await agent({ action: 'list-status' })).toMatchObject({ code: 0, stdout: 'h1,,OFF\nh2,,ON\n' });
      const again = await agent({ action: 'off', plug: 'h1' });
      expect(again).toMatchObject({ code: 0, stdout: 'Success: Powered OFF\n' });
      timings.push(`off when already off ${again.ms} ms`);
    });

    test('on exits 0 once virsh answers, the guest defined and not running; two ons at once boot it once', async () => {
      const bootsBefore = lab.namespaces().length;
      const [on, second] = await Promise.all([agent({ action: 'on', plug: 'h1' }), agent({ action: 'on', plug: 'h1' })]);
      timings.push(`on ${on.ms} and ${second.ms} ms (two at once; ${lab.powerRequests().filter((r) => r.request === 'on h1').map((r) => r.ms).join(' and ')} ms in the switch)`);

      expect(on).toMatchObject({ code: 0, stdout: 'Success: Powered ON\n', stderr: '' });
      expect(second).toMatchObject({ code: 0, stdout: 'Success: Powered ON\n', stderr: '' });
      // One boot: one new mount and one new PID namespace.
      expect(lab.namespaces().length).toBe(bootsBefore + 2);
      expect(h1.virsh('version')).toContain('libvirt');
      expect(h1.domainState('guest')).toBe('shut off');
      expect(await agent({ action: 'status', plug: 'h1' })).toMatchObject({ code: 0, stdout: 'Status: ON\n' });
      // The switch logged both, each answered ok.
      expect(lab.powerRequests().filter((r) => r.request === 'on h1').map((r) => r.answer)).toEqual(['ok', 'ok']);
    });

    test('reboot exits 0: the host was off and is back on', async () => {
      // Not by namespace: the kernel hands a freed namespace's number to the next one.
      const before = lab.processes().filter((p) => p.role.startsWith('h1 ') && isStillRunning(p));
      const bootsBefore = lab.namespaces().length;
      const reboot = await agent({ action: 'reboot', plug: 'h1' });
      timings.push(`reboot ${reboot.ms} ms`);
      expect(reboot).toMatchObject({ code: 0, stdout: 'Success: Rebooted\n' });
      expect(before.filter(isStillRunning)).toEqual([]);
      expect(lab.namespaces().length).toBe(bootsBefore + 2);
      expect(h1.isUp()).toBe(true);
    });

    test('with fencing disabled by the test, off exits 1 and the host and its guest run on untouched', async () => {
      const qemu = startGuest();
      const pidNs = h1.pidNamespace;
      lab.setFenceFailure('h1', true);
      try {
        const off = await agent({ action: 'off', plug: 'h1' });
        expect(off).toMatchObject({ code: 1, stdout: '' });
        expect(off.stderr).toBe('Failed: h1 not powered OFF: fencing disabled by the test\n');
        expect((await agent({ action: 'reboot', plug: 'h1' })).code).toBe(1);
        expect((await agent({ action: 'on', plug: 'h1' })).code).toBe(1);
        // status still answers the truth; h2 is fenced as usual.
        expect((await agent({ action: 'status', plug: 'h1' })).code).toBe(0);
        expect(h1.pidNamespace).toBe(pidNs);
        expect(h1.isUp()).toBe(true);
        expect(isRunning(qemu)).toBe(true);
        expect(h1.domainState('guest')).toBe('running');
        expect(lab.leaseHolder(disk)).toBe(h1);
      } finally {
        lab.setFenceFailure('h1', false);
      }
    });

    test('with a lying switch, off exits 0 and nothing happens: only status tells (it says on)', async () => {
      const qemu = h1.qemuPid('guest')!;
      const pidNs = h1.pidNamespace;
      lab.setFenceFailure('h1', 'lie');
      try {
        const off = await agent({ action: 'off', plug: 'h1' });
        expect(off).toMatchObject({ code: 0, stdout: 'Success: Powered OFF\n' });
        const status = await agent({ action: 'status', plug: 'h1' });
        expect(status).toMatchObject({ code: 0, stdout: 'Status: ON\n' });
      } finally {
        lab.setFenceFailure('h1', false);
      }
      expect(h1.pidNamespace).toBe(pidNs);
      expect(isRunning(qemu)).toBe(true);
      expect(h1.domainState('guest')).toBe('running');
    });

    test("with fencing hanging, off gives up after power_timeout, or is killed; either way nothing happens to the host", async () => {
      const qemu = h1.qemuPid('guest')!;
      lab.setFenceFailure('h1', 'hang');
      try {
        const timedOut = await agent({ action: 'off', plug: 'h1', power_timeout: '1' });
        expect(timedOut.code).toBe(1);
        expect(timedOut.stderr).toContain("no answer to 'off h1' from the lab's power switch");
        expect(timedOut.ms).toBeGreaterThanOrEqual(1000);
        timings.push(`off with fencing hanging, power_timeout=1: ${timedOut.ms} ms`);

        // A controller's own timeout: the agent is killed while it waits.
        let pid = 0;
        const running = agent({ action: 'off', plug: 'h1' }, { onSpawn: (p) => (pid = p) });
        await new Promise((resolve) => setTimeout(resolve, 500));
        process.kill(pid, 'SIGKILL');
        expect(await running).toMatchObject({ code: null, signal: 'SIGKILL' });
      } finally {
        lab.setFenceFailure('h1', false);
      }
      // Read but never carried out, even now that fencing works again.
      expect(lab.powerRequests().slice(-2)).toEqual([expect.objectContaining({ request: 'off h1', answer: undefined }), expect.objectContaining({ request: 'off h1', answer: undefined })]);
      expect(isRunning(qemu)).toBe(true);
      expect(h1.isUp()).toBe(true);
    });

    test('freeze: virsh times out while the guest runs and the host is on; thaw: it answers again', async () => {
      const qemu = h1.qemuPid('guest')!;
      expect(virshVersion(h1, 5_000).ok).toBe(true);
      h1.freeze();
      try {
        expect(h1.frozen).toBe(true);
        const frozen = virshVersion(h1, 2_000);
        expect(frozen).toMatchObject({ ok: false, timedOut: true });
        expect(isRunning(qemu)).toBe(true);
        // Still powered on: stopped answering is not off.
        expect(await agent({ action: 'status', plug: 'h1' })).toMatchObject({ code: 0, stdout: 'Status: ON\n' });
        expect(lab.leaseHolder(disk)).toBe(h1);
        expect(h2.runningDomains()).toEqual(['bystander']);
      } finally {
        h1.thaw();
      }
      expect(h1.frozen).toBe(false);
      expect(virshVersion(h1, 5_000).ok).toBe(true);
      expect(h1.domainState('guest')).toBe('running');
      expect(h1.qemuPid('guest')).toBe(qemu);
    });

    test('a frozen host can be fenced: off exits 0 and takes its guest along; on brings it back', async () => {
      const qemu = h1.qemuPid('guest')!;
      h1.freeze();
      const off = await agent({ action: 'off', plug: 'h1' });
      timings.push(`off of a frozen host ${off.ms} ms (${switchMs('off h1')})`);
      expect(off.code).toBe(0);
      expect(h1.frozen).toBe(false);
      expect(isRunning(qemu)).toBe(false);
      expect(lab.leaseHolder(disk)).toBeUndefined();
      // Failover: the guest may start elsewhere now.
      h2.virsh('define', lab.writeFile('guest-h2.xml', tinyDomainXml({ name: 'guest', disk })));
      h2.virsh('start', 'guest');
      expect(lab.leaseHolder(disk)).toBe(h2);

      const on = await agent({ action: 'on', plug: 'h1' });
      timings.push(`on ${on.ms} ms (${switchMs('on h1')})`);
      expect(on.code).toBe(0);
      expect(h1.domainState('guest')).toBe('shut off');
    });

    test('with no power socket at the given path the agent exits 1 for every action', async () => {
      for (const action of ['status', 'off', 'on', 'monitor']) {
        const run = await runFenceAgent({ action, plug: 'h1', socket: `${lab.root}/no-such.sock` });
        expect(run).toMatchObject({ code: 1, stdout: '' });
        expect(run.stderr).toContain(`cannot reach the lab's power switch ${lab.root}/no-such.sock: ENOENT`);
      }
      const missing = await runFenceAgent({ action: 'status', plug: 'h1' });
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain('socket= is required');
    });

    test('teardown drops a hanging request, removes the socket, and the agent then exits 1', async () => {
      lab.setFenceFailure('h2', 'hang');
      const hanging = agent({ action: 'off', plug: 'h2', power_timeout: '30' });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const started = Date.now();
      await lab.teardown();
      timings.push(`teardown ${Date.now() - started} ms`);
      const run = await hanging;
      expect(run.code).toBe(1);
      expect(run.ms).toBeLessThan(30_000);
      expect(existsSync(lab.powerSocket)).toBe(false);
      expect((await agent({ action: 'status', plug: 'h1' })).code).toBe(1);
    });
  });
}
