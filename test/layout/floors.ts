/**
 * The floors of src/, lowest first: a folder imports only folders on floors below its own (and
 * itself); folders that share a floor do not import each other. Files directly in src/ (the
 * package entry points) stand above every floor. A new folder gets a place here.
 */
export const FLOORS: readonly (readonly string[])[] = [
  ['util'],
  ['engine'],
  ['structures', 'io'],
  ['nn'],
  ['text', 'convert'],
  ['modeling'],
  ['onnx'],
  ['inference'],
  ['viz', 'evaluation'],
  ['data'],
  ['training'],
  ['browser', 'server', 'annotate'],
  ['cli'],
];

/** Package imports that need Node (besides its built-ins): never reachable from the browser's entries. */
export const NODE_ONLY_PACKAGES: readonly string[] = ['sharp', 'bullmq', 'ioredis', 'onnxruntime-node'];
