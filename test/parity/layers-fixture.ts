// The layers fixture (../shared/fixtures/ape-reference/layers): its manifest, cases, and the
// network and batch geometry built from it, shared by the TF.js and ONNX Runtime parity tests.
import { readFileSync } from 'node:fs';
import { tf } from '../../src/engine/engine.js';
import { ApeNetwork } from '../../src/modeling/ape-network.js';
import type { ApeConfig } from '../../src/modeling/config.js';
import { levelGeometry, type LevelGeometry } from '../../src/modeling/feature-geometry.js';
import { boxSamplingFrame, pointSamplingFrame } from '../../src/modeling/deformable/ms-deform-attn-module.js';
import { fixtureCases, fixtureDir } from './towers-fixture.js';

export const layersDir = `${fixtureDir}layers/`;

interface LayersManifest {
  modules: Record<
    string,
    {
      constructor: Record<string, unknown>;
      cases: Record<string, { shape: number[] }>;
      suggested_max_abs_tolerance: number;
    }
  >;
  image_size: [number, number];
}
export const layersManifest = JSON.parse(readFileSync(`${layersDir}manifest.json`, 'utf8')) as LayersManifest;
export const layerOptions = (module: string) => layersManifest.modules[module]!.constructor as Record<string, number>;

export function layerTolerance(module: string): number {
  const m = layersManifest.modules[module];
  if (!m) throw new Error(`layers manifest has no module ${module}`);
  return m.suggested_max_abs_tolerance;
}

export const layerCases = fixtureCases(layersDir);
export const layerInts = (name: string) => layerCases.values(name).map((v) => Math.round(v));
export const nhwc = (t: tf.Tensor) => tf.transpose(t, [0, 2, 3, 1]) as tf.Tensor4D;
export const nchw = (t: tf.Tensor) => tf.transpose(t, [0, 3, 1, 2]);

/**
 * ApeNetwork with the fixture's options for everything the checkpoint holds (neck, one encoder
 * and one decoder layer without fusion, proposal and output heads, mask head); the backbone and
 * text tower, which the checkpoint does not hold, are minimal and never run.
 */
export function fixtureNetwork(
  proposalAmbiguous = layerOptions('two_stage_proposals').proposal_ambiguous!,
): ApeNetwork {
  const enc = layerOptions('encoder_layer');
  const dec = layerOptions('decoder_layer');
  const prop = layerOptions('two_stage_proposals');
  const textDim = layersManifest.modules.output_heads!.cases['heads.text']!.shape[2]!;
  const backboneChannels = layerOptions('mask_head').mask_in_channels!;
  const config: ApeConfig = {
    name: 'ape-reference-layers',
    input: {
      size: layersManifest.image_size[0],
      pixelMean: [123.675, 116.28, 103.53],
      pixelStd: [58.395, 57.12, 57.375],
    },
    backbone: {
      vit: {
        imgSize: layersManifest.image_size[0],
        patchSize: 16,
        inChans: 3,
        embedDim: 16,
        depth: 1,
        numHeads: 1,
        mlpHidden: 16,
        qkvBias: true,
        windowSize: 0,
        windowBlockIndexes: [],
        attnSubLn: false,
        mlpSubLn: false,
        rope: false,
        ptHwSeqLen: 16,
        intpFreq: false,
        useAbsPos: false,
        pretrainImgSize: 64,
        pretrainUseClsToken: false,
        layerNormEps: 1e-6,
        dropPathRate: 0,
      },
      // Strides 8, 16, 32 as the fixture's p2, p3, p4 (named p3, p4, p5 here by their strides).
      pyramid: {
        inChannels: 16,
        inStride: 16,
        outChannels: backboneChannels,
        scaleFactors: [2, 1, 0.5],
        topBlock: false,
        layerNormEps: 1e-6,
      },
      stem: null,
    },
    neck: { groups: 32 }, // nn.GroupNorm(num_groups=32, 256)
    transformer: {
      embedDim: enc.embed_dim!,
      numHeads: enc.num_heads!,
      numLevels: enc.num_feature_levels!,
      numPoints: enc.msda_num_points!,
      ffnDim: enc.feedforward_dim!,
      encoderLayers: enc.num_layers!,
      decoderLayers: dec.num_layers!,
      proposals: {
        mode: 'level-nms',
        numQueries: prop.two_stage_num_proposals!,
        preNmsTopk: prop.pre_nms_topk!,
        nmsThreshold: prop.nms_thresh_enc!,
      },
      proposalAmbiguous,
    },
    fusion: null, // vl_layer=None: the fusion block has its own case in the parent fixture
    text: {
      encoder: {
        vocabSize: 16,
        contextLength: 4,
        width: 8,
        heads: 1,
        layers: 1,
        mlpRatio: 1,
        embedDim: textDim,
        layerNormEps: 1e-5,
      },
      tokenizer: { kind: 'word' },
      pooling: 'eot',
      trainable: false,
      batchSize: 1,
    },
    maskHead: { feature: 'p3', encodeLevel: layerOptions('mask_head').mask_encode_level!, groups: 32 }, // GN
    inference: { scoreThreshold: 0, nmsThreshold: 0.7, topK: 10, semanticTemperature: 0.06, semanticBackground: 0.1 },
  };
  const tokenizer = {
    vocabSize: 16,
    contextLength: 4,
    sot: 14,
    eot: 15,
    tokenize: (): number[][] => {
      throw new Error('no prompts in this test');
    },
  };
  return new ApeNetwork(config, tokenizer, 3);
}

