import { writeFile } from 'node:fs/promises';

/** Writes `value` as JSON (indented by `indent` spaces, or on one line without) with a final newline. */
export async function writeJsonFile(path: string, value: unknown, indent?: number): Promise<void> {
  await writeFile(path, `${JSON.stringify(value, null, indent)}\n`);
}
