import { test } from 'node:test';
import assert from 'node:assert/strict';
import { THING_SHAPES, STUFF_KINDS, SYNTH_CATEGORIES, categoryId } from '../../src/data/synth/categories.js';
import { rasterizeShape, shapeContains } from '../../src/data/synth/shapes.js';
import { absorbSmallPieces, layoutStuff } from '../../src/data/synth/stuff-layout.js';
import { DEFAULT_SYNTH_CONFIG, generateScene, type SynthConfig } from '../../src/data/synth/scene.js';
import { SIZE_RADIUS } from '../../src/data/synth/things.js';
import { Rng } from '../../src/util/random.js';

const config: SynthConfig = { ...DEFAULT_SYNTH_CONFIG, width: 96, height: 80 };

test('categories: fixed ids, things 1-8 then stuff 9-14, unique names', () => {
  assert.deepEqual(
    SYNTH_CATEGORIES.map((c) => `${c.id}:${c.name}:${c.isthing}`),
    [
      '1:circle:1',
      '2:square:1',
      '3:triangle:1',
      '4:star:1',
      '5:hexagon:1',
      '6:ring:1',
      '7:cross:1',
      '8:heart:1',
      '9:sky:0',
      '10:grass:0',
      '11:water:0',
      '12:sand:0',
      '13:wall:0',
      '14:gravel:0',
    ],
  );
  assert.equal(categoryId('water'), 11);
});

test('shapes: inside tests at the centre and outside the unit circle; areas close to geometry', () => {
  for (const shape of THING_SHAPES) {
    assert.equal(shapeContains(shape, 0, 0.1), shape !== 'ring', `${shape} near its centre`);
    for (let k = 0; k < 16; k++) {
      const a = (2 * Math.PI * k) / 16;
      assert.equal(
        shapeContains(shape, 1.05 * Math.cos(a), 1.05 * Math.sin(a)),
        false,
        `${shape} beyond the unit circle`,
      );
    }
  }
  const area = (shape: (typeof THING_SHAPES)[number], rotation = 0) => {
    const m = rasterizeShape({ shape, cx: 50, cy: 50, radius: 40, rotation }, 100, 100);
    return m.reduce((s, v) => s + v, 0);
  };
  const near = (actual: number, expected: number) =>
    assert.ok(Math.abs(actual - expected) / expected < 0.03, `${actual} vs ${expected}`);
  const r2 = 40 * 40;
  near(area('circle'), Math.PI * r2);
  near(area('ring'), Math.PI * r2 * 0.7);
  near(area('square'), (2 * 0.72 * 40) ** 2);
  near(area('square', 0.7), (2 * 0.72 * 40) ** 2);
  near(area('hexagon'), ((3 * Math.sqrt(3)) / 2) * r2);
  near(area('triangle'), ((3 * Math.sqrt(3)) / 4) * r2);
  near(area('cross'), r2 * (2 * (0.64 * 1.9) - 0.64 * 0.64));
  // A shape at the border is clipped, not wrapped.
  const clipped = rasterizeShape({ shape: 'circle', cx: 2, cy: 2, radius: 5, rotation: 0 }, 10, 10);
  assert.equal(clipped[9], 0);
  assert.equal(clipped[0], 1);
});

test('stuff layout: every pixel labelled, slivers absorbed', () => {
  const labels = layoutStuff(64, 48, new Rng(4));
  assert.equal(labels.length, 64 * 48);
  assert.ok(labels.every((l) => l < STUFF_KINDS.length));
  // A one-pixel island of 1 inside 0s, and a 2-pixel strip of 2 on the border of 0 and 3.
  const map = Uint8Array.from([0, 0, 0, 3, 3, 0, 1, 0, 3, 3, 0, 0, 0, 3, 3, 2, 2, 0, 3, 3]);
  absorbSmallPieces(map, 5, 4, 3);
  assert.deepEqual([...map], [0, 0, 0, 3, 3, 0, 0, 0, 3, 3, 0, 0, 0, 3, 3, 0, 0, 0, 3, 3]);
});

test('scenes: masks disjoint and covering, semantic map agrees, occlusion limit kept, sizes in class', () => {
  for (let seed = 0; seed < 6; seed++) {
    const scene = generateScene(config, new Rng(seed));
    const { width: w, height: h } = scene;
    assert.equal(scene.image.data.length, w * h * 3);
    assert.ok(scene.things.length >= 1 && scene.things.length <= config.maxObjects);
    const owner = new Int16Array(w * h).fill(-1);
    const all = [
      ...scene.things.map((t) => ({ mask: t.mask, id: categoryId(t.shape) })),
      ...scene.stuff.map((s) => ({ mask: s.mask, id: categoryId(s.kind) })),
    ];
    all.forEach((m, k) => {
      for (let i = 0; i < w * h; i++) {
        if (!m.mask[i]) continue;
        assert.equal(owner[i], -1, `seed ${seed}: masks ${owner[i]} and ${k} overlap at ${i}`);
        owner[i] = k;
        assert.equal(scene.semantic[i], m.id);
      }
    });
    assert.ok(
      owner.every((o) => o >= 0),
      `seed ${seed}: some pixel has no mask`,
    );
    const s = Math.min(w, h);
    for (const t of scene.things) {
      const visible = t.mask.reduce((n, v) => n + v, 0);
      assert.ok(
        visible >= config.minVisibleFraction * t.fullArea,
        `seed ${seed}: ${t.shape} ${visible}/${t.fullArea} visible`,
      );
      const [lo, hi] = SIZE_RADIUS[t.size];
      assert.ok(t.placement.radius >= Math.max(2.5, lo * s) && t.placement.radius <= Math.max(2.5, hi * s));
    }
    // The last object drawn is never occluded.
    const last = scene.things.at(-1)!;
    assert.equal(
      last.mask.reduce((n, v) => n + v, 0),
      last.fullArea,
    );
  }
});

test('scenes: same rng seed, same scene; different seed, different scene; bad config refused', () => {
  const a = generateScene(config, new Rng(9));
  const b = generateScene(config, new Rng(9));
  const c = generateScene(config, new Rng(10));
  assert.deepEqual(a.image.data, b.image.data);
  assert.deepEqual(a.semantic, b.semantic);
  assert.notDeepEqual(a.image.data, c.image.data);
  assert.throws(() => generateScene({ ...config, width: 8 }, new Rng(1)), /at least 16, got 8x80/);
  assert.throws(
    () => generateScene({ ...config, minObjects: 5, maxObjects: 2 }, new Rng(1)),
    /0 <= min <= max, got 5..2/,
  );
});
