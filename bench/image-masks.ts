/**
 * `npm run bench -- image-masks`: image decode/encode, label-map PNG reading, and the bitmap-mask
 * operations used in post-processing and evaluation. Median of repeated runs, milliseconds.
 */
import { decodeImage, encodeJpeg, encodePng, readGrayPng } from '../src/io/image-node.js';
import { readSafetensors, writeSafetensors } from '../src/io/safetensors.js';
import { pasteMask, resizeMask } from '../src/structures/bitmap.js';
import { fillHoles, labelComponents } from '../src/structures/components.js';
import { SemanticEvaluator } from '../src/evaluation/semantic.js';

async function median(f: () => unknown, runs: number): Promise<number> {
  await f();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await f();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return Number(times[Math.floor(runs / 2)]!.toFixed(2));
}

export async function run(): Promise<{ results: Record<string, number> }> {
  const W = 1024;
  const H = 768;
  // A smooth photo-like image (gradients), so codecs see realistic content.
  const rgb = new Uint8Array(W * H * 3);
  for (let i = 0; i < W * H; i++) rgb.set([(i % W) >> 2, i / W / 3, ((i % W) + i / W) >> 3], i * 3);
  const image = { width: W, height: H, data: rgb };
  const jpeg = await encodeJpeg(image);
  const png = await encodePng(image);
  const label = { width: 2048, height: 1024, data: new Uint8Array(2048 * 1024) };
  for (let i = 0; i < label.data.length; i++) label.data[i] = (((i % 2048) >> 7) + ((i / 2048) >> 7)) % 19;
  const labelPng = await encodePng(label);
  const checker = new Uint8Array(W * H);
  for (let i = 0; i < W * H; i++) checker[i] = (((i % W) >> 5) + ((i / W) >> 5)) % 2;
  const boxMask = new Float32Array(28 * 28).fill(0.7);
  const weights = new Float32Array(16 * 1024 * 1024);
  const safetensors = writeSafetensors({ w: { dtype: 'F32', shape: [weights.length], data: weights } });
  const evaluator = new SemanticEvaluator({ numClasses: 19 });

  const results: Record<string, number> = {
    decode_jpeg_1024x768_ms: await median(() => decodeImage(jpeg), 9),
    decode_png_1024x768_ms: await median(() => decodeImage(png), 9),
    encode_png_1024x768_ms: await median(() => encodePng(image), 5),
    read_label_png_2048x1024_ms: await median(() => readGrayPng(labelPng), 9),
    label_components_1024x768_checkerboard_ms: await median(() => labelComponents(checker, H, W), 9),
    fill_holes_1024x768_ms: await median(() => fillHoles(checker, H, W), 9),
    paste_mask_28x28_to_400x300_box_ms: await median(() => pasteMask(boxMask, 28, 28, [100, 100, 500, 400], H, W), 21),
    resize_mask_bilinear_256_to_1024_ms: await median(
      () => resizeMask(new Float32Array(256 * 256), 256, 256, 1024, 1024, 'bilinear'),
      9,
    ),
    semantic_add_2048x1024_ms: await median(() => evaluator.add(label.data, label.data), 9),
    safetensors_read_64MiB_ms: await median(() => readSafetensors(safetensors), 5),
  };
  for (const [k, v] of Object.entries(results)) console.log(`${k.padEnd(44)} ${v}`);
  return { results };
}
