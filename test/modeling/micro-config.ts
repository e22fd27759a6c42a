// A very small APE (same structure as the presets) so tests run in seconds.
import { swigluHidden } from '../../src/modeling/backbone/eva02-vit.js';
import type { ApeConfig } from '../../src/modeling/config.js';

export function microConfig(overrides: { vocabSize?: number; size?: number; queries?: number } = {}): ApeConfig {
  const size = overrides.size ?? 64;
  return {
    name: 'micro',
    input: { size, pixelMean: [123.675, 116.28, 103.53], pixelStd: [58.395, 57.12, 57.375] },
    backbone: {
      vit: {
        imgSize: size,
        patchSize: 16,
        inChans: 3,
        embedDim: 32,
        depth: 2,
        numHeads: 2,
        mlpHidden: swigluHidden(32),
        qkvBias: true,
        windowSize: 2,
        windowBlockIndexes: [0],
        attnSubLn: true,
        mlpSubLn: true,
        rope: true,
        ptHwSeqLen: 16,
        intpFreq: true,
        useAbsPos: true,
        pretrainImgSize: 64,
        pretrainUseClsToken: true,
        layerNormEps: 1e-6,
        dropPathRate: 0,
      },
      pyramid: {
        inChannels: 32,
        inStride: 16,
        outChannels: 32,
        scaleFactors: [2, 1, 0.5],
        topBlock: false,
        layerNormEps: 1e-6,
      },
    },
    neck: { groups: 8 },
    transformer: {
      embedDim: 32,
      numHeads: 4,
      numLevels: 3,
      numPoints: 2,
      ffnDim: 64,
      encoderLayers: 2,
      decoderLayers: 2,
      proposals: { mode: 'level-nms', numQueries: overrides.queries ?? 12, preNmsTopk: 1000, nmsThreshold: 0.9 },
      proposalAmbiguous: 1,
    },
    fusion: {
      embedDim: 32,
      numHeads: 4,
      dropout: 0,
      initValues: 1 / 6,
      stableSoftmax2d: true,
      clampMinForUnderflow: true,
      clampMaxForOverflow: true,
    },
    text: {
      encoder: {
        vocabSize: overrides.vocabSize ?? 260,
        contextLength: 8,
        width: 32,
        heads: 2,
        layers: 1,
        mlpRatio: 4,
        embedDim: 24,
        layerNormEps: 1e-5,
      },
      tokenizer: { kind: 'word' },
      pooling: 'eot',
      trainable: true,
      batchSize: 256,
    },
    maskHead: { feature: 'p3', encodeLevel: 0, groups: 8 },
    inference: { scoreThreshold: 0, nmsThreshold: 0.7, topK: 20, semanticTemperature: 0.06, semanticBackground: 0.1 },
  };
}
