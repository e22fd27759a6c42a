import { readCocoInstances } from './readers/coco.js';
import { readJsonFile } from './readers/json-file.js';
import { Fields } from './readers/fields.js';
import { readSegments } from './readers/segments.js';
import { readSemanticFolders, readSemanticIndex } from './readers/semantic.js';
import { TrainingDataset } from './dataset.js';
import type { LossSwitches } from './sampler/loss-switches.js';
import type { CategoryRecord, DatasetKind } from './types.js';
import { required } from '../util/checked.js';

/** Where a dataset's files are and how it trains; paths absolute. */
export interface DatasetSpec {
  name: string;
  type: DatasetKind;
  /** detection / grounding / class-agnostic: the annotation file (COCO JSON; SA-1B file or folder). */
  annotations?: string;
  /** semantic: an index JSON (categories, ignore_label, images with sem_seg_file_name)... */
  semanticIndex?: string;
  /** ...or a label-PNG folder, an image folder (imageRoot) and a COCO-style JSON with `categories`. */
  labelDir?: string;
  categories?: string;
  /** Folder that image file names are relative to (default: the annotation file's folder). */
  imageRoot?: string;
  /** Relative chance of drawing this dataset per iteration. */
  weight: number;
  /** Overrides of the type's default loss switches. */
  losses?: Partial<LossSwitches>;
  /** Train the federated class loss (LVIS-style sets). */
  federated?: boolean;
}

/** Reads a dataset's annotations with the reader its type calls for. */
export function openDataset(spec: DatasetSpec): TrainingDataset {
  switch (spec.type) {
    case 'detection':
    case 'grounding':
      return new TrainingDataset(
        spec.name,
        readCocoInstances(required(spec.annotations, `dataset '${spec.name}': annotations`), {
          imageRoot: spec.imageRoot,
          kind: spec.type,
        }),
      );
    case 'class-agnostic':
      return new TrainingDataset(
        spec.name,
        readSegments(required(spec.annotations, `dataset '${spec.name}': annotations`), { imageRoot: spec.imageRoot }),
      );
    case 'semantic': {
      if (spec.semanticIndex)
        return new TrainingDataset(spec.name, readSemanticIndex(spec.semanticIndex, { imageRoot: spec.imageRoot }));
      return new TrainingDataset(
        spec.name,
        readSemanticFolders({
          imageDir: required(spec.imageRoot, `dataset '${spec.name}': imageRoot`),
          labelDir: required(spec.labelDir, `dataset '${spec.name}': labelDir`),
          categories: readCategories(required(spec.categories, `dataset '${spec.name}': categories`)),
        }),
      );
    }
  }
}

function readCategories(file: string): CategoryRecord[] {
  const f: Fields = new Fields(file);
  const root = f.object(readJsonFile(file), 'top level');
  return f.array(root, 'categories', 'top level').map((raw, i) => {
    const c = f.object(raw, `categories[${i}]`);
    return {
      id: f.integer(c, 'id', `categories[${i}]`),
      name: f.string(c, 'name', `categories[${i}]`),
      isThing: c.isthing === undefined ? true : c.isthing === 1 || c.isthing === true,
    };
  });
}
