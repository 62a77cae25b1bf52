export * from './cloud-init';
export * from './core/size';
export * from './domain-type';
export * from './guest-architecture';
export * from './host';
export * from './image';
export * from './secure-defaults';
export * from './virtual-machine';
