// The APE-Ti preset's parameters against the released state-dict layout, written out here from
// APE's module structure (DeformableDETRSegmVL + DeformableDetrTransformerVL + detrex layers),
// independently of the model code, and converted with the checkpoint converter's layout rule.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine } from '../../src/engine/engine.js';
import { releasedTargets } from '../../src/convert/released-mapping.js';
import { apeTiConfig, apeDConfig } from '../../src/modeling/config.js';
import { ApeNetwork } from '../../src/modeling/ape-network.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

/** torch key (without model_vision.) -> torch shape, for everything outside backbone.net and the text tower. */
function releasedHeadKeys(o: {
  hidden: number;
  ffn: number;
  heads: number;
  levels: number;
  points: number;
  enc: number;
  dec: number;
  fusionDim: number;
  textDim: number;
  pyramidChannels: number;
}): Map<string, number[]> {
  const k = new Map<string, number[]>();
  const e = o.hidden;
  const linear = (name: string, inD: number, outD: number) => {
    k.set(`${name}.weight`, [outD, inD]);
    k.set(`${name}.bias`, [outD]);
  };
  const norm = (name: string, d: number) => {
    k.set(`${name}.weight`, [d]);
    k.set(`${name}.bias`, [d]);
  };
  const mlp = (name: string, inD: number, hid: number, outD: number) => {
    linear(`${name}.layers.0`, inD, hid);
    linear(`${name}.layers.1`, hid, hid);
    linear(`${name}.layers.2`, hid, outD);
  };
  const msda = (name: string) => {
    linear(`${name}.sampling_offsets`, e, o.heads * o.levels * o.points * 2);
    linear(`${name}.attention_weights`, e, o.heads * o.levels * o.points);
    linear(`${name}.value_proj`, e, e);
    linear(`${name}.output_proj`, e, e);
  };
  const ffn = (name: string) => {
    linear(`${name}.layers.0.0`, e, o.ffn);
    linear(`${name}.layers.1`, o.ffn, e);
  };
  // ViTDet pyramid stages (in the backbone module, beside net) are checked by the backbone tests.
  for (let i = 0; i < o.levels; i++) {
    k.set(`neck.convs.${i}.conv.weight`, [e, o.pyramidChannels, 1, 1]);
    k.set(`neck.convs.${i}.conv.bias`, [e]);
    norm(`neck.convs.${i}.norm`, e);
  }
  k.set('transformer.level_embeds', [o.levels, e]);
  for (let i = 0; i < o.enc; i++) {
    const p = `transformer.encoder.layers.${i}`;
    msda(`${p}.attentions.0`);
    ffn(`${p}.ffns.0`);
    norm(`${p}.norms.0`, e);
    norm(`${p}.norms.1`, e);
    const v = `transformer.encoder.vl_layers.${i}.b_attn`;
    k.set(`${v}.gamma_v`, [e]);
    k.set(`${v}.gamma_l`, [o.textDim]);
    norm(`${v}.layer_norm_v`, e);
    norm(`${v}.layer_norm_l`, o.textDim);
    linear(`${v}.attn.v_proj`, e, o.fusionDim);
    linear(`${v}.attn.l_proj`, o.textDim, o.fusionDim);
    linear(`${v}.attn.values_v_proj`, e, o.fusionDim);
    linear(`${v}.attn.values_l_proj`, o.textDim, o.fusionDim);
    linear(`${v}.attn.out_v_proj`, o.fusionDim, e);
    linear(`${v}.attn.out_l_proj`, o.fusionDim, o.textDim);
  }
  for (let i = 0; i < o.dec; i++) {
    const p = `transformer.decoder.layers.${i}`;
    k.set(`${p}.attentions.0.attn.in_proj_weight`, [3 * e, e]);
    k.set(`${p}.attentions.0.attn.in_proj_bias`, [3 * e]);
    linear(`${p}.attentions.0.attn.out_proj`, e, e);
    msda(`${p}.attentions.1`);
    ffn(`${p}.ffns.0`);
    for (let n = 0; n < 3; n++) norm(`${p}.norms.${n}`, e);
  }
  linear('transformer.decoder.class_embed_ambiguous.0', e, 1);
  mlp('transformer.decoder.bbox_embed_ambiguous.0', e, e, 4);
  linear('transformer.enc_output', e, e);
  norm('transformer.enc_output_norm', e);
  linear('transformer.pos_trans', 2 * e, 2 * e);
  norm('transformer.pos_trans_norm', 2 * e);
  linear('transformer.pix_trans', e, e);
  norm('transformer.pix_trans_norm', e);
  for (let i = 0; i < o.dec; i++) {
    k.set(`class_embed.${i}.log_scale`, [1]);
    k.set(`class_embed.${i}.bias_lang`, [o.textDim]);
    k.set(`class_embed.${i}.bias0`, [1]);
    linear(`class_embed.${i}.dot_product_projection_text`, o.textDim, e);
  }
  linear(`class_embed.${o.dec}`, e, 1);
  for (let i = 0; i <= o.dec; i++) mlp(`bbox_embed.${i}`, e, e, 4);
  k.set('lateral_conv.weight', [e, o.pyramidChannels, 1, 1]);
  norm('lateral_conv.norm', e);
  k.set('output_conv.weight', [e, e, 3, 3]);
  norm('output_conv.norm', e);
  k.set('mask_conv.weight', [e, e, 1, 1]);
  mlp('mask_embed', e, e, e);
  k.set('name_prompt_fusion_feature', [1, 1, o.textDim]);
  return k;
}

