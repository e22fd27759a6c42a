import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/engine/gradients-node.js';
import { initEngine, tf } from '../../src/engine/engine.js';
import { sigmoidFocalLoss, sigmoidFocalElementwise } from '../../src/training/losses/focal.js';
import { boxL1Loss, giouLoss } from '../../src/training/losses/box.js';
import { diceLoss, maskBceLoss } from '../../src/training/losses/mask.js';
import { pointSampleTensor, pointSampleMasks } from '../../src/training/losses/point-sampling.js';
import { downsampleMaskArea } from '../../src/training/losses/mask-targets.js';
import { pixelClassLoss, pixelClassTargets } from '../../src/training/losses/pixel-class.js';
import { promptSeparationLoss } from '../../src/training/losses/prompt-separation.js';

before(async () => {
  await initEngine({ backend: 'cpu' });
});

const close = (a: number, b: number, tol = 1e-5) =>
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} vs ${b}`);
const value = (t: tf.Tensor) => {
  const v = t.dataSync()[0]!;
  t.dispose();
  return v;
};

test('sigmoid focal loss by hand', () => {
  // x = 0, t = 1: p = 0.5, ce = ln 2, (1-p_t)^2 = 0.25, alpha_t = 0.25 -> 0.0625 ln 2
  // x = 2, t = 0: p = s(2), ce = softplus(2), (1-p_t)^2 = p^2, alpha_t = 0.75
  const s2 = 1 / (1 + Math.exp(-2));
  const e0 = 0.0625 * Math.log(2);
  const e1 = 0.75 * s2 * s2 * Math.log(1 + Math.exp(2));
  const el = sigmoidFocalElementwise(tf.tensor1d([0, 2]), tf.tensor1d([1, 0]));
  const [a, b] = el.dataSync();
  close(a!, e0);
  close(b!, e1);
  // Summed and divided by the number of boxes (2).
  close(value(sigmoidFocalLoss(tf.tensor1d([0, 2]), tf.tensor1d([1, 0]), 2)), (e0 + e1) / 2);
  // Weights mask out the second element.
  close(value(sigmoidFocalLoss(tf.tensor1d([0, 2]), tf.tensor1d([1, 0]), 1, { weights: tf.tensor1d([1, 0]) })), e0);
  // A large negative logit for a negative is almost free; for a positive, nearly alpha * |x|.
  close(value(sigmoidFocalLoss(tf.tensor1d([-30]), tf.tensor1d([1]), 1)), 0.25 * 30, 1e-4);
});

test('focal loss gradient matches a finite difference', () => {
  const f = (x: tf.Tensor) => sigmoidFocalLoss(x, tf.tensor1d([1, 0, 1]), 1);
  const x = [0.3, -1.2, 2.5];
  const grad = tf.grad(f)(tf.tensor1d(x)).dataSync();
  for (let i = 0; i < 3; i++) {
    const h = 1e-3;
    const up = x.slice();
    const down = x.slice();
    up[i]! += h;
    down[i]! -= h;
    const numeric = (value(f(tf.tensor1d(up))) - value(f(tf.tensor1d(down)))) / (2 * h);
    close(grad[i]!, numeric, 1e-3);
  }
});

test('L1 and GIoU box losses by hand', () => {
  const pred = tf.tensor2d([
    [0.5, 0.5, 0.2, 0.2],
    [0.7, 0.5, 0.2, 0.2],
  ]);
  const target = tf.tensor2d([
    [0.5, 0.5, 0.2, 0.2],
    [0.5, 0.5, 0.4, 0.2],
  ]);
  // L1: 0 + (0.2 + 0.2) = 0.4, over 2 boxes.
  close(value(boxL1Loss(pred, target, 2)), 0.2);
  // Second pair: pred [0.6,0.4,0.8,0.6], target [0.3,0.4,0.7,0.6]: inter 0.1x0.2 = 0.02,
  // union 0.04 + 0.08 - 0.02 = 0.10, IoU 0.2, enclosing [0.3,0.8]x0.2 = 0.10 -> GIoU 0.2.
  // Loss = ((1 - 1) + (1 - 0.2)) / 2.
  close(value(giouLoss(pred, target, 2)), 0.4);
});

test('mask BCE and dice by hand', () => {
  const logits = tf.tensor2d([
    [0, 0, 0, 0],
    [10, -10, 10, -10],
  ]);
  const targets = tf.tensor2d([
    [1, 0, 1, 1],
    [1, 0, 1, 0],
  ]);
  // Row 0: every BCE is ln 2. Row 1: nearly perfect: 4 * softplus(-10) / 4.
  const bce = (Math.log(2) + Math.log(1 + Math.exp(-10))) / 2;
  close(value(maskBceLoss(logits, targets, 2)), bce);
  // Row 0: p = 0.5 everywhere: 1 - (2 * 1.5 + 1) / (2 + 3 + 1) = 1/3. Row 1: p ~ [1,0,1,0]:
  const s = 1 / (1 + Math.exp(-10));
  const dice1 = 1 - (2 * 2 * s + 1) / (2 * s + 2 * (1 - s) + 2 + 1);
  close(value(diceLoss(logits, targets, 2)), (1 / 3 + dice1) / 2);
});

test('point sampling reads bilinear values with zero padding and passes gradients', () => {
  // One 2x2 map; the centre of the map (0.5, 0.5) averages all four pixels.
  const map = tf.tensor2d([[1, 2, 3, 4]]);
  const coords = new Float32Array([0.5, 0.5, 0.25, 0.25, 0, 0]);
  const sampled = pointSampleTensor(map, coords, 1, 2, 2).dataSync();
  close(sampled[0]!, 2.5);
  close(sampled[1]!, 1); // exactly the top-left pixel centre
  close(sampled[2]!, 0.25); // the corner: one quarter of pixel 0, the rest outside
  const g = tf
    .grad((m: tf.Tensor) => tf.sum(pointSampleTensor(m, coords, 1, 2, 2)))(map)
    .dataSync();
  assert.deepEqual(
    Array.from(g).map((v) => Math.round(v * 1e6) / 1e6),
    [1.5, 0.25, 0.25, 0.25],
  );
  const targets = pointSampleMasks([new Uint8Array([1, 0, 0, 0])], 2, 2, coords);
  assert.deepEqual(Array.from(targets), [0.25, 1, 0.25]);
});

test('downsampleMaskArea averages blocks', () => {
  const mask = new Uint8Array([1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1]);
  assert.deepEqual(Array.from(downsampleMaskArea(mask, 4, 4, 2, 2)), [0.75, 0, 0, 1]);
  assert.throws(() => downsampleMaskArea(mask, 4, 4, 3, 3), /not a multiple/);
});

test('prompt separation: each prompt pays for its closest different text, by hand', () => {
  // Vectors (1,0), (2,2), (0,3): cosines ab = bc = 1/sqrt2, ac = 0; margin 0.2. Each of a, b, c
  // has a partner at 1/sqrt2, so the mean is the excess (1/sqrt2 - 0.2)^2 itself.
  const e = tf.tensor2d([
    [1, 0],
    [2, 2],
    [0, 3],
  ]);
  const excess = (Math.SQRT1_2 - 0.2) ** 2;
  close(value(promptSeparationLoss(e, ['a', 'b', 'c'], 0.2)), excess);
  // Vectors (1,0), (1,0.1), (0,1): a-b nearly parallel, c apart (cos 0.0995 < margin).
  const near = Math.cos(Math.atan(0.1));
  const f = tf.tensor2d([
    [1, 0],
    [1, 0.1],
    [0, 1],
  ]);
  close(value(promptSeparationLoss(f, ['a', 'b', 'c'], 0.2)), (2 * (near - 0.2) ** 2) / 3);
  // The same text twice is not a pair: a and b are then both only compared with c (cos 0, 0.0995).
  close(value(promptSeparationLoss(f, ['a', 'a', 'c'], 0.2)), 0);
  // A margin above every cosine: nothing to pay.
  close(value(promptSeparationLoss(e, ['a', 'b', 'c'], 0.75)), 0);
});

test('prompt separation: the gradient pushes a close pair apart, and one text costs nothing', () => {
  const e = tf.variable(
    tf.tensor2d([
      [1, 0.1],
      [1, -0.1],
    ]),
  );
  const { value: loss, grads } = tf.variableGrads(() => promptSeparationLoss(e, ['circle', 'square'], 0), [e]);
  assert.ok(value(loss) > 0.9);
  const g = grads[e.name]!.arraySync() as number[][];
  // Descending the gradient raises the first vector's y and lowers the second's.
  assert.ok(g[0]![1]! < 0 && g[1]![1]! > 0, JSON.stringify(g));
  close(value(promptSeparationLoss(tf.tensor2d([[1, 2]]), ['only'], 0)), 0);
  assert.throws(() => promptSeparationLoss(tf.tensor2d([[1, 2]]), ['a', 'b'], 0), /1 embeddings for 2 texts/);
  e.dispose();
});

test('pixel-class targets: area shares per prompt inside the image, weights as the class loss', () => {
  // A 4x4 canvas on a 2x2 grid; the image is 4 wide and 2 high, so only the top cells count.
  const mask = Uint8Array.from([1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  const image = {
    labels: Int32Array.from([1]),
    boxes: new Float32Array(4),
    masks: [mask],
    promptWeights: null,
    positiveOnlyPrompts: [] as number[],
    width: 4,
    height: 2,
  };
  const t = pixelClassTargets([image], 4, 2, 2, 2);
  assert.deepEqual(Array.from(t.target), [0, 1, 0, 0.25, 0, 0, 0, 0]);
  assert.deepEqual(Array.from(t.weight), [1, 1, 1, 1, 0, 0, 0, 0]);
  close(t.positive, 1.25);
  const federated = pixelClassTargets(
    [{ ...image, promptWeights: Float32Array.from([0, 1]), positiveOnlyPrompts: [1] }],
    4,
    2,
    2,
    2,
  );
  assert.deepEqual(Array.from(federated.weight), [0, 1, 0, 0.25, 0, 0, 0, 0]);
  close(federated.positive, 1 + 0.25 * 0.25);
  // No masks: nothing is trained.
  assert.deepEqual(Array.from(pixelClassTargets([{ ...image, masks: null }], 4, 2, 2, 2).weight), new Array(8).fill(0));

  // Zero logits: p = 0.5, ce = ln 2, (1 - p_t)^2 = 0.25 for any t, alpha_t = 0.75 - 0.5 t.
  // Weighted cells: t = (0, 1) and (0, 0.25) -> alpha sum 0.75 + 0.25 + 0.75 + 0.625 = 2.375.
  const loss = pixelClassLoss(tf.zeros([1, 4, 2]) as tf.Tensor3D, [image], 4, [2, 2], { alpha: 0.25, gamma: 2 });
  close(value(loss), (2.375 * 0.25 * Math.LN2) / 1.25);
  assert.throws(
    () => pixelClassLoss(tf.zeros([1, 3, 2]) as tf.Tensor3D, [image], 4, [2, 2], { alpha: 0.25, gamma: 2 }),
    /do not fit 1 images of 2x2 cells/,
  );
});
