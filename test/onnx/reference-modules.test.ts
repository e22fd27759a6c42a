// Every module of the APE reference fixtures (../shared/fixtures/ape-reference and its layers/),
// exported on its own by the network's exporter (exportModule: the same recorder, op mapping and
// layer-norm fusion) and run on ONNX Runtime: each output within 1e-4 relative of the TF.js
// forward of the same module, and within the fixture's suggested tolerance of APE's own output.
// The position embedding has no graph of its own: it is host arithmetic (sine tables and padding
// masks) that enters graphs as constants; the transformer-input case checks it on ONNX Runtime.
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/engine.js';
import { msDeformAttn } from '../../src/engine/ms-deform-attn.js';
import { exportModule } from '../../src/onnx/export-module.js';
import { OrtModule, type OrtModuleHostStep } from '../../src/onnx/ort-module.js';
import { Eva02Vit } from '../../src/modeling/backbone/eva02-vit.js';
import { SimpleFeaturePyramid } from '../../src/modeling/backbone/simple-feature-pyramid.js';
import { ClipTextEncoder, textTokenBatch } from '../../src/text/clip-text-transformer.js';
import { loadReleasedWeights } from '../../src/convert/released-mapping.js';
import type { ApeNetwork } from '../../src/modeling/ape-network.js';
import type { Module } from '../../src/nn/module.js';
import { boxSamplingFrame, pointSamplingFrame } from '../../src/modeling/deformable/ms-deform-attn-module.js';
import { proposalAnchors } from '../../src/modeling/feature-geometry.js';
import { proposalPositionEmbedding } from '../../src/modeling/position-encoding.js';
import { selectQueries } from '../../src/modeling/proposals.js';
import { inverseSigmoid } from '../../src/nn/ops.js';
import { Rng } from '../../src/util/random.js';
import {
  convertFixtureCheckpoint,
  deviation,
  fixtureAlign,
  fixtureCases,
  fixtureCheckpoint,
  fixtureFusion,
  fixtureMsda,
  fixturePyramidConfig,
  fixtureTextConfig,
  fixtureVitConfig,
  tolerance,
} from '../parity/towers-fixture.js';
import {
  decoderLayerInputs,
  decoderLayerSteps,
  encoderLayerInputs,
  encoderLayerSteps,
  fixtureGeometry,
  fixtureNetwork,
  layerCases,
  layerInts,
  layersDir,
  layerTolerance,
  nchw,
  nhwc,
} from '../parity/layers-fixture.js';
import { relativeError } from './relative-error.js';

await initEngine({ backend: 'wasm' });
const cases = fixtureCases();

/** The weights of several modules under one name each (`prefix` + the module's parameter name). */
function weightsOf(...modules: [string, Module][]): Map<string, tf.Tensor> {
  return new Map(
    modules.flatMap(([prefix, m]) => [...m.namedParameters()].map(([name, v]) => [`${prefix}${name}`, v] as const)),
  );
}

interface ModuleCase<K extends string> {
  /** Graph inputs, made before the call. */
  inputs: Record<string, tf.Tensor>;
  weights: ReadonlyMap<string, tf.Tensor>;
  /** The module's forward; each output is named by the fixture tensor it reproduces. */
  run: () => Record<K, tf.Tensor>;
  reference: (name: K) => tf.Tensor;
  tolerance: number;
  hostSteps?: Record<string, OrtModuleHostStep>;
}

/**
 * Exports the case, runs it on ONNX Runtime and compares every output with the recorded TF.js
 * call (1e-4 relative) and with APE's reference (the tolerance, absolute); reports each as a
 * test diagnostic and fails after all comparisons when any is over.
 */
