import { DatasetFormatError } from './json-file.js';

/**
 * Typed access to fields of parsed JSON records. Each reader makes one `Fields` per file; every
 * failure names the file, the record (`annotations[12] (id 345)`) and the field.
 */
export class Fields {
  constructor(readonly file: string) {}

  fail(where: string, detail: string): never {
    throw new DatasetFormatError(this.file, where, detail);
  }

  object(value: unknown, where: string): Record<string, unknown> {
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      this.fail(where, `expected an object, got ${describe(value)}`);
    return value as Record<string, unknown>;
  }

  array(record: Record<string, unknown>, key: string, where: string): unknown[] {
    const value = record[key];
    if (!Array.isArray(value)) this.fail(where, `'${key}' must be an array, got ${describe(value)}`);
    return value;
  }

  optionalArray(record: Record<string, unknown>, key: string, where: string): unknown[] | undefined {
    return record[key] === undefined || record[key] === null ? undefined : this.array(record, key, where);
  }

  number(record: Record<string, unknown>, key: string, where: string): number {
    const value = record[key];
    if (typeof value !== 'number' || !Number.isFinite(value))
      this.fail(where, `'${key}' must be a finite number, got ${describe(value)}`);
    return value;
  }

  integer(record: Record<string, unknown>, key: string, where: string): number {
    const value = this.number(record, key, where);
    if (!Number.isInteger(value)) this.fail(where, `'${key}' must be an integer, got ${value}`);
    return value;
  }

  positiveInteger(record: Record<string, unknown>, key: string, where: string): number {
    const value = this.integer(record, key, where);
    if (value <= 0) this.fail(where, `'${key}' must be positive, got ${value}`);
    return value;
  }

  string(record: Record<string, unknown>, key: string, where: string): string {
    const value = record[key];
    if (typeof value !== 'string') this.fail(where, `'${key}' must be a string, got ${describe(value)}`);
    return value;
  }

  integerList(record: Record<string, unknown>, key: string, where: string): number[] | undefined {
    const list = this.optionalArray(record, key, where);
    if (!list) return undefined;
    return list.map((v, i) => {
      if (typeof v !== 'number' || !Number.isInteger(v))
        this.fail(where, `'${key}[${i}]' must be an integer, got ${describe(v)}`);
      return v;
    });
  }
}

export function describe(value: unknown): string {
  if (value === undefined) return 'nothing (missing)';
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'string')
    return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}`;
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}
