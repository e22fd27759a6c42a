import type { ApeModel } from '../inference/ape-model.js';
import { predictLeakFree } from '../inference/predict-leak-free.js';
import type { RgbImage } from '../io/image-types.js';
import { rleArea } from '../structures/rle.js';
import { decompressRle } from '../structures/rle-string.js';
import type { AnnotateSettings, FoundObject, ImageAnnotations } from './types.js';

const round = (v: number, digits: number) => {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
};

/**
 * One image's objects: the model's instances above the threshold, each with its box (COCO xywh,
 * 0.01 px), mask (compressed RLE), mask area and score (5 decimals, as `ape predict` writes them).
 */
export async function annotateImage(
  model: ApeModel,
  image: RgbImage,
  settings: AnnotateSettings,
): Promise<ImageAnnotations> {
  const prediction = await predictLeakFree(model, image, {
    vocabulary: settings.vocabulary,
    sentences: settings.sentences,
    threshold: settings.threshold,
    tasks: ['instances'],
  });
  const objects = prediction.instances.map((inst): FoundObject => {
    const [x1, y1, x2, y2] = inst.box;
    const bbox: [number, number, number, number] = [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)];
    const area = inst.mask ? rleArea(decompressRle(inst.mask)) : round((x2 - x1) * (y2 - y1), 2);
    return { prompt: inst.promptIndex, bbox, area, score: round(inst.score, 5), segmentation: inst.mask };
  });
  return { width: image.width, height: image.height, objects };
}