async function checkOnOrt<K extends string>(t: TestContext, c: ModuleCase<K>): Promise<{ segments: number }> {
  const exported = exportModule(c.run, c.inputs, c.weights);
  // Every input reaches the graph as an input (none was frozen into a constant).
  const graphInputs = new Set(exported.graph.segments.flatMap((s) => s.inputs.map((i) => i.name)));
  assert.deepEqual(
    Object.keys(c.inputs).filter((name) => !graphInputs.has(name)),
    [],
  );
  const module = await OrtModule.create(exported, { threads: 1 });
  const failures: string[] = [];
  try {
    const feeds = Object.fromEntries(
      Object.entries(c.inputs).map(([name, x]) => [name, x.dataSync() as Float32Array | Int32Array]),
    );
    const got = await module.run(feeds, c.hostSteps);
    for (const name of Object.keys(exported.outputs) as K[]) {
      const ours = got[name];
      const tfjs = exported.tfjs[name];
      assert.deepEqual(ours.dims, tfjs.shape, `${name}: shape`);
      const rel = relativeError(ours.data, tfjs.dataSync());
      const compared = [tf.tensor(ours.data as Float32Array, ours.dims), c.reference(name)] as const;
      const ape = deviation(...compared);
      tf.dispose([...compared]);
      const line = `${name}: ORT vs TF.js ${rel.toExponential(2)} relative; ORT vs APE max abs ${ape.maxAbs.toExponential(2)} (tolerance ${c.tolerance})`;
      t.diagnostic(line);
      if (!(rel <= 1e-4) || !(ape.maxAbs <= c.tolerance) || ape.nonFiniteMismatches > 0)
        failures.push(
          `${line}${ape.nonFiniteMismatches ? `, ${ape.nonFiniteMismatches} non-finite entries differ` : ''}`,
        );
    }
  } finally {
    await module.release();
    tf.dispose(Object.values(exported.tfjs));
  }
  assert.deepEqual(failures, []);
  return { segments: exported.graph.segments.length };
}

/** A case of the parent fixture: its outputs' references and the module's tolerance from its manifest. */
const towerCase = <K extends string>(module: string, c: Omit<ModuleCase<K>, 'reference' | 'tolerance'>) => ({
  ...c,
  reference: (name: K) => cases.tensor(name),
  tolerance: tolerance(module),
});

test('vit on ONNX Runtime: patch_embed, pos_embed_resized, block_in, block_out.0-3, last_feat', async (t) => {
  const prefix = 'model_vision.backbone.net.';
  const vit = new Eva02Vit(fixtureVitConfig(), new Rng(1));
  loadReleasedWeights(vit, await fixtureCheckpoint(prefix), { prefix });
  const image = cases.tensor('vit.input');
  await checkOnOrt(
    t,
    towerCase('vit', {
      inputs: { image },
      weights: vit.namedParameters(),
      run: () => {
        const taps = new Map<string, tf.Tensor>();
        const last = nchw(vit.forward(nhwc(image), { intermediates: taps }));
        return {
          ...Object.fromEntries([...taps].map(([name, x]) => [`vit.${name}`, x])),
          'vit.last_feat': last,
        };
      },
    }),
  );
  vit.dispose();
});

test('simple feature pyramid on ONNX Runtime: p2..p6 from the image (ViT and pyramid in one graph)', async (t) => {
  const weights = await fixtureCheckpoint('model_vision.backbone.');
  const vit = new Eva02Vit(fixtureVitConfig(), new Rng(1));
  loadReleasedWeights(vit, weights, { prefix: 'model_vision.backbone.net.' });
  const pyramid = new SimpleFeaturePyramid(fixturePyramidConfig(), new Rng(2));
  loadReleasedWeights(pyramid, weights, { prefix: 'model_vision.backbone.' });
  const image = cases.tensor('vit.input');
  await checkOnOrt(
    t,
    towerCase('simple_feature_pyramid', {
      inputs: { image },
      weights: weightsOf(['net.', vit], ['', pyramid]),
      run: () =>
        Object.fromEntries(
          Object.entries(pyramid.forward(vit.forward(nhwc(image)))).map(([level, x]) => [
            `vit.output.${level}`,
            nchw(x),
          ]),
        ),
    }),
  );
  vit.dispose();
  pyramid.dispose();
});

