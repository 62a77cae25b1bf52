export * from './model';
export * from './size';
export * from './placement';
export * from './admission';
export * from './schedule';
export * from './power';
export * from './report';
export * from './controller-file';
