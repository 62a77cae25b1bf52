import { CdkName, chooseCdk } from '../lib/cdk';

/** chooseCdk with the given CDKs installed and loaded (module file = the CDK's name). */
function choose(installed: CdkName[], loaded: CdkName[] = [], env: Record<string, string> = {}): CdkName {
  return chooseCdk(env, (name) => (installed.includes(name) ? name : undefined), (file) => loaded.includes(file as CdkName));
}

describe('which CDK the built package runs on', () => {
  test('the only one installed', () => {
    expect(choose(['cdktf'])).toBe('cdktf');
    expect(choose(['cdktn'])).toBe('cdktn');
  });

  test('with both installed, the one the app has loaded; cdktn when it has loaded neither or both', () => {
    expect(choose(['cdktf', 'cdktn'], ['cdktf'])).toBe('cdktf');
    expect(choose(['cdktf', 'cdktn'], ['cdktn'])).toBe('cdktn');
    expect(choose(['cdktf', 'cdktn'])).toBe('cdktn');
    expect(choose(['cdktf', 'cdktn'], ['cdktf', 'cdktn'])).toBe('cdktn');
  });

  test('CDKTF_LIBVIRT_CLUSTER_CDK settles it; any other value is an error that says what to give', () => {
    expect(choose(['cdktf', 'cdktn'], ['cdktn'], { CDKTF_LIBVIRT_CLUSTER_CDK: 'cdktf' })).toBe('cdktf');
    expect(choose(['cdktf'], [], { CDKTF_LIBVIRT_CLUSTER_CDK: 'cdktn' })).toBe('cdktn');
    expect(() => choose(['cdktf'], [], { CDKTF_LIBVIRT_CLUSTER_CDK: 'terrain' })).toThrow('CDKTF_LIBVIRT_CLUSTER_CDK=terrain: give cdktf or cdktn');
  });

  test('neither installed: an error naming what to install', () => {
    expect(() => choose([])).toThrow('npm install cdktf@^0.21 (or cdktn@^0.24)');
  });
});
