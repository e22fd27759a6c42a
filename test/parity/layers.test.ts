// APE-D's neck, deformable encoder and decoder layers, two-stage proposals, output heads and mask
// head against APE's (and detrex's) own PyTorch outputs: ../shared/fixtures/ape-reference/layers
// (random weights in the released key layout, APE-D's options at small sizes, one chain
// neck -> position embedding -> encoder layer -> proposals -> decoder layer -> heads / masks).
// The weights reach the network through the released-checkpoint converter (releasedTargets).
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/engine.js';
import type { ApeNetwork } from '../../src/modeling/ape-network.js';
import { encoderReferencePoints, tokenKeepMask } from '../../src/modeling/feature-geometry.js';
import { sinePositionEmbedding, proposalPositionEmbedding } from '../../src/modeling/position-encoding.js';
import { selectProposals } from '../../src/modeling/proposals.js';
import { scaleReferences } from '../../src/modeling/deformable/decoder.js';
import { inverseSigmoid } from '../../src/nn/ops.js';
import type { ConversionReport } from '../../src/convert/convert-checkpoint.js';
import { convertFixtureCheckpoint, deviation } from './towers-fixture.js';
import {
  decoderLayerInputs,
  decoderLayerSteps,
  encoderLayerInputs,
  encoderLayerSteps,
  fixtureGeometry,
  fixtureNetwork,
  layerCases as cases,
  layerInts as ints,
  layerOptions as options,
  layersDir as dir,
  layerTolerance as tolerance,
  nchw,
  nhwc,
} from './layers-fixture.js';

/**
 * Compares outputs with the reference and reports every deviation as a test diagnostic; fails
 * (after all comparisons of the test ran) when any is over the tolerance.
 */
function checker(t: TestContext, tol: number) {
  const failures: string[] = [];
  return {
    close(name: string, ours: tf.Tensor, reference: tf.Tensor = cases.tensor(name)): void {
      const d = deviation(ours, reference);
      const line = `${name}: max abs ${d.maxAbs.toExponential(2)}, rel ${d.rel.toExponential(2)} (tolerance ${tol})`;
      t.diagnostic(line);
      if (!(d.maxAbs <= tol) || d.nonFiniteMismatches > 0)
        failures.push(`${line}${d.nonFiniteMismatches ? `, ${d.nonFiniteMismatches} non-finite entries differ` : ''}`);
    },
    exact(name: string, ours: ArrayLike<number>, reference: number[] = ints(name)): void {
      const same = ours.length === reference.length && reference.every((v, i) => v === ours[i]);
      t.diagnostic(`${name}: ${same ? 'identical' : 'DIFFERENT'}`);
      if (!same) failures.push(`${name}: [${Array.from(ours).join(', ')}] vs APE [${reference.join(', ')}]`);
    },
    done(): void {
      assert.deepEqual(failures, []);
    },
  };
}

let net: ApeNetwork;
let report: ConversionReport;

before(async () => {
  await initEngine({ backend: 'wasm' });
  net = fixtureNetwork();
  report = await convertFixtureCheckpoint(net, dir);
});

after(() => net.dispose());

test('layers checkpoint: the converter maps every key to the network, the decoder-held head aliases aside', () => {
  // APE's decoder holds the same class_embed / bbox_embed lists: second names of shared storages.
  const aliases = report.unused.filter((k) =>
    /^model_vision\.transformer\.decoder\.(class_embed|bbox_embed)\.\d+\./.test(k),
  );
  assert.deepEqual(report.unused, aliases);
  assert.equal(aliases.length, 19);
  assert.equal(report.used.length, 114 - 19);
  // What the checkpoint does not hold: the backbone, the text tower, the fusion's zero token.
  assert.deepEqual(
    report.missing.filter((n) => !/^(backbone\.|model_language\.|name_prompt_fusion_feature$)/.test(n)),
    [],
  );
  const used = new Map(report.used.map((e) => [e.key, e.name]));
  assert.equal(used.get('model_vision.class_embed.1.weight'), 'class_embed.1.weight'); // the proposal classifier
  assert.equal(
    used.get('model_vision.transformer.decoder.layers.0.attentions.0.attn.in_proj_weight'),
    'transformer.decoder.layers.0.attentions.0.attn.in_proj_weight',
  );
  assert.equal(report.used.find((e) => e.key === 'model_vision.neck.convs.0.conv.weight')!.layout, 'conv');
});

