import { readFileSync, statSync } from 'node:fs';

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
    super(`${file}: ${where ? where + ': ' : ''}${detail}`);
  }
}

/** Reads and parses a JSON file; a missing, oversized or unparsable file gets an error naming it. */
export function readJsonFile(file: string, maxBytes = DEFAULT_MAX_JSON_BYTES): unknown {
  let size: number;
  try {
    size = statSync(file).size;
  } catch (err) {
    throw new DatasetFormatError(file, '', `cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  if (size > maxBytes) throw new DatasetFormatError(file, '', `${size} bytes is more than the ${maxBytes} allowed`);
  const text = readFileSync(file, 'utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new DatasetFormatError(file, '', `not valid JSON (${(err as Error).message})`);
  }
}
