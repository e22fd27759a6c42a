import { existsSync, renameSync, rmSync } from 'node:fs';
import { Progress } from '../../util/progress.js';
import { writeSynthDataset } from './write-dataset.js';

/** A synthetic-world folder to have on disk: `ape data synth --out OUT --images N --seed S --size Z`. */
export interface SynthFolderSpec {
  out: string;
  images: number;
  seed: number;
  size: number;
}

/**
 * Generates the folders of `specs` that do not exist yet. Each is written under a temporary name
 * and renamed when complete, so an interrupted generation is redone rather than half used.
 */
export async function writeMissingSynthFolders(
  specs: readonly SynthFolderSpec[],
  log: (line: string) => void,
): Promise<void> {
  for (const s of specs) {
    if (existsSync(s.out)) continue;
    const temp = `${s.out}.partial`;
    rmSync(temp, { recursive: true, force: true });
    log(`generating ${s.images} synthetic images (seed ${s.seed}) into ${s.out}`);
    const progress = new Progress({ total: s.images, label: 'synth', unit: 'img', plainEverySeconds: 30 });
    await writeSynthDataset(temp, { images: s.images, seed: s.seed, size: s.size, onImage: () => progress.tick() });
    progress.finish();
    renameSync(temp, s.out);
  }
}