test('neck: ChannelMapper (1x1 conv + GroupNorm per level) matches APE', (t) => {
  const c = checker(t, tolerance('neck'));
  ['p2', 'p3', 'p4'].forEach((p, i) =>
    c.close(`neck.out.${i}`, nchw(net.neck!.convs[i]!.forward(nhwc(cases.tensor(`neck.in.${p}`))))),
  );
  c.done();
});

test('position embedding: level padding masks and sine embeddings match APE', (t) => {
  const c = checker(t, tolerance('position_embedding'));
  const g = fixtureGeometry();
  const keep = tokenKeepMask(g);
  const pe = options('position_embedding');
  g.shapes.forEach(([h, w], l) => {
    const masks: number[] = [];
    const pos: Float32Array[] = [];
    for (let b = 0; b < g.batch; b++) {
      const start = b * g.total + g.levelStart[l]!;
      masks.push(...Array.from(keep.subarray(start, start + h * w), (v) => 1 - v));
      const [vh, vw] = g.valid[b]![l]!;
      pos.push(
        sinePositionEmbedding(h, w, vh, vw, {
          numPosFeats: pe.num_pos_feats!,
          temperature: pe.temperature,
          offset: pe.offset,
          eps: pe.eps,
        }),
      );
    }
    c.exact(`mask.level.${l}`, masks);
    const ours = tf.tensor4d(Float32Array.from(pos.flatMap((p) => Array.from(p))), [
      g.batch,
      h,
      w,
      2 * pe.num_pos_feats!,
    ]);
    c.close(`pos.level.${l}`, nchw(ours));
  });
  c.done();
});

test('transformer input: flattened tokens, level embeddings, shapes, valid ratios and reference points match APE', (t) => {
  const c = checker(t, tolerance('transformer_input_prep'));
  const g = fixtureGeometry();
  const feats = [0, 1, 2].map((l) => nhwc(cases.tensor(`neck.out.${l}`)));
  const { source, pos } = net.transformer.encoderInput(feats, g);
  c.close('enc.query', source);
  c.close('level_embeds_added.query_pos', pos);
  c.close('enc.query_pos', pos);
  c.exact('enc.spatial_shapes', g.shapes.flat());
  c.exact('enc.level_start_index', g.levelStart);
  c.exact(
    'enc.padding_mask',
    Array.from(tokenKeepMask(g), (v) => 1 - v),
  );
  c.close('enc.valid_ratios', tf.tensor3d(g.validRatios, [g.batch, g.shapes.length, 2]));
  c.close('enc.reference_points', tf.tensor4d(encoderReferencePoints(g), [g.batch, g.total, g.shapes.length, 2]));
  c.done();
});

test('encoder layer: deformable self-attention, norm, FFN, norm match APE, whole and in token chunks', (t) => {
  const c = checker(t, tolerance('encoder_layer'));
  const inputs = encoderLayerInputs(net.config.transformer.numPoints);
  const { g, query, pos, keep, frame } = inputs;
  for (const [name, out] of Object.entries(encoderLayerSteps(net, inputs))) c.close(name, out);
  c.close('enc.output', net.transformer.encoder.forward(query, pos, frame, g.shapes, keep, null).memory);
  c.close('enc.output', net.transformer.encoder.layers[0]!.forward(query, pos, frame, g.shapes, keep, 32));
  c.done();
});

test('two-stage proposals: anchors, proposal heads, first-stage NMS selection and query initialisation match APE', (t) => {
  const c = checker(t, tolerance('two_stage_proposals'));
  const g = fixtureGeometry();
  const tr = net.transformer;
  const heads = { bboxEmbed: net.bboxEmbed, proposalClass: net.proposalClass };
  const p = tr.encoderProposals(cases.tensor('enc.output') as tf.Tensor3D, g, heads);
  c.close('prop.output_proposals', tf.tensor3d(p.anchors.unact, [g.batch, g.total, 4]));
  c.exact('prop.level_ids', p.anchors.levelIds);
  c.close('prop.output_memory', p.outputMemory);
  c.close('prop.enc_outputs_class', p.logits);
  c.close('prop.enc_outputs_coord_unact', p.coordsUnact);
  const chunked = tr.encoderProposals(cases.tensor('enc.output') as tf.Tensor3D, g, heads, 32);
  c.close('prop.enc_outputs_coord_unact', chunked.coordsUnact);

  const q = tr.decoderQueries(p.outputMemory, p.logits, p.coordsUnact, p.anchors, g);
  c.exact(
    'prop.topk_indices',
    q.selected.flatMap((s) => Array.from(s)),
  );
  c.close('prop.topk_coords_unact', q.topCoords);
  c.close('prop.reference_points', q.reference);
  const e = tr.config.embedDim;
  c.close(
    'prop.pos_trans_out',
    tr.posTransNorm.forward(tr.posTrans.forward(proposalPositionEmbedding(q.topCoords, e / 2))),
  );
  c.close('prop.query_pos', q.queryPos);
  c.close('prop.query', q.query);

  // The selection alone, on APE's own logits and boxes.
  const logits = cases.values('prop.enc_outputs_class');
  const coords = cases.values('prop.enc_outputs_coord_unact');
  const picks = Array.from({ length: g.batch }, (_, b) =>
    Array.from(
      selectProposals(
        logits.slice(b * g.total, (b + 1) * g.total),
        coords.slice(b * g.total * 4, (b + 1) * g.total * 4),
        ints('prop.level_ids'),
        g.shapes.length,
        tr.config.proposals,
      ),
    ),
  );
  c.exact('prop.topk_indices', picks.flat());
  c.done();
});

