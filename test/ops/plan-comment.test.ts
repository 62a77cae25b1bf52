import { domainUpdateEffect, PlanJson, renderPlanComment } from '../../lib/ops/plan-comment';

const change = (address: string, ...actions: string[]) => ({ address, type: address.split('.')[0], change: { actions } });

describe('the pull-request comment for a saved plan', () => {
  const plan: PlanJson = {
    terraform_version: '1.12.6',
    resource_changes: [
      change('libvirt_domain.mail_replica-1_Resource_1A2B', 'delete', 'create'),
      change('libvirt_volume.mail_replica-3_Boot_9F', 'create'),
      change('libvirt_domain.mail_replica-3_Resource_77', 'create'),
      change('libvirt_domain.web_Resource_AB', 'update'),
      change('libvirt_pool.kvm2_Pool_12', 'forget'),
      change('libvirt_network.kvm1_Network_34', 'no-op'),
      change('data.libvirt_node_info.x', 'read'),
    ],
  };
  const comment = renderPlanComment({ stack: 'mail', plan, engine: 'tofu', report: '# Placement\n\n| VM | host |\n| --- | --- |\n| replica-1 | kvm1 |\n' });

  test('the summary counts like the engine does, a replacement as one add and one destroy', () => {
    expect(comment).toContain('**3 to add, 1 to change, 1 to destroy, 1 to forget** (tofu 1.12.6)');
  });

  test('a VM that is replaced is called out before anything else', () => {
    expect(comment.indexOf('[!WARNING]')).toBeLessThan(comment.indexOf('<details'));
    expect(comment).toContain('A VM is replaced, not updated: `libvirt_domain.mail_replica-1_Resource_1A2B`');
  });

  test('each kind of change is listed with its addresses, no-ops and reads are not', () => {
    expect(comment).toContain('1 replaced (destroyed, then created)</summary>\n\n```diff\n-/+ libvirt_domain.mail_replica-1_Resource_1A2B\n```');
    expect(comment).toContain('2 created</summary>\n\n```diff\n+ libvirt_volume.mail_replica-3_Boot_9F\n+ libvirt_domain.mail_replica-3_Resource_77\n```');
    expect(comment).toContain('~ libvirt_domain.web_Resource_AB');
    expect(comment).toContain('1 forgotten (removed from the state, left on the host)');
    expect(comment).not.toContain('libvirt_network.kvm1_Network_34');
    expect(comment).not.toContain('data.libvirt_node_info.x');
  });

  test('the placement report follows the plan', () => {
    expect(comment.indexOf('<summary>Placement report</summary>')).toBeGreaterThan(comment.indexOf('```diff'));
    expect(comment).toContain('| replica-1 | kvm1 |');
  });

  test('no changes says so; a comment longer than GitHub takes is cut and says where the rest is', () => {
    expect(renderPlanComment({ stack: 's', plan: {}, engine: 'terraform' })).toContain('**0 to add, 0 to change, 0 to destroy** (terraform)\n\nNo changes.');
    const long = renderPlanComment({ stack: 's', plan: {}, engine: 'tofu', report: 'x'.repeat(70_000) });
    expect(long.length).toBeLessThan(65_536);
    expect(long).toContain('cut at 65000 characters');
  });

  test('a domain update says whether the VM restarts: raising current vCPUs or memory within the ceilings is live', () => {
    const domain = { name: 'mail-1', vcpu: 2, vcpu_current: 1, memory: 512, current_memory: 256, running: true };
    expect(domainUpdateEffect(domain, { ...domain, vcpu_current: 2, current_memory: 384 })).toEqual({
      effect: 'live',
      detail: 'current_memory 256 → 384, vcpu_current 1 → 2: hot-added by reconcile, no restart',
    });
    expect(domainUpdateEffect(domain, { ...domain, current_memory: 128 })).toEqual({ effect: 'restart', detail: 'current_memory 256 → 128: the VM restarts' });
    expect(domainUpdateEffect(domain, { ...domain, memory: 1024, current_memory: 768 })).toEqual({
      effect: 'restart',
      detail: 'current_memory 256 → 768, memory 512 → 1024: the VM restarts',
    });
    expect(domainUpdateEffect(domain, { ...domain, vcpu_current: 2, devices: { interfaces: [] } }).effect).toBe('restart');
    const updates = renderPlanComment({
      stack: 'mail',
      engine: 'tofu',
      plan: {
        resource_changes: [
          { address: 'libvirt_domain.a', type: 'libvirt_domain', change: { actions: ['update'], before: domain, after: { ...domain, vcpu_current: 2 } } },
          { address: 'libvirt_domain.b', type: 'libvirt_domain', change: { actions: ['update'], before: domain, after: { ...domain, vcpu: 4 } } },
        ],
      },
    });
    expect(updates).toContain('- `libvirt_domain.a`: **live**: vcpu_current 1 → 2: hot-added by reconcile, no restart');
    expect(updates).toContain('- `libvirt_domain.b`: **restart**: vcpu 2 → 4: the VM restarts');
  });
});

describe('what a plan does to disks, in the comment', () => {
  const volume = (address: string, actions: string[], before?: string, after?: string, previous?: string) => ({
    address,
    type: 'libvirt_volume',
    ...(previous ? { previous_address: previous } : {}),
    change: { actions, before: before ? { name: before } : null, after: after ? { name: after } : null },
  });
  const comment = renderPlanComment({
    stack: 'mail',
    engine: 'tofu',
    plan: {
      resource_changes: [
        volume('libvirt_volume.db_BootDisk_1', ['delete', 'create'], 'db-boot.qcow2', 'db-boot-1a2b3c4d.qcow2'),
        volume('libvirt_volume.old_DataDisk_2', ['delete'], 'old-data.qcow2'),
        volume('libvirt_volume.kept_DataDisk_3', ['forget'], 'kept-data.qcow2'),
        volume('libvirt_volume.email_replica-1_DataDisk_4', ['no-op'], 'mail-1-data.qcow2', 'mail-1-data.qcow2', 'libvirt_volume.mail_replica-1_DataDisk_5'),
      ],
    },
  });

  test('a destroyed data disk is a caution; a forgotten one is not', () => {
    expect(comment).toContain('> [!CAUTION]\n> Data disks are destroyed: `libvirt_volume.old_DataDisk_2` (old-data.qcow2)');
    expect(comment).not.toContain('kept-data.qcow2` (');
  });

  test('a boot disk replaced under a new name is a rebuild from a new image', () => {
    expect(comment).toContain('Boot disks rebuilt from a new image');
    expect(comment).toContain('- `libvirt_volume.db_BootDisk_1`: db-boot.qcow2 → db-boot-1a2b3c4d.qcow2');
  });

  test('moves are listed, from the old address to the new', () => {
    expect(comment).toContain('1 moved (renamed in the code; nothing destroyed)');
    expect(comment).toContain('libvirt_volume.mail_replica-1_DataDisk_5 → libvirt_volume.email_replica-1_DataDisk_4');
  });
});
