import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/engine.js';
import { ApeNetwork } from '../../src/modeling/ape-network.js';
import { isPlaceholder } from '../../src/nn/module.js';
import { WordTokenizer } from '../../src/text/word-tokenizer.js';
import { microConfig } from './micro-config.js';

before(async () => {
  await initEngine({ backend: 'wasm' });
});

test("parts 'prompts': the text tower and the last classifier get weights, the detector placeholders; prompts encode and score as in the whole network", () => {
  const config = microConfig();
  const tokenizer = WordTokenizer.hashing(config.text.encoder.vocabSize, config.text.encoder.contextLength);
  const whole = new ApeNetwork(config, tokenizer, 3);
  const before = tf.memory().numBytes;
  const side = new ApeNetwork(config, tokenizer, 3, 'prompts');
  try {
    const last = `class_embed.${config.transformer.decoderLayers - 1}.`;
    const real = [...side.namedParameters()].filter(([, v]) => !isPlaceholder(v));
    const names = real.map(([n]) => n);
    assert.ok(
      names.length > 0 && names.every((n) => n.startsWith('model_language.') || n.startsWith(last)),
      names.join(', '),
    );
    assert.ok(names.some((n) => n.startsWith(last)));
    // Every other parameter of the whole network is a placeholder of the same name, holding nothing.
    assert.deepEqual([...side.namedParameters().keys()], [...whole.namedParameters().keys()]);
    const realBytes = real.reduce((a, [, v]) => a + v.size * 4, 0);
    assert.equal(tf.memory().numBytes - before, realBytes);
    assert.ok(realBytes < 0.5 * whole.parameterCount() * 4, 'the micro detector outweighs its text tower');

    // With the whole network's weights, the prompt side encodes and scores exactly as it does.
    const params = whole.namedParameters();
    for (const [name, v] of real) v.assign(params.get(name)!);
    const texts = ['a red car', 'cat'];
    const [a, b] = [whole.encodePrompts(texts), side.encodePrompts(texts)];
    assert.deepEqual(b.arraySync(), a.arraySync());
    const hidden = tf.randomNormal([5, config.transformer.embedDim], 0, 1, 'float32', 9) as tf.Tensor2D;
    const score = (net: ApeNetwork) => {
      const head = net.classEmbed[net.classEmbed.length - 1]!;
      const keys = head.queryKeys(hidden);
      const logits = head.scorePrompts(keys, a);
      const values = logits.arraySync();
      tf.dispose([keys.keys, keys.offsets, logits]);
      return values;
    };
    assert.deepEqual(score(side), score(whole));
    tf.dispose([a, b, hidden]);

    const images = tf.zeros([1, 64, 64, 3]) as tf.Tensor4D;
    assert.throws(
      () => side.forward({ images, sizes: [[64, 64]] }, { vocabulary: ['cat'] }),
      /^Error: ApeNetwork\.forward: this network has its prompt side only \(parts 'prompts'\); load the whole model$/,
    );
    images.dispose();
  } finally {
    side.dispose();
    whole.dispose();
  }
});

test("parts 'classifier': the last classifier alone gets weights; prompts are refused on TF.js and served once another engine encoded them", async () => {
  const config = microConfig();
  // A trainable tower's cache is dropped when its weights change: with no weights, it never is.
  assert.ok(config.text.trainable);
  const tokenizer = WordTokenizer.hashing(config.text.encoder.vocabSize, config.text.encoder.contextLength);
  const whole = new ApeNetwork(config, tokenizer, 3);
  const before = tf.memory().numBytes;
  const side = new ApeNetwork(config, tokenizer, 3, 'classifier');
  try {
    const last = `class_embed.${config.transformer.decoderLayers - 1}.`;
    const real = [...side.namedParameters()].filter(([, v]) => !isPlaceholder(v));
    assert.deepEqual(
      real.map(([n]) => n),
      [...whole.namedParameters().keys()].filter((n) => n.startsWith(last)),
    );
    assert.deepEqual([...side.namedParameters().keys()], [...whole.namedParameters().keys()]);
    assert.equal(
      tf.memory().numBytes - before,
      real.reduce((a, [, v]) => a + v.size * 4, 0),
    );
    assert.ok(side.textTowerReleased);
    assert.throws(() => side.encodePrompts(['cat']), /no text tower \(parts 'classifier'\)/);

    // Vectors another engine encodes (here the whole network's TF.js tower) are then served as they are.
    const texts = ['a red car', 'cat'];
    const want = whole.encodePrompts(texts);
    const rows = want.arraySync().map((r) => Float32Array.from(r));
    let asked: number[][] = [];
    await side.preparePrompts(texts, async (tokens) => {
      asked = tokens.map((t) => [...t]);
      return rows;
    });
    assert.deepEqual(asked, tokenizer.tokenize(texts));
    const got = side.encodePrompts(texts);
    assert.deepEqual(got.arraySync(), want.arraySync());
    const again = side.encodePrompts(texts);
    assert.deepEqual(again.arraySync(), want.arraySync());
    tf.dispose([want, got, again]);
  } finally {
    side.dispose();
    whole.dispose();
  }
});