test('two-stage proposals with an extra (ambiguous) head, as APE-D has: per token the higher logit wins, with its box', async (t) => {
  // The fixture ran proposal_ambiguous=0; APE-D's config sets 1 (APE takes the argmax over the
  // stacked heads and gathers class and box with it). Expected values are made from APE's own
  // outputs: the extra head scores 2m - logit and boxes anchor + delta, so it wins where logit < m.
  const amb = fixtureNetwork(1);
  try {
    const r = await convertFixtureCheckpoint(amb, dir);
    assert.deepEqual(
      r.missing.filter((n) => n.includes('_ambiguous')).sort(),
      [...amb.transformer.decoder.namedParameters().keys()]
        .filter((n) => n.includes('_ambiguous'))
        .map((n) => `transformer.decoder.${n}`)
        .sort(),
    );
    const logits = cases.values('prop.enc_outputs_class');
    const sorted = [...new Set(logits)].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    const m = (sorted[mid - 1]! + sorted[mid]!) / 2; // halfway between two logits: no near-ties
    const extraClass = amb.transformer.decoder.classEmbedAmbiguous[0]!;
    extraClass.weight.assign(tf.neg(amb.proposalClass.weight));
    extraClass.bias!.assign(tf.sub(2 * m, amb.proposalClass.bias!));
    const extraBox = amb.transformer.decoder.bboxEmbedAmbiguous[0]!;
    const delta = [0.1, -0.2, 0.3, -0.1];
    extraBox.layers.forEach((layer, i) => {
      const main = amb.bboxEmbed[1]!.layers[i]!;
      layer.weight.assign(i < 2 ? main.weight : tf.zerosLike(main.weight));
      layer.bias!.assign(i < 2 ? main.bias! : tf.tensor1d(delta));
    });

    const coords = cases.values('prop.enc_outputs_coord_unact');
    const anchors = cases.values('prop.output_proposals');
    const extraWins = logits.map((v) => v < m);
    assert.ok(extraWins.some(Boolean) && !extraWins.every(Boolean));
    const wantLogits = logits.map((v, i) => (extraWins[i] ? 2 * m - v : v));
    const wantCoords = coords.map((v, i) => (extraWins[i >> 2] ? anchors[i]! + delta[i % 4]! : v));
    const g = fixtureGeometry();
    const p = amb.transformer.encoderProposals(cases.tensor('enc.output') as tf.Tensor3D, g, {
      bboxEmbed: amb.bboxEmbed,
      proposalClass: amb.proposalClass,
    });
    const c = checker(t, tolerance('two_stage_proposals'));
    c.close('prop.enc_outputs_class (ambiguous)', p.logits, tf.tensor3d(wantLogits, [g.batch, g.total, 1]));
    c.close('prop.enc_outputs_coord_unact (ambiguous)', p.coordsUnact, tf.tensor3d(wantCoords, [g.batch, g.total, 4]));
    c.done();
  } finally {
    amb.dispose();
  }
});

test('decoder layer: self-attention, deformable cross-attention, FFN, three norms and box refinement match APE', (t) => {
  const c = checker(t, tolerance('decoder_layer'));
  const inputs = decoderLayerInputs();
  const { g, query, pos, value, keep } = inputs;
  const n = query.shape[1];
  const levels = g.shapes.length;
  const reference = Float32Array.from(cases.values('prop.reference_points'));
  const validRatios = Float32Array.from(cases.values('enc.valid_ratios'));
  const scaled = scaleReferences(reference, validRatios, g.batch, n, levels);
  c.close('dec.reference_points_input', tf.tensor4d(scaled, [g.batch, n, levels, 4]));
  for (const [name, out] of Object.entries(decoderLayerSteps(net, inputs))) c.close(name, out);

  const decoded = net.transformer.decoder.forward(
    query,
    pos,
    value,
    keep,
    tf.tensor3d(reference, [g.batch, n, 4]),
    validRatios,
    g.shapes,
    net.bboxEmbed,
  );
  c.close('dec.inter_states', tf.stack(decoded.hidden));
  c.close('dec.new_reference_points', tf.stack(decoded.boxes));
  c.done();
});

