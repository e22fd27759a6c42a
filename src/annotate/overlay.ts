import { basename, extname, join } from 'node:path';
import type { Prediction } from '../inference/results.js';
import { readImage, writeImage } from '../io/image-node.js';
import { promptEntries } from '../text/prompts.js';
import { drawInstances } from '../viz/overlay-prediction.js';
import type { AnnotateSettings, ImageAnnotations } from './types.js';

export const OVERLAY_DIR = 'overlays';

/** overlays/ID-NAME.png: the COCO image id keeps names unique when two folders hold a.png. */
export function overlayPath(outDir: string, index: number, imagePath: string): string {
  return join(outDir, OVERLAY_DIR, `${index + 1}-${basename(imagePath, extname(imagePath))}.png`);
}

/** Draws an image's annotations (masks, boxes, prompt and score) over it, as `ape predict` does. */
export async function writeOverlay(
  outDir: string,
  index: number,
  imagePath: string,
  result: ImageAnnotations,
  settings: AnnotateSettings,
): Promise<void> {
  const image = await readImage(imagePath);
  const prompts = promptEntries(settings);
  const prediction: Prediction = {
    width: result.width,
    height: result.height,
    prompts,
    instances: result.objects.map((o, query) => {
      const [x, y, w, h] = o.bbox;
      const p = prompts[o.prompt]!;
      return {
        prompt: p.text,
        promptIndex: o.prompt,
        kind: p.kind,
        score: o.score,
        box: [x, y, x + w, y + h],
        mask: o.segmentation,
        query,
      };
    }),
    semantic: null,
    grounding: [],
    warnings: [],
  };
  await writeImage(overlayPath(outDir, index, imagePath), drawInstances(image, prediction, { grounding: false }));
}
