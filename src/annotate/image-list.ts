import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/** File endings of the images a folder is searched for (what the image reader decodes). */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp'];

/** A list file holds paths, not images: this bounds how much of one is read. */
const MAX_LIST_BYTES = 256 * 1024 * 1024;

function isImageName(name: string): boolean {
  const lower = name.toLowerCase();
  return IMAGE_EXTENSIONS.some((e) => lower.endsWith(e)) && !name.startsWith('.');
}

/** Every image under `dir` (sub-folders included), absolute paths in a fixed (sorted) order. */
function imagesInFolder(dir: string): string[] {
  const out: string[] = [];
  const walk = (folder: string) => {
    for (const entry of readdirSync(folder, { withFileTypes: true }).sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
    )) {
      if (entry.name.startsWith('.')) continue;
      const path = join(folder, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile() && isImageName(entry.name)) out.push(path);
    }
  };
  walk(dir);
  return out;
}

/**
 * A list file: one image path per line, relative to the list's folder unless absolute; blank
 * lines and lines starting with # are skipped. Listed files are taken as they are (a missing or
 * unreadable one becomes an error of that image, not of the run).
 */
function imagesInList(file: string): string[] {
  const size = statSync(file).size;
  if (size > MAX_LIST_BYTES)
    throw new Error(`${file}: ${size} bytes, more than the ${MAX_LIST_BYTES} a list of images may have`);
  const base = dirname(resolve(file));
  return readFileSync(file, 'utf8')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith('#'))
    .map((line) => resolve(base, line));
}

/** The images an `ape annotate` input names: a folder (searched recursively) or a list file. */
export function listImages(input: string): string[] {
  let isDir: boolean;
  try {
    isDir = statSync(input).isDirectory();
  } catch (error) {
    throw new Error(`cannot read ${input}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const images = isDir ? imagesInFolder(resolve(input)) : imagesInList(input);
  const seen = new Set<string>();
  for (const p of images) {
    if (seen.has(p)) throw new Error(`${input}: ${p} is listed twice`);
    seen.add(p);
  }
  if (images.length === 0)
    throw new Error(
      `${input}: no images (${isDir ? `no ${IMAGE_EXTENSIONS.join(', ')} files in the folder` : 'the list is empty'})`,
    );
  return images;
}