test('output heads: region-prompt logits and refined boxes of the decoder output match APE', (t) => {
  const c = checker(t, tolerance('output_heads'));
  const hidden = tf.squeeze(cases.tensor('dec.inter_states'), [0]) as tf.Tensor3D;
  c.close('heads.logits', net.classEmbed[0]!.forward(hidden, cases.tensor('heads.text') as tf.Tensor3D));
  c.close(
    'heads.coord',
    tf.sigmoid(tf.add(net.bboxEmbed[0]!.forward(hidden), inverseSigmoid(cases.tensor('prop.reference_points')))),
  );
  c.done();
});

test('mask head: pixel embedding from backbone p2 and encoder level 0, query embeddings and mask logits match APE', (t) => {
  const c = checker(t, tolerance('mask_head'));
  const g = fixtureGeometry();
  const [h, w] = g.shapes[0]!;
  const e = net.config.transformer.embedDim;
  const memoryLevel = tf.reshape(tf.slice(cases.tensor('enc.output'), [0, 0, 0], [g.batch, h * w, e]), [
    g.batch,
    h,
    w,
    e,
  ]) as tf.Tensor4D;
  const pixels = net.maskHead.pixelEmbedding(nhwc(cases.tensor('neck.in.p2')), memoryLevel);
  c.close('mask.features', nchw(pixels));
  const hidden = tf.squeeze(cases.tensor('dec.inter_states'), [0]) as tf.Tensor3D;
  c.close('mask.embeds', net.maskHead.maskEmbed.forward(hidden));
  c.close('mask.logits', net.maskHead.maskLogits(hidden, pixels));
  c.done();
});

test('the whole chain from the neck input, as the network runs it (whole and in token chunks), matches APE', (t) => {
  const g = fixtureGeometry();
  const p2 = nhwc(cases.tensor('neck.in.p2'));
  const feats = ['p2', 'p3', 'p4'].map((p, i) =>
    net.neck!.convs[i]!.forward(i === 0 ? p2 : nhwc(cases.tensor(`neck.in.${p}`))),
  );
  const transformerHeads = { bboxEmbed: net.bboxEmbed, proposalClass: net.proposalClass };
  for (const chunkRows of [Infinity, 32]) {
    t.diagnostic(`chunkRows ${chunkRows}`);
    const out = net.transformer.forward(feats, g, null, transformerHeads, { chunkRows });
    const enc = checker(t, tolerance('encoder_layer'));
    enc.close('enc.output', out.memory);
    const prop = checker(t, tolerance('two_stage_proposals'));
    prop.close('prop.enc_outputs_class', out.encoder.logits);
    prop.close(
      'sigmoid(prop.enc_outputs_coord_unact)',
      out.encoder.boxes,
      tf.sigmoid(cases.tensor('prop.enc_outputs_coord_unact')),
    );
    prop.exact(
      'prop.topk_indices',
      out.encoder.selected.flatMap((s) => Array.from(s)),
    );
    prop.close('prop.reference_points', tf.tensor3d(out.references[0]!, [g.batch, out.hidden[0]!.shape[1], 4]));
    const dec = checker(t, tolerance('decoder_layer'));
    dec.close('dec.output', out.hidden[0]!);
    dec.close('dec.new_reference_points', tf.stack(out.boxes));
    const heads = checker(t, tolerance('output_heads'));
    heads.close('heads.logits', net.classEmbed[0]!.forward(out.hidden[0]!, cases.tensor('heads.text') as tf.Tensor3D));
    const [h, w] = g.shapes[0]!;
    const e = out.memory.shape[2];
    const memoryLevel = tf.reshape(tf.slice(out.memory, [0, 0, 0], [g.batch, h * w, e]), [
      g.batch,
      h,
      w,
      e,
    ]) as tf.Tensor4D;
    const mask = checker(t, tolerance('mask_head'));
    mask.close('mask.logits', net.maskHead.maskLogits(out.hidden[0]!, net.maskHead.pixelEmbedding(p2, memoryLevel)));
    for (const k of [enc, prop, dec, heads, mask]) k.done();
  }
});