test('APE-Ti preset: every head, neck, transformer and fusion parameter has the released name and (converted) shape', () => {
  const cfg = apeTiConfig();
  // The text tower is checked by its own tests; a small one keeps this test light (same output width).
  cfg.text.encoder = { ...cfg.text.encoder, width: 16, heads: 2, layers: 1 };
  const tokenizer = { vocabSize: 49408, contextLength: 77, sot: 49406, eot: 49407, tokenize: () => [] };
  const net = new ApeNetwork(cfg, tokenizer, 0);
  const ours = new Map([...net.namedParameters()].map(([n, v]) => [n, v.shape]));
  const expected = releasedHeadKeys({
    hidden: 256,
    ffn: 2048,
    heads: 8,
    levels: 5,
    points: 4,
    enc: 6,
    dec: 6,
    fusionDim: 2048,
    textDim: 1024,
    pyramidChannels: 256,
  });
  const problems: string[] = [];
  for (const [key, torchShape] of expected) {
    const [target] = releasedTargets(`model_vision.${key}`, torchShape.length);
    const layout = target!.layout;
    const want =
      layout === 'linear'
        ? [torchShape[1]!, torchShape[0]!]
        : layout === 'conv'
          ? [torchShape[2]!, torchShape[3]!, torchShape[1]!, torchShape[0]!]
          : torchShape;
    const got = ours.get(target!.name);
    if (!got) problems.push(`missing ${key}`);
    else if (got.join() !== want.join()) problems.push(`${key}: ours [${got}] vs released [${want}] (${layout})`);
  }
  for (const name of ours.keys()) {
    if (name.startsWith('backbone.') || name.startsWith('model_language.')) continue;
    if (!expected.has(name)) problems.push(`extra ${name}`);
  }
  assert.deepEqual(problems, []);
  const backbone = [...ours.keys()].filter((n) => n.startsWith('backbone.'));
  assert.ok(backbone.includes('backbone.net.blocks.11.attn.q_proj.weight'));
  assert.ok(backbone.includes('backbone.simfp_2.0.weight'));
  assert.ok(backbone.includes('backbone.simfp_5.2.norm.weight'));
  assert.ok([...ours.keys()].includes('model_language.net.text.transformer.resblocks.0.attn.in_proj_weight'));
  net.dispose();
});

test('APE-D and APE-Ti presets share the detector shape and differ in the backbone only', () => {
  const d = apeDConfig();
  const t = apeTiConfig();
  assert.deepEqual(d.transformer, t.transformer);
  assert.deepEqual(d.fusion, t.fusion);
  assert.deepEqual(d.text, t.text);
  assert.equal(d.backbone.vit.embedDim, 1024);
  assert.equal(t.backbone.vit.embedDim, 192);
  assert.equal(d.transformer.proposals.numQueries, 900);
  assert.equal(d.input.size, 1024);
});
