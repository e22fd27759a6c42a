import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * A short hash of what a model folder computes with (every file but its Markdown notes), so a
 * resumed run, and every queue worker, can be held to the model the run started with.
 */
export async function modelFingerprint(dir: string): Promise<string> {
  const hash = createHash('sha256');
  let names: string[];
  try {
    names = (await readdir(dir, { withFileTypes: true }))
      .filter((e) => e.isFile() && !e.name.endsWith('.md'))
      .map((e) => e.name)
      .sort();
  } catch (error) {
    throw new Error(
      `cannot read the model folder ${dir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  if (names.length === 0) throw new Error(`the model folder ${dir} holds no files`);
  for (const name of names) {
    hash.update(`${name}\0`);
    for await (const chunk of createReadStream(join(dir, name))) hash.update(chunk as Buffer);
    hash.update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}
