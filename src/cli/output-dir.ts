import { mkdir, readdir } from 'node:fs/promises';

/**
 * The folder results go to, never silently overwriting earlier results: `dir` when it is missing
 * or empty (or `overwrite`), else the first free `dir-2`, `dir-3`, ... (as ultralytics does with
 * its runs). Created before returning.
 */
export async function freshOutputDir(dir: string, overwrite: boolean): Promise<string> {
  const used = async (path: string) => (await readdir(path).catch(() => [])).length > 0;
  let chosen = dir;
  if (!overwrite) for (let n = 2; await used(chosen); n++) chosen = `${dir}-${n}`;
  await mkdir(chosen, { recursive: true });
  return chosen;
}