test('text tower on ONNX Runtime: token ids and pooling weights as graph inputs -> output, last_hidden_state, resblock_out.0-1', async (t) => {
  const prefix = 'model_vision.model_language.net.';
  const encoder = new ClipTextEncoder(fixtureTextConfig(), new Rng(1));
  loadReleasedWeights(encoder, await fixtureCheckpoint(prefix), { prefix });
  const flat = cases.values('text.input_ids');
  const ids = Array.from({ length: 6 }, (_, i) => flat.slice(i * 77, (i + 1) * 77));
  const batch = textTokenBatch(ids, encoder.config, { pooling: 'eot', length: 77 });
  const tokens = tf.tensor1d(batch.ids, 'int32');
  const pooling = tf.tensor3d(batch.poolWeights, [ids.length, batch.length, 1]);
  await checkOnOrt(
    t,
    towerCase('text', {
      inputs: { tokens, pooling },
      weights: encoder.namedParameters(),
      run: () => {
        const taps = new Map<string, tf.Tensor>();
        const [embeddings, lastHiddenState] = encoder.encodeTokens(tokens, pooling, {
          returnHidden: true,
          intermediates: taps,
        });
        return {
          'text.output': embeddings,
          'text.last_hidden_state': lastHiddenState!,
          ...Object.fromEntries([...taps].map(([name, x]) => [`text.${name}`, x])),
        };
      },
    }),
  );
  encoder.dispose();
});

test('fusion on ONNX Runtime: sentence tokens and the zero (vocabulary) token, both sides', async (t) => {
  const m = fixtureFusion();
  const prefix = 'model_vision.transformer.encoder.vl_layers.0.';
  loadReleasedWeights(m, await fixtureCheckpoint(prefix), { prefix });
  for (const name of ['fusion', 'fusion_zero']) {
    const v = cases.tensor(`${name}.v_in`) as tf.Tensor3D;
    const l = cases.tensor(`${name}.l_in`) as tf.Tensor3D;
    await checkOnOrt(
      t,
      towerCase('fusion', {
        inputs: { v, l },
        weights: m.namedParameters(),
        run: () => {
          const out = m.forward(v, l);
          return { [`${name}.v_out`]: out.v, [`${name}.l_out`]: out.l! };
        },
      }),
    );
  }
  m.dispose();
});

test('align on ONNX Runtime: region-prompt logits, an all-zero prompt row included', async (t) => {
  const m = await fixtureAlign();
  const queries = cases.tensor('align.queries') as tf.Tensor3D;
  const text = cases.tensor('align.text') as tf.Tensor3D;
  await checkOnOrt(
    t,
    towerCase('align', {
      inputs: { queries, text },
      weights: m.namedParameters(),
      run: () => ({ 'align.logits': m.forward(queries, text) }),
    }),
  );
  m.dispose();
});

/** A spatial-shapes case ([L, 2] int) as [h, w] pairs. */
function shapesOf(name: string): [number, number][] {
  const flat = cases.values(name);
  return Array.from({ length: flat.length / 2 }, (_, l) => [flat[2 * l]!, flat[2 * l + 1]!]);
}

test('msda core on ONNX Runtime: the deformable sampling kernel as GridSample, points off the maps included', async (t) => {
  const value = cases.tensor('msda.value') as tf.Tensor4D;
  const loc = cases.tensor('msda.sampling_locations');
  const weights = cases.tensor('msda.attention_weights');
  const shapes = shapesOf('msda.spatial_shapes');
  await checkOnOrt(
    t,
    towerCase('msda_core', {
      inputs: { value, loc, weights },
      weights: new Map(),
      run: () => ({ 'msda.output': msDeformAttn(value, shapes, loc, weights) }),
    }),
  );
});

