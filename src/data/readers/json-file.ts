import { BoundedReadError, readRegularFileSync } from '../../io/bounded-file.js';

/** Annotation files beyond this are refused before reading (LVIS train is ~1.1 GB). */
export const DEFAULT_MAX_JSON_BYTES = 2 * 1024 ** 3 - 1;

/** A problem in a dataset file, with the file and the record it concerns in the message. */
export class DatasetFormatError extends Error {
  override name = 'DatasetFormatError';
  constructor(
    readonly file: string,
    readonly where: string,
    detail: string,
  ) {
    super(`${file}: ${where ? `${where}: ` : ''}${detail}`);
  }
}

/**
 * Reads and parses a JSON file; a missing, oversized, unparsable or not regular file (a FIFO, a
 * device) gets an error naming it.
 */
export function readJsonFile(file: string, maxBytes = DEFAULT_MAX_JSON_BYTES): unknown {
  let bytes: Uint8Array;
  try {
    bytes = readRegularFileSync(file, maxBytes);
  } catch (err) {
    if (err instanceof BoundedReadError) throw new DatasetFormatError(file, '', err.detail);
    throw err;
  }
  return parseJsonText(file, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
}

/** Parses JSON read from `file`; an error names the file. */
export function parseJsonText(file: string, text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new DatasetFormatError(file, '', `not valid JSON (${(err as Error).message})`);
  }
}
