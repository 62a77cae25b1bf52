import * as fs from 'fs';
import * as path from 'path';
import { Construct } from 'constructs';
import { DECISION_RECORD_CONTEXT, DecisionRecord, parseRecord, RecordedOverride, recordedOverride } from '../core/decision-record';
import { HostState } from '../core/model';

/** A decision record file as read for a synth: the record (null: none written yet), or why it cannot be used. */
interface RecordRead {
  readonly record?: DecisionRecord | null;
  readonly problem?: string;
}

/** Read once per app and file. */
const read = new WeakMap<object, Map<string, RecordRead>>();

function readRecordFile(app: object, file: string): RecordRead {
  const files = read.get(app) ?? new Map<string, RecordRead>();
  read.set(app, files);
  const known = files.get(file);
  // A problem is reported once, by the first host that reads the file.
  if (known !== undefined) return { record: known.record };
  let result: RecordRead;
  try {
    const text = fs.readFileSync(file, 'utf8');
    result = { record: text.trim() === 'null' ? null : parseRecord(text, file) };
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    result = {
      problem: missing
        ? `context ${DECISION_RECORD_CONTEXT} names ${file}, which does not exist: write it with \`cdktf-libvirt-cluster record --stack-dir <stack folder> --out ${file}\`, or remove the context value`
        : `context ${DECISION_RECORD_CONTEXT}: ${(err as Error).message}`,
    };
  }
  files.set(file, result);
  return result;
}

/**
 * The state the controllers decided for a host, from the decision record file named by the
 * context `libvirt-cluster:decision-record` (relative to the working directory, as cdktf runs the
 * app), when it differs from `declared`; with the warning to show. A problem when the file named
 * cannot be used: a synth that was told to follow the record must not silently ignore it.
 */
export function recordedHostState(scope: Construct, hostName: string, declared: HostState): { readonly override?: RecordedOverride; readonly problem?: string } {
  const value = scope.node.tryGetContext(DECISION_RECORD_CONTEXT);
  if (value === undefined) return {};
  if (typeof value !== 'string' || value === '') return { problem: `context ${DECISION_RECORD_CONTEXT} is ${JSON.stringify(value)}: give the path of a decision record file` };
  const file = path.resolve(value);
  const { record, problem } = readRecordFile(scope.node.root, file);
  if (problem !== undefined) return { problem };
  if (record === null || record === undefined) return {};
  return { override: recordedOverride(record, hostName, declared, value) };
}
