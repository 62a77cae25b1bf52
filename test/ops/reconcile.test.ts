import { DesiredLayout, HostInventory, KnownState, planReconcile } from '../../lib';

const desired: DesiredLayout = {
  domains: new Map([
    ['web-1', 'h1'],
    ['web-2', 'h2'],
    ['db-1', 'h1'],
  ]),
  pools: new Map([['h1', new Set(['cdktf-local'])], ['h2', new Set(['cdktf-local'])]]),
  networks: new Map([['h1', new Set(['h1-isolated'])], ['h2', new Set(['h2-isolated'])]]),
  sitePools: new Set(['shared']),
};
const state: KnownState = {
  domainNames: new Set(['web-1', 'web-2', 'db-1', 'old-1']),
  domainIds: new Set(['aaaa', 'bbbb']), // web-1 on h1 and web-2 on h2
  poolIds: new Set(['p-h2']),
  networkIds: new Set(['n-h2']),
  volumePaths: new Set(['/img/h1/web-1-cloudinit-0123456789abcdef.iso']),
};

function inventory(partial: Partial<HostInventory>): HostInventory {
  return { host: 'h1', domains: [], localVolumes: [], pools: [], networks: [], ...partial };
}

describe('planReconcile', () => {
  test('keeps what is where the configuration wants it and Terraform knows', () => {
    const actions = planReconcile(
      inventory({ domains: [{ name: 'web-1', uuid: 'AAAA', running: true }], localVolumes: [{ name: 'web-1-cloudinit-0123456789abcdef.iso', path: '/img/h1/web-1-cloudinit-0123456789abcdef.iso' }] }),
      desired,
      state,
    );
    expect(actions).toEqual([]);
  });

  test('stops the old copy of a VM placed elsewhere, and deletes its local disk', () => {
    const actions = planReconcile(
      inventory({ domains: [{ name: 'web-2', uuid: 'cccc', running: true }], localVolumes: [{ name: 'web-2-cloudinit-0123456789abcdef.iso', path: '/img/h1/web-2-cloudinit-0123456789abcdef.iso' }] }),
      desired,
      state,
    );
    expect(actions.map((a) => [a.action, a.target])).toEqual([
      ['stop-and-undefine-domain', 'web-2'],
      ['delete-volume', 'cdktf-local/web-2-cloudinit-0123456789abcdef.iso'],
    ]);
    expect(actions[0].reason).toBe('the configuration places web-2 on h2');
  });

  test('undefines a domain and deletes a disk an interrupted apply left where they belong but unrecorded', () => {
    const actions = planReconcile(
      inventory({ domains: [{ name: 'db-1', uuid: 'dddd', running: false }], localVolumes: [{ name: 'db-1-cloudinit-0123456789abcdef.iso', path: '/img/h1/db-1-cloudinit-0123456789abcdef.iso' }] }),
      desired,
      state,
    );
    expect(actions.map((a) => [a.action, a.target])).toEqual([
      ['undefine-domain', 'db-1'],
      ['delete-volume', 'cdktf-local/db-1-cloudinit-0123456789abcdef.iso'],
    ]);
    expect(actions[0].reason).toContain('not in the Terraform state');
  });

  test('a managed VM no longer deployed anywhere is removed; domains and volumes it does not manage are left alone', () => {
    const actions = planReconcile(
      inventory({
        domains: [{ name: 'old-1', uuid: 'eeee', running: false }, { name: 'someone-elses', uuid: 'ffff', running: true }],
        localVolumes: [{ name: 'someone-elses-boot.qcow2', path: '/img/h1/x' }, { name: 'base-debian.qcow2', path: '/img/h1/base' }],
      }),
      desired,
      state,
    );
    expect(actions.map((a) => [a.action, a.target, a.reason])).toEqual([['undefine-domain', 'old-1', 'old-1 is not deployed in the configuration']]);
  });

  test('a VM deployed where it is but shut off outside Terraform is started', () => {
    const actions = planReconcile(inventory({ domains: [{ name: 'web-1', uuid: 'aaaa', running: false }] }), desired, state);
    expect(actions.map((a) => [a.action, a.target])).toEqual([['start-domain', 'web-1']]);
  });

  test('shared pools are refreshed first, so volumes other hosts created are seen; a stopped one is left alone', () => {
    const actions = planReconcile(
      inventory({
        domains: [{ name: 'web-2', uuid: 'cccc', running: true }],
        pools: [{ name: 'shared', uuid: 's', running: true }, { name: 'cdktf-local', uuid: 'p-h1' }],
      }),
      desired,
      state,
    );
    expect(actions.map((a) => [a.action, a.target])).toEqual([
      ['refresh-pool', 'shared'],
      ['stop-and-undefine-domain', 'web-2'],
      ['undefine-pool', 'cdktf-local'],
    ]);
    const stopped = planReconcile(inventory({ pools: [{ name: 'shared', uuid: 's', running: false }] }), desired, state);
    expect(stopped).toEqual([]);
  });

  test('a returning host loses the pool and network Terraform forgot, after its domains and disks; others stay', () => {
    const actions = planReconcile(
      inventory({
        host: 'h1',
        domains: [{ name: 'web-2', uuid: 'x', running: false }],
        pools: [{ name: 'cdktf-local', uuid: 'p-h1' }, { name: 'shared', uuid: 's' }],
        networks: [{ name: 'h1-isolated', uuid: 'n-h1' }, { name: 'default', uuid: 'd' }],
      }),
      desired,
      state,
    );
    // The shared pool is only refreshed: it is defined on every host beforehand, never by Terraform.
    expect(actions.map((a) => a.action)).toEqual(['refresh-pool', 'undefine-domain', 'undefine-pool', 'undefine-network']);
    expect(actions.map((a) => a.target)).toEqual(['shared', 'web-2', 'cdktf-local', 'h1-isolated']);
    const known = planReconcile(inventory({ host: 'h2', pools: [{ name: 'cdktf-local', uuid: 'P-H2' }], networks: [{ name: 'h2-isolated', uuid: 'n-h2' }] }), desired, state);
    expect(known).toEqual([]);
  });
});
