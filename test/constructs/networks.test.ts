import { execFileSync } from 'child_process';
import * as path from 'path';
import { TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import {
  Cluster, DomainType, FailoverGroup, Host, HostState, Image, MacvtapMode, NicProps, Segment, Size, VirtualMachine,
} from '../../lib';
import { scratchLock, synth, synthProblems } from '../synth';
import { parse } from 'yaml';
import { networkConfig, resolveNics } from '../../lib/constructs/nic';

/** The stack's libvirt_domain resources, as written. */
const domains = (json: any): any[] => Object.values(json.resource?.libvirt_domain ?? {});

const image = Image.blank('base', Size.mebibytes(64));
const lan = () => Segment.hostBridge('lan', 'br0', { subnets: ['192.0.2.0/24', '2001:db8:25::/64'], gateway4: '192.0.2.1', nameservers: ['192.0.2.53'] });

/** Stack `test`: hosts h1, h2 in a cluster with `segments`, and what `body` adds. */
function clustered(segments: Segment[], body: (stack: TerraformStack, cluster: Cluster, hosts: Host[]) => void, states: Record<string, HostState> = {}) {
  return (app: Construct) => {
    const stack = new TerraformStack(app, 'test');
    const hosts = ['h1', 'h2'].map(
      (name) =>
        new Host(stack, name, {
          domainType: DomainType.QEMU,
          uri: `qemu+ssh://admin@${name}.example.net/system`,
          capacity: { cores: 4, memory: Size.gibibytes(4) },
          state: states[name],
        }),
    );
    const cluster = new Cluster(stack, 'cluster', { hosts, segments, lockFile: scratchLock(), frozenLock: false });
    body(stack, cluster, hosts);
  };
}

const vm = (stack: Construct, cluster: Cluster, name: string, nics?: NicProps[]) =>
  new VirtualMachine(stack, name, { cluster, image, memory: Size.mebibytes(128), nics });

/** The seed ISO's file `name` of the VM whose seed volume is `volume`, read with isoinfo (independent of our writer). */
function seedFile(stackDir: string, json: any, vmName: string, name: string): string | undefined {
  const volume = Object.values(json.resource.libvirt_volume as Record<string, any>).find((v) => v.name.startsWith(`${vmName}-cloudinit-`));
  const iso = path.join(stackDir, volume.create.content.url);
  const listing = execFileSync('isoinfo', ['-J', '-f', '-i', iso], { encoding: 'utf8' });
  if (!listing.split('\n').includes(`/${name}`)) return undefined;
  return execFileSync('isoinfo', ['-J', '-i', iso, '-x', `/${name}`], { encoding: 'utf8' });
}

const hasIsoinfo = (() => {
  try {
    execFileSync('isoinfo', ['-version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('segments and NICs', () => {
  test('a replica keeps its MAC, bridge and addresses when its host fails', () => {
    const build = (states: Record<string, HostState>) =>
      clustered([lan()], (stack, cluster) => {
        new FailoverGroup(stack, 'mail', {
          cluster,
          replicas: 2,
          template: { image, memory: Size.mebibytes(128) },
          nics: [{ segment: cluster.segments[0], firstAddresses: ['192.0.2.11/24', '2001:db8:25::11/64'] }],
        });
      }, states);
    const nicsOf = (json: any) =>
      Object.fromEntries(domains(json).map((d: any) => [d.name, JSON.stringify(d.devices.interfaces)])) as Record<string, string>;
    const before = synth(build({}));
    const normal = nicsOf(before.json('test'));
    expect(Object.keys(normal).sort()).toEqual(['mail-1', 'mail-2']);
    for (const nics of Object.values(normal)) expect(JSON.parse(nics)).toEqual([{ mac: { address: expect.stringMatching(/^52:54(:[0-9a-f]{2}){4}$/) }, model: { type: 'virtio' }, source: { bridge: { bridge: 'br0' } } }]);
    expect(new Set(Object.values(normal)).size).toBe(2);
    const failed = synth(build({ h1: HostState.FAILED }));
    expect(nicsOf(failed.json('test'))).toEqual(normal);
    expect(before.file('test', 'placement-report.md')).toContain('| lan 192.0.2.11/24, lan 2001:db8:25::11/64 |');
    expect(before.file('test', 'placement-report.md')).toContain('| lan 192.0.2.12/24, lan 2001:db8:25::12/64 |');
  });

  (hasIsoinfo ? test : test.skip)('static addresses reach the guest as cloud-init network-config v2, matched by MAC', () => {
    const out = synth(clustered([lan()], (stack, cluster) => {
      vm(stack, cluster, 'web', [{ segment: cluster.segments[0], name: 'lan0', addresses: ['192.0.2.20/24', '2001:db8:25::20/64'] }]);
      vm(stack, cluster, 'plain');
    }));
    const json = out.json('test');
    const mac = domains(json).find((d: any) => d.name === 'web')!.devices.interfaces[0].mac.address;
    expect(seedFile(out.stackDir('test'), json, 'web', 'network-config')).toBe(
      [
        'version: 2',
        'ethernets:',
        '  lan0:',
        '    match:',
        `      macaddress: "${mac}"`,
        '    set-name: lan0',
        '    dhcp4: false',
        '    addresses:',
        '      - "192.0.2.20/24"',
        '      - "2001:db8:25::20/64"',
        '    routes:',
        '      - to: 0.0.0.0/0',
        '        via: 192.0.2.1',
        '    nameservers:',
        '      addresses:',
        '        - "192.0.2.53"',
        '',
      ].join('\n'),
    );
    // A VM that asks nothing of the network gets no network-config: its image decides, as before.
    expect(seedFile(out.stackDir('test'), json, 'plain', 'network-config')).toBeUndefined();
  });

  test('each kind of segment renders its libvirt interface; isolated ones are a network on every host', () => {
    const isolated = Segment.isolated('backend');
    const segments = [lan(), Segment.macvtap('uplink', 'eno1', { mode: MacvtapMode.PRIVATE }), Segment.openVSwitch('dmz', 'ovsbr0', { vlan: 42 }), isolated];
    const out = synth(clustered(segments, (stack, cluster) => {
      vm(stack, cluster, 'multi', cluster.segments.map((segment) => ({ segment, mac: undefined })));
    }));
    const json = out.json('test');
    const nics = domains(json)[0].devices.interfaces;
    expect(nics.map((n: any) => n.source)).toEqual([
      { bridge: { bridge: 'br0' } },
      { direct: { dev: 'eno1', mode: 'private' } },
      { bridge: { bridge: 'ovsbr0' } },
      { network: { network: expect.stringMatching(/^\$\{libvirt_network\.h[12]_Segment-backend_[0-9A-F]+\.name\}$/) } },
    ]);
    expect(nics[2].virtual_port.params.open_v_switch.interface_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(nics[2].vlan).toEqual({ tags: [{ id: 42 }] });
    expect(new Set(nics.map((n: any) => n.mac.address)).size).toBe(4);
    const networks = Object.values(json.resource.libvirt_network as Record<string, any>).filter((n) => n.name === 'backend');
    expect(networks.map((n) => n.provider).sort()).toEqual(['libvirt.h1', 'libvirt.h2']);
    for (const n of networks) expect(Object.keys(n).filter((k) => k !== '//').sort()).toEqual(['autostart', 'name', 'provider']); // no forward, no ip
  });

  test('a MAC is derived from stack, VM and NIC names: the same on every synth, given ones are kept', () => {
    const build = (mac?: string) =>
      clustered([lan()], (stack, cluster) => {
        vm(stack, cluster, 'web', [{ segment: cluster.segments[0], mac }]);
      });
    const macOf = (json: any) => domains(json)[0].devices.interfaces[0].mac.address;
    expect(macOf(synth(build()).json('test'))).toBe(macOf(synth(build()).json('test')));
    expect(macOf(synth(build('52:54:00:AB:CD:EF')).json('test'))).toBe('52:54:00:ab:cd:ef');
  });

  test('a clustered VM without nics gets one NIC on the cluster default isolated segment, the same network name on every host', () => {
    const json = synth(clustered([], (stack, cluster) => void vm(stack, cluster, 'web'))).json('test');
    const networks = Object.values(json.resource.libvirt_network as Record<string, any>).map((n) => `${n.provider} ${n.name}`).sort();
    // The hosts' own networks are for standalone VMs: none here.
    expect(networks).toEqual(['libvirt.h1 cluster-isolated', 'libvirt.h2 cluster-isolated']);
  });

  test('a failed host forgets its segment networks through removed blocks, never destroying them', () => {
    const build = clustered([Segment.isolated('backend')], (stack, cluster) => void vm(stack, cluster, 'web', [{ segment: cluster.segments[0] }]), { h1: HostState.FAILED });
    const json = synth(build).json('test');
    expect(json.removed.map((r: any) => r.from)).toEqual(expect.arrayContaining([expect.stringMatching(/^libvirt_network\.h1_Segment-backend_[0-9A-F]+$/)]));
    expect(Object.values(json.resource.libvirt_network as Record<string, any>).map((n) => n.provider)).not.toContain('libvirt.h1');
  });

  test('duplicate addresses and MACs, addresses outside their prefix and unknown segments are reported together, with paths and fixes', () => {
    const problems = synthProblems(clustered([lan()], (stack, cluster) => {
      const segment = cluster.segments[0];
      vm(stack, cluster, 'a', [{ segment, addresses: ['192.0.2.20/24'], mac: '52:54:00:00:00:01' }]);
      vm(stack, cluster, 'b', [{ segment, addresses: ['192.0.2.20/24'], mac: '52:54:00:00:00:01' }]);
      vm(stack, cluster, 'c', [{ segment, addresses: ['198.51.100.7/24', '192.0.2.30/16', '192.0.2.300/24', '192.0.2.0/24'] }]);
      vm(stack, cluster, 'd', [{ segment: Segment.hostBridge('other', 'br9') }, { segment, mac: '01:00:5e:00:00:01', name: 'Bad Name' }]);
    }));
    expect(problems.sort()).toEqual(
      [
        "[test/LibvirtClusterPlacement] MAC 52:54:00:00:00:01 is used by 2 NICs (test/a NIC eth0, test/b NIC eth0): give each its own mac, or leave mac out to derive one",
        "[test/LibvirtClusterPlacement] address 192.0.2.20 is used by 2 NICs on segment 'lan' (test/a NIC eth0, test/b NIC eth0): give each its own address",
        "[test/c] NIC eth0: 198.51.100.7/24 is outside segment 'lan' (192.0.2.0/24, 2001:db8:25::/64); use an address in one of its subnets, with its prefix",
        "[test/c] NIC eth0: 192.0.2.30/16 is outside segment 'lan' (192.0.2.0/24, 2001:db8:25::/64); use an address in one of its subnets, with its prefix",
        "[test/c] NIC eth0: '192.0.2.300' is not an IPv4 address",
        '[test/c] NIC eth0: 192.0.2.0/24 is the network address of its subnet, not a host\'s; pick an address inside it',
        "[test/d] NIC eth0 is on segment 'other', which cluster test/cluster does not have: add it to the cluster's segments, so every host has it",
        "[test/d] NIC Bad Name: the name must be a-z and 0-9, starting with a letter, at most 15; it is the guest's interface name",
        '[test/d] NIC Bad Name: MAC 01:00:5e:00:00:01 is a multicast address (lowest bit of the first byte set); a NIC needs a unicast one',
      ].sort(),
    );
  });

  test('search domains and name servers are checked: a value that is not a DNS name or an address fails the synth, all listed', () => {
    const problems = synthProblems(clustered(
      [Segment.hostBridge('lan', 'br0', { subnets: ['192.0.2.0/24'], nameservers: ['192.0.2.53', 'dns.example.net'], searchDomains: ['corp.example.net', 'example.net.', 'a: b', 'x\nnameservers: evil', '-bad.example', ''] })],
      () => undefined,
    ));
    const fix = "is not a DNS name; give labels of letters, digits, '-' or '_' joined by dots, e.g. corp.example.net";
    expect(problems.filter((p) => /search domain|name server/.test(p)).sort()).toEqual(
      [
        `[test/cluster] segment 'lan': search domain "a: b" ${fix}`,
        `[test/cluster] segment 'lan': search domain "x\\nnameservers: evil" ${fix}`,
        `[test/cluster] segment 'lan': search domain "-bad.example" ${fix}`,
        `[test/cluster] segment 'lan': search domain "" ${fix}`,
        expect.stringMatching(/^\[test\/cluster\] segment 'lan': name server 'dns\.example\.net' /),
      ].sort(),
    );
  });

  test('network-config is YAML written by a YAML library: whatever a value holds, the document parses back to the same data', () => {
    // Synth refuses such values (above); the writer is safe even so, as YAML 1.1 (cloud-init's parser) reads it.
    const segment = Segment.hostBridge('lan', 'br0', { gateway4: '192.0.2.1', gateway6: '2001:db8::1', nameservers: ['192.0.2.53'], searchDomains: ['a: b', 'x\ny: z', '#c', 'yes', '1:20'] });
    const { nics } = resolveNics([{ segment, addresses: ['192.0.2.9/24', '2001:db8::9/64'], mac: '52:54:00:12:34:56' }], 'test/web');
    const text = networkConfig(nics)!;
    expect(parse(text, { version: '1.1' })).toEqual({
      version: 2,
      ethernets: {
        eth0: {
          match: { macaddress: '52:54:00:12:34:56' },
          'set-name': 'eth0',
          dhcp4: false,
          addresses: ['192.0.2.9/24', '2001:db8::9/64'],
          routes: [{ to: '0.0.0.0/0', via: '192.0.2.1' }, { to: '::/0', via: '2001:db8::1' }],
          nameservers: { addresses: ['192.0.2.53'], search: ['a: b', 'x\ny: z', '#c', 'yes', '1:20'] },
        },
      },
    });
  });

  test('segment settings are checked: names, subnets, gateways outside them, VLAN tags', () => {
    const problems = synthProblems(clustered(
      [
        Segment.hostBridge('Bad_Name', 'br0'),
        Segment.hostBridge('lan', 'br0', { subnets: ['192.0.2.1/24', 'fd00::/129'], gateway4: '198.51.100.1', gateway6: '192.0.2.1' }),
        Segment.openVSwitch('dmz', 'ovs br', { vlan: 4095 }),
        Segment.hostBridge('lan', 'br1'),
      ],
      () => undefined,
    ));
    expect(problems.sort()).toEqual(
      [
        "[test/cluster] segment 'Bad_Name': the name must start with a letter and hold only a-z, 0-9 and '-' (at most 31); it names the libvirt network",
        "[test/cluster] segment 'lan': subnet 192.0.2.1/24 has host bits set; write 192.0.2.0/24",
        "[test/cluster] segment 'lan': subnet 'fd00::/129' has prefix /129; an IPv6 prefix is 0 to 128",
        "[test/cluster] segment 'lan': gateway6 192.0.2.1 is not an IPv6 address",
        "[test/cluster] segment 'dmz': 'ovs br' is not a host network device name (at most 15 characters, no spaces or slashes)",
        "[test/cluster] segment 'dmz': VLAN 4095 is not a tag from 1 to 4094",
        '[test/cluster] two segments are named lan; each segment needs its own name',
      ].sort(),
    );
  });

  test('a standalone VM on an isolated segment gets the network on its host; two same-named segments there are an error', () => {
    const backend = Segment.isolated('backend');
    const out = synth((app) => {
      const stack = new TerraformStack(app, 'test');
      const host = new Host(stack, 'kvm1', { domainType: DomainType.QEMU });
      new VirtualMachine(stack, 'a', { host, image, memory: Size.mebibytes(64), nics: [{ segment: backend }] });
      new VirtualMachine(stack, 'b', { host, image, memory: Size.mebibytes(64), nics: [{ segment: backend }] });
    });
    const names = Object.values(out.json('test').resource.libvirt_network as Record<string, any>).map((n) => n.name).sort();
    expect(names).toEqual(['backend']); // the host's own network only comes with a VM on it
    const problems = synthProblems((app) => {
      const stack = new TerraformStack(app, 'test');
      const host = new Host(stack, 'kvm1', { domainType: DomainType.QEMU });
      new VirtualMachine(stack, 'a', { host, image, memory: Size.mebibytes(64), nics: [{ segment: Segment.isolated('backend') }] });
      new VirtualMachine(stack, 'b', { host, image, memory: Size.mebibytes(64), nics: [{ segment: Segment.isolated('backend') }] });
    });
    expect(problems).toEqual(['[test/kvm1] two different segments are named backend on host kvm1: the name is their libvirt network; declare the segment once and share it, or rename one']);
  });

  test("a standalone VM's segments are checked by its host at synth, once per host however many VMs use them", () => {
    const problems = synthProblems((app) => {
      const stack = new TerraformStack(app, 'test');
      const host = new Host(stack, 'kvm1', { domainType: DomainType.QEMU });
      const other = new Host(stack, 'kvm2', { domainType: DomainType.QEMU });
      const dmz = Segment.openVSwitch('dmz', 'ovs br', { vlan: 4095 });
      const good = Segment.hostBridge('lan', 'br0', { subnets: ['192.0.2.0/24'] });
      new VirtualMachine(stack, 'a', { host, image, memory: Size.mebibytes(64), nics: [{ segment: dmz }, { segment: good }] });
      new VirtualMachine(stack, 'b', { host, image, memory: Size.mebibytes(64), nics: [{ segment: dmz }] });
      new VirtualMachine(stack, 'c', { host: other, image, memory: Size.mebibytes(64), nics: [{ segment: Segment.macvtap('wan', 'eno1', { subnets: ['198.51.100.1/24'] }) }] });
    });
    expect(problems.sort()).toEqual(
      [
        "[test/kvm1] segment 'dmz': 'ovs br' is not a host network device name (at most 15 characters, no spaces or slashes) (a NIC of a VM on host kvm1)",
        "[test/kvm1] segment 'dmz': VLAN 4095 is not a tag from 1 to 4094 (a NIC of a VM on host kvm1)",
        "[test/kvm2] segment 'wan': subnet 198.51.100.1/24 has host bits set; write 198.51.100.0/24 (a NIC of a VM on host kvm2)",
      ].sort(),
    );
  });
});
