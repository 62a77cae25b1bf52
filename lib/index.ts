// The constructs (cdktf), the value types and vocabularies they share with the pure core, and the
// operations command's library entry points. The generated provider bindings are on the
// `cdktf-libvirt-cluster/providers/libvirt` subpath.
// Some declarations use Node's types (Buffer, NodeJS.ProcessEnv); TypeScript 7 includes no @types
// package a project does not name, so the declarations name it (kept in the output by preserve).
/// <reference types="node" preserve="true" />
export * from './constructs/adopted-virtual-machine';
export * from './constructs/anti-affinity';
export * from './constructs/cloud-init';
export * from './constructs/cluster';
export * from './constructs/contract';
export * from './constructs/failover-group';
export * from './constructs/host';
export * from './constructs/image';
export * from './constructs/nic';
export * from './constructs/postgres-backend';
export * from './constructs/secure-defaults';
export * from './constructs/segment';
export { RESOURCE_LOCK_CONTEXT } from './constructs/stack-placement';
export * from './constructs/virtual-machine';
export * from './constructs/vm-limits';
export { InterfaceAddress } from './core/addressing';
export { Duration } from './core/duration';
export { HostState, PlacementPolicy, RestartPriority } from './core/model';
export { Schedule } from './core/schedule';
export type { ScheduleWindow } from './core/schedule';
export type { ForgottenDisk, MovedBlock, RecordedDataDisk, RecordedVm, RecordedVolume, ResourceRecord } from './core/resource-record';
export * from './core/size';
export * from './ops/engine';
export * from './ops/plan-comment';
export * from './ops/reconcile';
