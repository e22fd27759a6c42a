import { tf } from '../../engine/engine.js';
import type { Rng } from '../../util/random.js';
import { Detectron2ConvNorm } from '../../nn/conv-norm.js';
import { c2XavierInit } from '../../nn/conv2d.js';
import { Mlp } from '../../nn/mlp.js';

/**
 * APE's per-pixel mask embedding (maskdino_mask_features) and per-query mask logits: a backbone
 * level through lateral_conv (1x1 + GN), plus the encoder memory of one level (bilinearly resized
 * when sizes differ), output_conv (3x3 + GN + ReLU), mask_conv (1x1); masks = mask_embed(q) . pixels.
 * The modules are registered on the model root by the caller, as in the released state dict.
 */
export class MaskHeadModules {
  readonly lateralConv: Detectron2ConvNorm;
  readonly outputConv: Detectron2ConvNorm;
  readonly maskConv: Detectron2ConvNorm;
  readonly maskEmbed: Mlp;

  constructor(inChannels: number, hidden: number, groups: number, rng: Rng) {
    const xavier = c2XavierInit();
    this.lateralConv = new Detectron2ConvNorm(inChannels, hidden, 1, rng, { bias: false, groups, weightInit: xavier });
    this.outputConv = new Detectron2ConvNorm(hidden, hidden, 3, rng, {
      bias: false,
      groups,
      relu: true,
      weightInit: xavier,
    });
    this.maskConv = new Detectron2ConvNorm(hidden, hidden, 1, rng, { bias: false, groups: null, weightInit: xavier });
    this.maskEmbed = new Mlp(hidden, hidden, hidden, 3, rng);
  }

  /** backboneFeature [B, h, w, Cin]; memoryLevel [B, h', w', E] -> pixel embeddings [B, h, w, E]. */
  pixelEmbedding(backboneFeature: tf.Tensor4D, memoryLevel: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let x = this.lateralConv.forward(backboneFeature);
      const [, h, w] = x.shape;
      const m =
        memoryLevel.shape[1] === h && memoryLevel.shape[2] === w
          ? memoryLevel
          : tf.image.resizeBilinear(memoryLevel, [h, w], false, true);
      x = tf.add(x, m) as tf.Tensor4D;
      return this.maskConv.forward(this.outputConv.forward(x));
    });
  }

  /** queries [B, Q, E], pixels [B, h, w, E] -> mask logits [B, Q, h, w]. */
  maskLogits(queries: tf.Tensor3D, pixels: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [b, q, e] = queries.shape;
      const [, h, w] = pixels.shape;
      const embed = this.maskEmbed.forward(queries);
      const flat = tf.reshape(pixels, [b, h * w, e]);
      const logits =
        b === 1
          ? tf.matMul(tf.reshape(embed, [q, e]), tf.reshape(flat, [h * w, e]), false, true)
          : tf.matMul(embed as tf.Tensor3D, flat, false, true);
      return tf.reshape(logits, [b, q, h, w]) as tf.Tensor4D;
    });
  }
}
