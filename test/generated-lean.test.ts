import * as fs from 'fs';
import * as path from 'path';
import { App, Fn, TerraformResource, TerraformStack, Token, Tokenization } from 'cdktf';
import { Construct } from 'constructs';
import { LEAN_DIR, leanModels, leanSources } from '../scripts/generate-lean';
import { Domain } from '../lib/generated/libvirt/domain';
import { Network } from '../lib/generated/libvirt/network';
import { Pool } from '../lib/generated/libvirt/pool';
import { LibvirtProvider } from '../lib/generated/libvirt/provider';
import { Volume } from '../lib/generated/libvirt/volume';
import { LeanDomain, LeanNetwork, LeanPool, LeanVolume } from '../lib/generated-lean';
import { scratchDir } from './synth';

type Ctor = new (scope: Construct, id: string, config: any) => TerraformResource;
const CLASSES: Record<string, { generated: Ctor; lean: Ctor }> = {
  libvirt_domain: { generated: Domain, lean: LeanDomain },
  libvirt_volume: { generated: Volume, lean: LeanVolume },
  libvirt_pool: { generated: Pool, lean: LeanPool },
  libvirt_network: { generated: Network, lean: LeanNetwork },
};

/**
 * A config that sets every assignable attribute of the schema (or, `sparse`, two in three),
 * recursively to `maxDepth` nested blocks, with distinct values; lists hold two elements, so
 * per-element mapping is exercised.
 */
function everyAttribute(struct: any, maxDepth: number, sparse = false, counter = { n: 0 }, depth = 0): Record<string, unknown> {
  const value = (type: any): unknown => {
    switch (type.typeModelType) {
      case 'simple':
        counter.n += 1;
        return type.type === 'number' ? counter.n : type.type === 'boolean' ? counter.n % 2 === 0 : `v${counter.n}`;
      case 'list':
      case 'set': {
        const items = [value(type.elementType), value(type.elementType)].filter((v) => v !== undefined);
        return items.length > 0 ? items : undefined;
      }
      case 'map':
        return { a: value(type.elementType), b: value(type.elementType) };
      case 'struct':
        return depth < maxDepth ? everyAttribute(type.struct, maxDepth, sparse, counter, depth + 1) : undefined;
      default:
        throw new Error(`no sample for attribute type ${type.typeModelType}`);
    }
  };
  const config: Record<string, unknown> = {};
  for (const [i, att] of struct.assignableAttributes.entries()) {
    // Sparse: one attribute in three left out at every level, so blocks have undefined keys.
    if (att.isProvider || (sparse && (i + depth) % 3 === 1)) continue;
    const v = value(att.type);
    if (v !== undefined) config[att.name] = v;
  }
  return config;
}

/**
 * Synthesizes `build` once with the generated classes and once with the lean ones, each side in
 * stacks of its own (`stackOf(id)`); returns each side's stacks, JSON without metadata or HCL.
 */
function bothWays(build: (stackOf: (id: string) => TerraformStack, classes: Record<string, Ctor>) => void, hcl = false): { generated: string; lean: string } {
  const outdir = scratchDir('lean-');
  // What `cdktf synth --hcl` sets; stacks read it when constructed.
  const before = process.env.SYNTH_HCL_OUTPUT;
  process.env.SYNTH_HCL_OUTPUT = String(hcl);
  const names = { generated: [] as string[], lean: [] as string[] };
  try {
    const app = new App({ outdir });
    for (const side of ['generated', 'lean'] as const) {
      const stacks = new Map<string, TerraformStack>();
      const stackOf = (id: string) => {
        if (!stacks.has(id)) {
          stacks.set(id, new TerraformStack(app, `side-${side}${id}`));
          names[side].push(`side-${side}${id}`);
        }
        return stacks.get(id)!;
      };
      build(stackOf, Object.fromEntries(Object.entries(CLASSES).map(([type, c]) => [type, c[side]])));
    }
    app.synth();
  } finally {
    if (before === undefined) delete process.env.SYNTH_HCL_OUTPUT;
    else process.env.SYNTH_HCL_OUTPUT = before;
  }
  // The sides' stacks differ in name only, which names their state files and remote states.
  const read = (side: 'generated' | 'lean') =>
    names[side]
      .map((name) => {
        const dir = path.join(outdir, 'stacks', name);
        const text = hcl
          ? fs.readFileSync(path.join(dir, 'cdk.tf'), 'utf8').replace(/\/\/ .*\n/g, '')
          : JSON.stringify(withoutMetadata(JSON.parse(fs.readFileSync(path.join(dir, 'cdk.tf.json'), 'utf8'))), null, 1);
        return text.split(`side-${side}`).join('SIDE');
      })
      .join('\n');
  return { generated: read('generated'), lean: read('lean') };
}

