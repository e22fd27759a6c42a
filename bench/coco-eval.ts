/**
 * COCO evaluation speed on synthetic COCO-like data: N images of 640x480, 80 categories, ~7
 * polygon objects per image (1 in 20 a crowd), 100 detections per image (jittered copies of the
 * objects plus clutter). Times parse-free evaluateCoco for 'bbox' and 'segm' (mask results as
 * compressed RLE, as result files carry them).
 *
 *   npm run bench -- coco-eval [--images N]
 */
import { evaluateCoco } from '../src/evaluation/coco/evaluate.js';
import type { CocoAnnotation, CocoDataset, CocoResult } from '../src/evaluation/coco/types.js';
import { rleFromPolygon } from '../src/structures/polygon.js';
import { rleArea } from '../src/structures/rle.js';
import { compressRle } from '../src/structures/rle-string.js';
import { Rng } from '../src/util/random.js';

const W = 640;
const H = 480;

function blob(rng: Rng, cx: number, cy: number, r: number): number[] {
  const n = rng.int(8, 16);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const a = (2 * Math.PI * i) / n;
    const rr = r * rng.uniform(0.6, 1);
    out.push(Math.min(Math.max(cx + rr * Math.cos(a), 0), W), Math.min(Math.max(cy + rr * Math.sin(a), 0), H));
  }
  return out;
}

function bboxOf(poly: number[]): [number, number, number, number] {
  const xs = poly.filter((_, i) => i % 2 === 0);
  const ys = poly.filter((_, i) => i % 2 === 1);
  const x0 = Math.min(...xs);
  const y0 = Math.min(...ys);
  return [x0, y0, Math.max(...xs) - x0, Math.max(...ys) - y0];
}

export function synthesize(images: number, rng: Rng): { gt: CocoDataset; results: CocoResult[] } {
  const gt: CocoDataset = {
    images: Array.from({ length: images }, (_, i) => ({ id: i + 1, width: W, height: H })),
    categories: Array.from({ length: 80 }, (_, i) => ({ id: i + 1, name: `c${i + 1}` })),
    annotations: [],
  };
  const results: CocoResult[] = [];
  for (let img = 1; img <= images; img++) {
    const objects: CocoAnnotation[] = [];
    for (let j = rng.int(2, 12); j > 0; j--) {
      const r = Math.exp(rng.uniform(Math.log(4), Math.log(150)));
      const poly = blob(rng, rng.uniform(0, W), rng.uniform(0, H), r);
      const ann: CocoAnnotation = {
        id: gt.annotations.length + 1,
        image_id: img,
        category_id: rng.int(1, 80),
        iscrowd: rng.next() < 0.05 ? 1 : 0,
        bbox: bboxOf(poly),
        segmentation: [poly],
      };
      ann.area = rleArea(rleFromPolygon([poly], H, W));
      objects.push(ann);
      gt.annotations.push(ann);
    }
    for (let d = 0; d < 100; d++) {
      const source = d < objects.length * 3 ? objects[d % objects.length] : undefined;
      let poly: number[];
      if (source) {
        const [x, y, w, h] = source.bbox!;
        const s = 0.15 * Math.max(w, h);
        poly = blob(rng, x + w / 2 + rng.normal() * s, y + h / 2 + rng.normal() * s, Math.max(w, h) / 2);
      } else {
        poly = blob(rng, rng.uniform(0, W), rng.uniform(0, H), rng.uniform(3, 60));
      }
      results.push({
        image_id: img,
        category_id: source && rng.next() < 0.8 ? source.category_id : rng.int(1, 80),
        score: rng.next(),
        bbox: bboxOf(poly),
        segmentation: compressRle(rleFromPolygon([poly], H, W)),
      });
    }
  }
  return { gt, results };
}

export async function run(argv: string[]) {
  const at = argv.indexOf('--images');
  const images = at >= 0 ? Number(argv[at + 1]) : 1000;
  const t = performance.now();
  const { gt, results } = synthesize(images, new Rng(1));
  const synthMs = performance.now() - t;
  const boxResults = results.map(({ segmentation: _, ...r }) => r);
  const maskResults = results.map(({ bbox: _, ...r }) => r);
  // CPU time alongside wall time: the machine is shared, and CPU time is what the evaluator costs.
  const timed = <T>(f: () => T): [T, number, number] => {
    const c = process.cpuUsage();
    const w = performance.now();
    const out = f();
    const used = process.cpuUsage(c);
    return [out, (performance.now() - w) / 1000, (used.user + used.system) / 1e6];
  };
  const [bbox, bboxWall, bboxCpu] = timed(() => evaluateCoco(gt, boxResults, 'bbox'));
  const [segm, segmWall, segmCpu] = timed(() => evaluateCoco(gt, maskResults, 'segm'));
  console.log(
    `${images} images, ${gt.annotations.length} objects, ${results.length} detections (synthesised in ${(synthMs / 1000).toFixed(1)} s)`,
  );
  console.log(`bbox: ${bboxWall.toFixed(2)} s wall, ${bboxCpu.toFixed(2)} s CPU  AP ${bbox.stats[0]!.toFixed(3)}`);
  console.log(`segm: ${segmWall.toFixed(2)} s wall, ${segmCpu.toFixed(2)} s CPU  AP ${segm.stats[0]!.toFixed(3)}`);
  return {
    results: {
      images,
      objects: gt.annotations.length,
      detections: results.length,
      bboxWallSeconds: bboxWall,
      bboxCpuSeconds: bboxCpu,
      segmWallSeconds: segmWall,
      segmCpuSeconds: segmCpu,
      bboxAP: bbox.stats[0],
      segmAP: segm.stats[0],
    },
  };
}