test('msda module on ONNX Runtime: encoder call (2-d points, padding mask) and decoder call (boxes, separate value)', async (t) => {
  const m = await fixtureMsda();
  const encShapes = shapesOf('msda_enc.spatial_shapes');
  const query = cases.tensor('msda_enc.query') as tf.Tensor3D;
  const [b, lq] = query.shape;
  // The encoder's reference points are host geometry: its frame is made before the call.
  const frame = pointSamplingFrame(Float32Array.from(cases.values('msda_enc.reference_points')), b, lq, encShapes, 4);
  const encInputs = {
    query,
    queryPos: cases.tensor('msda_enc.query_pos') as tf.Tensor3D,
    valueKeep: tf.tensor3d(
      cases.values('msda_enc.key_padding_mask').map((v) => 1 - v),
      [b, lq, 1],
    ),
  };
  await checkOnOrt(
    t,
    towerCase('msda_module', {
      inputs: { ...encInputs, frameBase: frame.base, frameScale: frame.scale },
      weights: m.namedParameters(),
      run: () => ({ 'msda_enc.output': m.forward({ ...encInputs, frame, spatialShapes: encShapes }) }),
    }),
  );

  const decQuery = cases.tensor('msda_dec.query') as tf.Tensor3D;
  const value = cases.tensor('msda_dec.value') as tf.Tensor3D;
  const decInputs = {
    query: decQuery,
    queryPos: cases.tensor('msda_dec.query_pos') as tf.Tensor3D,
    value,
    valueKeep: tf.tensor3d(
      cases.values('msda_dec.key_padding_mask').map((v) => 1 - v),
      [b, value.shape[1], 1],
    ),
  };
  const reference = tf.tensor4d(cases.values('msda_dec.reference_points'), [b, decQuery.shape[1], 3, 4]);
  await checkOnOrt(
    t,
    towerCase('msda_module', {
      inputs: { ...decInputs, reference },
      weights: m.namedParameters(),
      run: () => ({
        'msda_dec.output': m.forward({
          ...decInputs,
          frame: boxSamplingFrame(reference, 4),
          spatialShapes: shapesOf('msda_dec.spatial_shapes'),
        }),
      }),
    }),
  );
  m.dispose();
});

let net: ApeNetwork;

before(async () => {
  net = fixtureNetwork();
  await convertFixtureCheckpoint(net, layersDir);
});

after(() => net.dispose());

const layerCase = <K extends string>(
  module: string,
  c: Omit<ModuleCase<K>, 'weights' | 'reference' | 'tolerance'>,
) => ({
  ...c,
  weights: net.namedParameters(),
  reference: (name: K) => layerCases.tensor(name),
  tolerance: layerTolerance(module),
});

test('neck on ONNX Runtime: 1x1 conv + GroupNorm per level', async (t) => {
  const inputs = {
    p2: layerCases.tensor('neck.in.p2'),
    p3: layerCases.tensor('neck.in.p3'),
    p4: layerCases.tensor('neck.in.p4'),
  };
  await checkOnOrt(
    t,
    layerCase('neck', {
      inputs,
      run: () =>
        Object.fromEntries(
          Object.values(inputs).map((x, i) => [`neck.out.${i}`, nchw(net.neck!.convs[i]!.forward(nhwc(x)))]),
        ),
    }),
  );
});

test('transformer input on ONNX Runtime: flattened tokens, sine position embedding plus level embeddings', async (t) => {
  const g = fixtureGeometry();
  const levels = [0, 1, 2].map((l) => layerCases.tensor(`neck.out.${l}`));
  await checkOnOrt(
    t,
    layerCase('transformer_input_prep', {
      inputs: Object.fromEntries(levels.map((x, l) => [`level${l}`, x])),
      run: () => {
        const { source, pos } = net.transformer.encoderInput(levels.map(nhwc), g);
        return { 'enc.query': source, 'enc.query_pos': pos, 'level_embeds_added.query_pos': pos };
      },
    }),
  );
});

test('encoder layer on ONNX Runtime: deformable self-attention, norm, FFN, norm', async (t) => {
  const inputs = encoderLayerInputs(net.config.transformer.numPoints);
  const { query, pos, keep, frame } = inputs;
  await checkOnOrt(
    t,
    layerCase('encoder_layer', {
      inputs: { query, pos, keep, frameBase: frame.base, frameScale: frame.scale },
      run: () => encoderLayerSteps(net, inputs),
    }),
  );
});