/** Batch geometry from the fixture's image padding mask (1 = padding) and its level sizes. */
export function fixtureGeometry(): LevelGeometry {
  const mask = layerCases.tensor('img_mask');
  const [b, h, w] = mask.shape as [number, number, number];
  const m = mask.dataSync();
  const sizes = Array.from({ length: b }, (_, i): [number, number] => {
    let rows = 0;
    let cols = 0;
    for (let y = 0; y < h; y++) if (m[(i * h + y) * w] === 0) rows++;
    for (let x = 0; x < w; x++) if (m[i * h * w + x] === 0) cols++;
    return [rows, cols];
  });
  const flat = layerInts('enc.spatial_shapes');
  const shapes = Array.from({ length: flat.length / 2 }, (_, l): [number, number] => [flat[2 * l]!, flat[2 * l + 1]!]);
  return levelGeometry(shapes, sizes, [h, w]);
}

/** [B, S, 1] 1 = keep from a [B, S] 0/1 padding mask case. */
export const keepFrom = (name: string) => {
  const pad = layerCases.tensor(name);
  return tf.tidy(() => tf.expandDims(tf.sub(1, pad), 2)) as tf.Tensor3D;
};

/** The encoder layer case's inputs: tokens, their position, keep mask and sampling frame (of its reference points). */
export function encoderLayerInputs(numPoints: number) {
  const g = fixtureGeometry();
  const frame = pointSamplingFrame(
    Float32Array.from(layerCases.values('enc.reference_points')),
    g.batch,
    g.total,
    g.shapes,
    numPoints,
  );
  return {
    g,
    query: layerCases.tensor('enc.query') as tf.Tensor3D,
    pos: layerCases.tensor('enc.query_pos') as tf.Tensor3D,
    keep: keepFrom('enc.padding_mask'),
    frame,
  };
}

/**
 * The encoder layer's steps under the fixture's names (detrex's attention and FFN outputs include
 * their residual): attention, first norm, FFN, and the whole layer.
 */
export function encoderLayerSteps(
  net: ApeNetwork,
  x: ReturnType<typeof encoderLayerInputs>,
): Record<string, tf.Tensor> {
  const layer = net.transformer.encoder.layers[0]!;
  const attended = layer.attention.forward({
    query: x.query,
    queryPos: x.pos,
    valueKeep: x.keep,
    frame: x.frame,
    spatialShapes: x.g.shapes,
  });
  const normed = layer.norms[0]!.forward(attended);
  return {
    'enc.attentions.0.out': attended,
    'enc.norms.0.out': normed,
    'enc.ffns.0.out': layer.ffn.forward(normed),
    'enc.output': layer.forward(x.query, x.pos, x.frame, x.g.shapes, x.keep),
  };
}

/** The decoder layer case's inputs: queries, their position, the value and its keep mask, the scaled reference boxes. */
export function decoderLayerInputs() {
  return {
    g: fixtureGeometry(),
    query: layerCases.tensor('dec.query') as tf.Tensor3D,
    pos: layerCases.tensor('dec.query_pos') as tf.Tensor3D,
    value: layerCases.tensor('dec.value') as tf.Tensor3D,
    keep: keepFrom('dec.key_padding_mask'),
    scaled: layerCases.tensor('dec.reference_points_input') as tf.Tensor4D,
  };
}

/** The decoder layer's steps under the fixture's names: self-attention, cross-attention, FFN, three norms, the whole layer. */
export function decoderLayerSteps(
  net: ApeNetwork,
  x: ReturnType<typeof decoderLayerInputs>,
): Record<string, tf.Tensor> {
  const layer = net.transformer.decoder.layers[0]!;
  const frame = boxSamplingFrame(x.scaled, net.config.transformer.numPoints);
  const selfAttended = layer.selfAttention.forward(x.query, x.pos);
  const n0 = layer.norms[0]!.forward(selfAttended) as tf.Tensor3D;
  const crossAttended = layer.crossAttention.forward({
    query: n0,
    queryPos: x.pos,
    value: x.value,
    valueKeep: x.keep,
    frame,
    spatialShapes: x.g.shapes,
  });
  const n1 = layer.norms[1]!.forward(crossAttended);
  const ffn = layer.ffn.forward(n1);
  return {
    'dec.attentions.0.out': selfAttended,
    'dec.norms.0.out': n0,
    'dec.attentions.1.out': crossAttended,
    'dec.norms.1.out': n1,
    'dec.ffns.0.out': ffn,
    'dec.norms.2.out': layer.norms[2]!.forward(ffn),
    'dec.output': layer.forward(x.query, x.pos, x.value, x.keep, frame, x.g.shapes),
  };
}
