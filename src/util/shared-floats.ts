/**
 * Float32Array in shared memory (a SharedArrayBuffer) where the platform has it, so that another
 * thread can read or write it in place: always in Node, in a browser only on a cross-origin
 * isolated page; an ordinary array elsewhere.
 */
export function sharedFloats(length: number): Float32Array {
  return typeof SharedArrayBuffer === 'function'
    ? new Float32Array(new SharedArrayBuffer(length * 4))
    : new Float32Array(length);
}

/** Whether `array` lies in shared memory. */
export function isShared(array: ArrayBufferView): boolean {
  return typeof SharedArrayBuffer === 'function' && array.buffer instanceof SharedArrayBuffer;
}