test('two-stage proposals on ONNX Runtime: proposal heads, the host selection between two segments, query initialisation', async (t) => {
  const g = fixtureGeometry();
  const tr = net.transformer;
  const memory = layerCases.tensor('enc.output') as tf.Tensor3D;
  const levelIds = proposalAnchors(g).levelIds;
  let picks: number[] = [];
  const { segments } = await checkOnOrt(
    t,
    layerCase('two_stage_proposals', {
      inputs: { memory },
      run: () => {
        const p = tr.encoderProposals(memory, g, { bboxEmbed: net.bboxEmbed, proposalClass: net.proposalClass });
        const q = tr.decoderQueries(p.outputMemory, p.logits, p.coordsUnact, p.anchors, g);
        const e = tr.config.embedDim;
        return {
          'prop.output_memory': p.outputMemory,
          'prop.enc_outputs_class': p.logits,
          'prop.enc_outputs_coord_unact': p.coordsUnact,
          'prop.topk_coords_unact': q.topCoords,
          'prop.reference_points': q.reference,
          'prop.pos_trans_out': tr.posTransNorm.forward(
            tr.posTrans.forward(proposalPositionEmbedding(q.topCoords, e / 2)),
          ),
          'prop.query_pos': q.queryPos,
          'prop.query': q.query,
        };
      },
      // The selection on ONNX Runtime's logits and boxes, by the code the network runs between its segments.
      hostSteps: {
        query_index: ([logits, boxes]) => {
          const s = selectQueries(logits!, boxes!, levelIds, g.batch, g.shapes.length, tr.config.proposals);
          picks = s.selected.flatMap((x) => Array.from(x));
          return s.flatIndex;
        },
      },
    }),
  );
  assert.equal(segments, 2);
  assert.deepEqual(picks, layerInts('prop.topk_indices'));
});

test('decoder layer on ONNX Runtime: self-attention, deformable cross-attention, FFN, three norms, box refinement', async (t) => {
  const inputs = decoderLayerInputs();
  const { g, query, pos, value, keep, scaled } = inputs;
  const reference = layerCases.tensor('prop.reference_points') as tf.Tensor3D;
  await checkOnOrt(
    t,
    layerCase('decoder_layer', {
      inputs: { query, pos, value, keep, scaled, reference },
      run: () => {
        const decoded = net.transformer.decoder.forward(
          query,
          pos,
          value,
          keep,
          reference,
          Float32Array.from(layerCases.values('enc.valid_ratios')),
          g.shapes,
          net.bboxEmbed,
        );
        return {
          ...decoderLayerSteps(net, inputs),
          'dec.inter_states': tf.stack(decoded.hidden),
          'dec.new_reference_points': tf.stack(decoded.boxes),
        };
      },
    }),
  );
});

test('output heads on ONNX Runtime: region-prompt logits and refined boxes', async (t) => {
  const states = layerCases.tensor('dec.inter_states');
  const text = layerCases.tensor('heads.text') as tf.Tensor3D;
  const reference = layerCases.tensor('prop.reference_points');
  await checkOnOrt(
    t,
    layerCase('output_heads', {
      inputs: { states, text, reference },
      run: () => {
        const hidden = tf.squeeze(states, [0]) as tf.Tensor3D;
        return {
          'heads.logits': net.classEmbed[0]!.forward(hidden, text),
          'heads.coord': tf.sigmoid(tf.add(net.bboxEmbed[0]!.forward(hidden), inverseSigmoid(reference))),
        };
      },
    }),
  );
});

test('mask head on ONNX Runtime: pixel embedding from backbone p2 and encoder level 0, query embeddings, mask logits', async (t) => {
  const g = fixtureGeometry();
  const memory = layerCases.tensor('enc.output');
  const p2 = layerCases.tensor('neck.in.p2');
  const states = layerCases.tensor('dec.inter_states');
  await checkOnOrt(
    t,
    layerCase('mask_head', {
      inputs: { memory, p2, states },
      run: () => {
        const [h, w] = g.shapes[0]!;
        const e = net.config.transformer.embedDim;
        const level = tf.reshape(tf.slice(memory, [0, 0, 0], [g.batch, h * w, e]), [g.batch, h, w, e]) as tf.Tensor4D;
        const pixels = net.maskHead.pixelEmbedding(nhwc(p2), level);
        const hidden = tf.squeeze(states, [0]) as tf.Tensor3D;
        return {
          'mask.features': nchw(pixels),
          'mask.embeds': net.maskHead.maskEmbed.forward(hidden),
          'mask.logits': net.maskHead.maskLogits(hidden, pixels),
        };
      },
    }),
  );
});
