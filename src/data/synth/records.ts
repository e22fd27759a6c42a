import type { GrayImage } from '../../io/image-types.js';
import { encodeRle, rleArea, rleToBbox } from '../../structures/rle.js';
import { compressRle } from '../../structures/rle-string.js';
import type { Rng } from '../../util/random.js';
import { categoryId } from './categories.js';
import {
  SEGMENT_CATEGORY,
  type CocoAnnotation,
  type CocoImage,
  type GroundingAnnotation,
  type InstanceAnnotation,
} from './formats.js';
import { connectedPieces } from './pieces.js';
import type { RefThing } from './referring.js';
import type { Scene } from './scene.js';
import { buildSceneGraph } from './scene-graph.js';
import { generateSentences } from './sentences.js';
import { required } from '../../util/checked.js';

/** Segments (segments.json) smaller than this fraction of the image are left out as specks. */
export const MIN_SEGMENT_FRACTION = 0.001;

/** Next free annotation id in each file; advanced as records are made. */
export interface IdCounters {
  instance: number;
  grounding: number;
  segment: number;
}

/** Everything one scene contributes to the split's files. */
export interface SceneRecords {
  image: CocoImage;
  instances: InstanceAnnotation[];
  grounding: GroundingAnnotation[];
  segments: CocoAnnotation[];
  semantic: GrayImage;
}

function maskRecord(mask: Uint8Array, h: number, w: number): Pick<CocoAnnotation, 'segmentation' | 'area' | 'bbox'> {
  const rle = encodeRle(mask, h, w);
  return { segmentation: compressRle(rle), area: rleArea(rle), bbox: rleToBbox(rle) };
}

/**
 * Annotations of one scene. Things come first in drawing order (back to front), then one stuff
 * annotation per stuff class present (all its visible pieces together, like COCO panoptic
 * stuff). Sentences are drawn with `rng` and grouped by the object they name, one grounding
 * annotation per named object.
 */
export function sceneToRecords(
  scene: Scene,
  imageId: number,
  fileName: string,
  ids: IdCounters,
  rng: Rng,
): SceneRecords {
  const { width: w, height: h } = scene;
  const image: CocoImage = { id: imageId, file_name: fileName, width: w, height: h };
  const instances: InstanceAnnotation[] = [];
  const refThings: RefThing[] = [];
  for (const t of scene.things) {
    const ann: InstanceAnnotation = {
      id: ids.instance++,
      image_id: imageId,
      category_id: categoryId(t.shape),
      ...maskRecord(t.mask, h, w),
      iscrowd: 0,
      attributes: { color: t.color, size: t.size },
    };
    instances.push(ann);
    refThings.push({ id: ann.id, shape: t.shape, color: t.color, size: t.size, bbox: ann.bbox });
  }
  for (const s of scene.stuff) {
    instances.push({
      id: ids.instance++,
      image_id: imageId,
      category_id: categoryId(s.kind),
      ...maskRecord(s.mask, h, w),
      iscrowd: 0,
    });
  }

  const { graph, pieceMasks } = buildSceneGraph(w, h, refThings, scene.stuff);
  const grouped = new Map<string, GroundingAnnotation>();
  const grounding: GroundingAnnotation[] = [];
  for (const s of generateSentences(graph, rng)) {
    const key = s.referent.type === 'thing' ? `t${s.referent.thing.id}` : `s${s.referent.piece.index}`;
    let ann = grouped.get(key);
    if (ann === undefined) {
      if (s.referent.type === 'thing') {
        const thingId = s.referent.thing.id;
        const inst = required(
          instances.find((a) => a.id === thingId),
          `the instance annotation of thing ${thingId}`,
        );
        ann = {
          id: ids.grounding++,
          image_id: imageId,
          category_id: inst.category_id,
          segmentation: inst.segmentation,
          area: inst.area,
          bbox: inst.bbox,
          iscrowd: 0,
          sentences: [],
          instance_id: thingId,
        };
      } else {
        const piece = s.referent.piece;
        ann = {
          id: ids.grounding++,
          image_id: imageId,
          category_id: categoryId(piece.stuff),
          ...maskRecord(pieceMasks[piece.index]!, h, w),
          iscrowd: 0,
          sentences: [],
        };
      }
      grouped.set(key, ann);
      grounding.push(ann);
    }
    ann.sentences.push({ raw: s.raw, sent: s.sent, kind: s.kind });
  }

  const segments: CocoAnnotation[] = [];
  const minSegment = Math.max(1, Math.ceil(MIN_SEGMENT_FRACTION * w * h));
  const segmentMasks = [
    ...scene.things.map((t) => t.mask),
    ...scene.stuff.flatMap((s) =>
      connectedPieces(s.mask, h, w)
        .filter((p) => p.area >= minSegment)
        .map((p) => p.mask),
    ),
  ];
  for (const mask of segmentMasks) {
    segments.push({
      id: ids.segment++,
      image_id: imageId,
      category_id: SEGMENT_CATEGORY.id,
      ...maskRecord(mask, h, w),
      iscrowd: 0,
    });
  }
  return { image, instances, grounding, segments, semantic: { width: w, height: h, data: scene.semantic } };
}
