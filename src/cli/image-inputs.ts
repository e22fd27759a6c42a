import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { UsageError } from './command.js';

/** File endings `ape predict` reads (what the image decoder accepts). */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp'];

const isImageName = (name: string) => IMAGE_EXTENSIONS.includes(extname(name).toLowerCase());
const GLOB = /[*?[]/;

/** `*` and `?` of one path component (no path separators), as a whole-name pattern. */
function globPattern(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

/**
 * The image files the command line names, checked before any work: a folder gives every image in
 * it (sorted by name), a pattern the shell left alone (`"dir/*.png"`, on Windows) is matched in its
 * folder, a file must exist. Every problem is reported at once, naming each input.
 */
export async function expandImageInputs(inputs: readonly string[]): Promise<string[]> {
  const files: string[] = [];
  const problems: string[] = [];
  for (const input of inputs) {
    const info = await stat(input).catch(() => null);
    if (info?.isDirectory()) {
      const names = (await readdir(input)).filter(isImageName).sort();
      if (names.length === 0) problems.push(`${input}: a folder with no images (${IMAGE_EXTENSIONS.join(', ')})`);
      files.push(...names.map((n) => join(input, n)));
    } else if (info) {
      files.push(input);
    } else if (GLOB.test(basename(input)) && !GLOB.test(dirname(input))) {
      const pattern = globPattern(basename(input));
      const names = await readdir(dirname(input)).catch(() => null);
      const matches = (names ?? []).filter((n) => pattern.test(n)).sort();
      if (matches.length === 0) problems.push(`${input}: matches no file`);
      files.push(...matches.map((n) => join(dirname(input), n)));
    } else {
      problems.push(`${input}: no such file or folder`);
    }
  }
  if (problems.length > 0)
    throw new UsageError(
      `${problems.length === 1 ? 'an input cannot be used' : `${problems.length} inputs cannot be used`}:\n  ${problems.join('\n  ')}`,
    );
  return files;
}