function withoutMetadata(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutMetadata);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).filter(([k]) => k !== '//').map(([k, v]) => [k, withoutMetadata(v)]));
  }
  return value;
}

describe('lean resource classes', () => {
  test('are exactly what the committed provider schema generates', () => {
    const fresh = leanSources();
    expect(fs.readdirSync(LEAN_DIR).sort()).toEqual([...fresh.keys()].sort());
    // Regenerate with `npm run get -- --bindings-only`; never edit lib/generated-lean by hand.
    const differing = [...fresh].filter(([name, text]) => fs.readFileSync(path.join(LEAN_DIR, name), 'utf8') !== text).map(([name]) => name);
    expect(differing).toEqual([]);
  });

  const models = leanModels();
  test.each(models.map((m) => [m.type, m] as const))('%s: every attribute of the schema renders as the generated class renders it', (type, { model }) => {
    const config = everyAttribute(model.configStruct, 6);
    expect(Object.keys(config).length).toBe(model.configStruct.assignableAttributes.length);
    for (const [hcl, sparse] of [[false, false], [true, false], [false, true], [true, true]]) {
      const { generated, lean } = bothWays((stackOf, classes) => {
        const stack = stackOf('');
        new classes[type](stack, 'Resource', { ...(sparse ? everyAttribute(model.configStruct, 6, true) : config), provider: new LibvirtProvider(stack, 'Provider', { uri: 'qemu:///system' }) });
      }, hcl);
      expect(generated).toContain(hcl ? `resource "${type}"` : `"${type}"`);
      expect(lean).toEqual(generated);
    }
    // Four synths of a domain with every attribute set: about 2 s alone, more beside other work.
  }, 60_000);

  test('tokens, references, empty blocks and the meta-arguments render as the generated classes render them', () => {
    const { generated, lean } = bothWays((stackOf, c) => {
      const stack = stackOf('');
      const provider = new LibvirtProvider(stack, 'Provider', { alias: 'kvm1', uri: 'qemu:///system' });
      const pool = new c.libvirt_pool(stack, 'Pool', { provider, name: 'local', type: 'dir', target: { path: '/srv/pool' } });
      const network = new c.libvirt_network(stack, 'Network', { provider, name: 'isolated', autostart: true });
      const base = new c.libvirt_volume(stack, 'Base', { provider, pool: (pool as Pool).name, name: 'base.qcow2', create: { content: { url: '/srv/images/base.qcow2' } } });
      const boot = new c.libvirt_volume(stack, 'Boot', {
        provider,
        pool: (pool as Pool).name,
        name: 'boot.qcow2',
        target: { format: { type: 'qcow2' } },
        capacity: (base as Volume).capacity,
        backingStore: { path: (base as Volume).path, format: { type: 'qcow2' } },
        lifecycle: { preventDestroy: true, ignoreChanges: ['capacity'] },
      });
      new c.libvirt_domain(stack, 'Resource', {
        provider,
        name: Fn.lower('WEB'),
        type: 'kvm',
        vcpu: Token.asNumber(Fn.max([1, 2])),
        memory: 512,
        memoryUnit: 'MiB',
        features: {},
        os: { type: 'hvm', bootDevices: [{ dev: 'hd' }, { dev: 'network' }] },
        devices: {
          disks: [{ source: { volume: { pool: (boot as Volume).pool, volume: (boot as Volume).name } }, target: { dev: 'vda', bus: 'virtio' } }],
          interfaces: [{ source: { network: { network: (network as Network).name } }, model: { type: 'virtio' } }],
          graphics: [{ vnc: { autoPort: true, listen: '127.0.0.1' } }],
        },
        dependsOn: [boot],
        count: 2,
      }).addOverride('os.firmware', 'efi');
      boot.addOverride('target.format.type', 'raw');
    });
    expect(generated).toContain('${libvirt_volume.Boot.pool}');
    expect(generated).toContain('"firmware": "efi"');
    expect(lean).toEqual(generated);
  });

  test('a reference from another stack becomes the same remote-state lookup', () => {
    const { generated, lean } = bothWays((stackOf, c) => {
      const a = stackOf('-a');
      const volume = new c.libvirt_volume(a, 'Disk', { provider: new LibvirtProvider(a, 'Provider', { uri: 'qemu:///system' }), pool: 'p', name: 'd.qcow2', capacity: 1 });
      const b = stackOf('-b');
      const provider = new LibvirtProvider(b, 'Provider', { uri: 'qemu:///system' });
      new c.libvirt_volume(b, 'Copy', { provider, pool: (volume as Volume).pool, name: 'copy.qcow2', capacity: (volume as Volume).capacity });
    });
    expect(generated).toContain('data.terraform_remote_state.cross-stack-reference-input-SIDE-a');
    expect(lean).toEqual(generated);
  });

  test('a stack-level override of a lean resource is merged into its attributes as into the generated class\'s', () => {
    const { generated, lean } = bothWays((stackOf, c) => {
      const stack = stackOf('');
      const provider = new LibvirtProvider(stack, 'Provider', { uri: 'qemu:///system' });
      new c.libvirt_volume(stack, 'Disk', { provider, pool: 'p', name: 'd.qcow2', capacity: 1, target: { format: { type: 'qcow2' } } });
      stack.addOverride('resource.libvirt_volume.Disk.target.format.type', 'raw');
      stack.addOverride('resource.libvirt_volume.Disk.capacity_unit', 'bytes');
    });
    expect(generated).toContain('"capacity_unit": "bytes"');
    expect(generated).toContain('"type": "raw"');
    expect(lean).toEqual(generated);
  });

  test('a stack whose toTerraform someone else replaced keeps it, and still gets the same JSON', () => {
    let replacedCalls = 0;
    const { generated, lean } = bothWays((stackOf, c) => {
      const stack = stackOf('');
      const own = stack.toTerraform.bind(stack);
      const replaced = () => {
        replacedCalls += 1;
        return own();
      };
      stack.toTerraform = replaced;
      const provider = new LibvirtProvider(stack, 'Provider', { uri: 'qemu:///system' });
      const pool = new c.libvirt_pool(stack, 'Pool', { provider, name: 'local', type: 'dir', target: { path: '/srv/pool' } });
      new c.libvirt_volume(stack, 'Disk', { provider, pool: (pool as Pool).name, name: 'd.qcow2', capacity: Token.asNumber(Fn.max([1, 2])) });
      expect(stack.toTerraform).toBe(replaced);
    });
    expect(replacedCalls).toBe(2);
    expect(lean).toEqual(generated);
  });

  test('on a plain stack the lean classes put their rendered attributes in place at the stack\'s toTerraform', () => {
    const stack = new TerraformStack(new App({ outdir: scratchDir('lean-') }), 'plain');
    const before = stack.toTerraform;
    const disk = new LeanVolume(stack, 'Disk', { pool: 'p', name: 'd.qcow2', capacity: 1 });
    new LeanVolume(stack, 'Copy', { pool: disk.pool, name: 'copy.qcow2', capacity: disk.capacity });
    expect(Object.prototype.hasOwnProperty.call(stack, 'toTerraform')).toBe(true);
    expect(stack.toTerraform).not.toBe(before);
    const json = stack.toTerraform();
    // Plain JSON: no token object is left where cdktf's merge kept one per resource.
    expect(JSON.parse(JSON.stringify(json.resource))).toEqual(json.resource);
    expect(json.resource.libvirt_volume.Copy).toMatchObject({ pool: '${libvirt_volume.Disk.pool}', capacity: '${libvirt_volume.Disk.capacity}', name: 'copy.qcow2' });
  });

  test('references carry no creation stack, where the generated classes capture one each', () => {
    const stack = new TerraformStack(new App({ outdir: scratchDir('lean-') }), 'refs');
    const config = { pool: 'p', name: 'd.qcow2', capacity: 1 };
    const lean = new LeanVolume(stack, 'Lean', config);
    const generated = new Volume(stack, 'Generated', config);
    const stackOf = (token: string | number) => (typeof token === 'number' ? Tokenization.reverseNumber(token) : Tokenization.reverseString(token).firstToken)!.creationStack;
    expect(stackOf(lean.name)).toEqual([]);
    expect(stackOf(lean.capacity)).toEqual([]);
    expect(stackOf(generated.name).length).toBeGreaterThan(0);
  });
});
