import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  normalizeSentence,
  parseQuery,
  positionMargin,
  referringVocabulary,
  renderQuery,
  renderRaw,
  resolveQuery,
  type RefQuery,
  type RefStuffPiece,
  type RefThing,
  type SceneGraph,
} from '../../src/data/synth/referring.js';
import { generateSentences } from '../../src/data/synth/sentences.js';
import { Rng } from '../../src/util/random.js';

/** A thing whose box is centred at (cx, cy), 10x10. */
function thing(
  id: number,
  shape: RefThing['shape'],
  color: RefThing['color'],
  size: RefThing['size'],
  cx: number,
  cy: number,
): RefThing {
  return { id, shape, color, size, bbox: [cx - 5, cy - 5, 10, 10] };
}

function piece(index: number, stuff: RefStuffPiece['stuff'], bbox: [number, number, number, number]): RefStuffPiece {
  return { index, stuff, bbox, area: bbox[2] * bbox[3] };
}

// 200x200 image: margin = 8 px.
const things = [
  thing(1, 'circle', 'red', 'small', 20, 100),
  thing(2, 'circle', 'red', 'large', 100, 100),
  thing(3, 'circle', 'blue', 'small', 180, 100),
  thing(4, 'square', 'green', 'large', 100, 30),
  thing(5, 'star', 'yellow', 'small', 60, 170),
  thing(6, 'star', 'yellow', 'small', 65, 20),
];
const pieces = [
  piece(0, 'water', [0, 0, 200, 60]),
  piece(1, 'water', [0, 150, 200, 50]),
  piece(2, 'grass', [0, 60, 200, 90]),
];
const graph: SceneGraph = { width: 200, height: 200, things, pieces };

const names = (q: RefQuery) => {
  const r = resolveQuery(q, graph);
  if (!r.ok) return `none: ${r.reason}`;
  return r.referent.type === 'thing' ? r.referent.thing.id : `piece ${r.referent.piece.index}`;
};

test('grammar: every kind renders and parses back to the same query', () => {
  const queries: RefQuery[] = [
    { kind: 'attribute', target: { shape: 'circle' } },
    { kind: 'attribute', target: { shape: 'heart', color: 'pink', size: 'large' } },
    {
      kind: 'spatial',
      target: { shape: 'triangle', color: 'red' },
      relation: 'left',
      anchor: { shape: 'square', color: 'blue' },
    },
    { kind: 'spatial', target: { shape: 'ring' }, relation: 'below', anchor: { shape: 'star', size: 'small' } },
    { kind: 'ordinal', target: { shape: 'star' }, rank: 2, from: 'left' },
    { kind: 'ordinal', target: { shape: 'cross', color: 'cyan' }, rank: 5, from: 'bottom' },
    { kind: 'stuff', stuff: 'water', position: 'top' },
    { kind: 'stuff', stuff: 'sky' },
    { kind: 'stuff', stuff: 'gravel', position: 'right' },
  ];
  for (const q of queries) assert.deepEqual(parseQuery(renderQuery(q)), q);
  assert.equal(renderQuery(queries[2]!), 'the red triangle to the left of the blue square');
  assert.equal(renderQuery(queries[4]!), 'the second star from the left');
  assert.equal(renderQuery(queries[6]!), 'the water at the top');
  assert.equal(renderQuery(queries[8]!), 'the gravel on the right');
  assert.equal(renderRaw(queries[1]!), 'The large pink heart.');
  assert.equal(
    normalizeSentence('The  red Triangle, to the LEFT of the blue square!'),
    'the red triangle to the left of the blue square',
  );
});

test('grammar: sentences outside it are refused with the place they stop fitting', () => {
  assert.throws(() => parseQuery('a red circle'), /expected 'the' at word 1/);
  assert.throws(() => parseQuery('the red'), /expected a shape .* at word 3 \('<end>'\)/);
  assert.throws(() => parseQuery('the red circle near the square'), /expected 'to' at word 4 \('near'\)/);
  assert.throws(() => parseQuery('the sixth star from the left'), /expected a shape/);
  assert.throws(() => parseQuery('the second star from the middle'), /'left', 'right', 'top' or 'bottom'/);
  assert.throws(() => parseQuery('the water at the left'), /'top' or 'bottom'/);
  assert.throws(() => parseQuery('the circle above the square please'), /the end of the sentence at word 6/);
  assert.throws(() => parseQuery('the red small circle'), /expected a shape/);
  assert.ok(referringVocabulary().includes('hexagon') && referringVocabulary().includes('fifth'));
});

test('attribute semantics: all given words must match, exactly one object', () => {
  assert.equal(positionMargin(graph), 8);
  assert.match(String(names({ kind: 'attribute', target: { shape: 'circle' } })), /none: 3 objects match 'circle'/);
  assert.match(String(names({ kind: 'attribute', target: { shape: 'circle', color: 'red' } })), /none: 2 objects/);
  assert.equal(names({ kind: 'attribute', target: { shape: 'circle', color: 'red', size: 'large' } }), 2);
  assert.equal(names({ kind: 'attribute', target: { shape: 'circle', color: 'blue' } }), 3);
  assert.equal(names({ kind: 'attribute', target: { shape: 'square' } }), 4);
  assert.match(String(names({ kind: 'attribute', target: { shape: 'heart' } })), /none: 0 objects/);
});

test('spatial semantics: by box centres, a clear margin, near-ties refused, anchor must be unique', () => {
  // Circles left of the green square (x=100): only circle 1 (x=20); circle 2 is level with it.
  assert.equal(
    names({ kind: 'spatial', target: { shape: 'circle' }, relation: 'left', anchor: { shape: 'square' } }),
    1,
  );
  assert.equal(
    names({ kind: 'spatial', target: { shape: 'circle' }, relation: 'right', anchor: { shape: 'square' } }),
    3,
  );
  // All three circles are below the square: not unique.
  assert.match(
    String(names({ kind: 'spatial', target: { shape: 'circle' }, relation: 'below', anchor: { shape: 'square' } })),
    /3 clear/,
  );
  // The stars: star 6 is above the square by 10 px (>= margin 8); star 5 is below.
  assert.equal(
    names({ kind: 'spatial', target: { shape: 'star' }, relation: 'above', anchor: { shape: 'square' } }),
    6,
  );
  assert.match(
    String(
      names({
        kind: 'spatial',
        target: { shape: 'star' },
        relation: 'left',
        anchor: { shape: 'circle', color: 'red' },
      }),
    ),
    /anchor: 2 objects/,
  );
  // A near-tie: a second star 4 px left of the square's centre makes "left of" ambiguous.
  const tie: SceneGraph = { ...graph, things: [...things, thing(7, 'star', 'red', 'small', 96, 60)] };
  const r = resolveQuery(
    { kind: 'spatial', target: { shape: 'star' }, relation: 'right', anchor: { shape: 'square' } },
    tie,
  );
  assert.equal(r.ok, false);
  const l = resolveQuery(
    { kind: 'spatial', target: { shape: 'star' }, relation: 'left', anchor: { shape: 'square' } },
    tie,
  );
  assert.deepEqual(l, { ok: false, reason: '2 clear and 3 possible matches for the relation' });
});

test('ordinal semantics: rank by centre from the named side, neighbours must be a margin away', () => {
  assert.equal(names({ kind: 'ordinal', target: { shape: 'circle' }, rank: 1, from: 'left' }), 1);
  assert.equal(names({ kind: 'ordinal', target: { shape: 'circle' }, rank: 2, from: 'left' }), 2);
  assert.equal(names({ kind: 'ordinal', target: { shape: 'circle' }, rank: 1, from: 'right' }), 3);
  assert.equal(names({ kind: 'ordinal', target: { shape: 'circle', color: 'red' }, rank: 2, from: 'right' }), 1);
  assert.match(
    String(names({ kind: 'ordinal', target: { shape: 'circle' }, rank: 4, from: 'left' })),
    /rank 4 but only 3/,
  );
  // Circles all share y = 100: ordering from the top is a three-way tie.
  assert.match(
    String(names({ kind: 'ordinal', target: { shape: 'circle' }, rank: 1, from: 'top' })),
    /2 other candidates within the margin/,
  );
  // Stars 60 and 65 in x are within the margin of each other.
  assert.match(
    String(names({ kind: 'ordinal', target: { shape: 'star' }, rank: 1, from: 'left' })),
    /within the margin/,
  );
  assert.equal(names({ kind: 'ordinal', target: { shape: 'star' }, rank: 1, from: 'top' }), 6);
  assert.match(
    String(names({ kind: 'ordinal', target: { shape: 'square' }, rank: 1, from: 'left' })),
    /needs at least 2/,
  );
});

test('stuff semantics: one piece, or the piece furthest to a side, in that half, with a margin', () => {
  assert.equal(names({ kind: 'stuff', stuff: 'grass' }), 'piece 2');
  assert.match(String(names({ kind: 'stuff', stuff: 'water' })), /2 pieces of water/);
  assert.equal(names({ kind: 'stuff', stuff: 'water', position: 'top' }), 'piece 0');
  assert.equal(names({ kind: 'stuff', stuff: 'water', position: 'bottom' }), 'piece 1');
  // Both water pieces span the full width: centred, so neither is "on the left".
  assert.match(String(names({ kind: 'stuff', stuff: 'water', position: 'left' })), /not in the left half/);
  const tie: SceneGraph = {
    ...graph,
    pieces: [piece(0, 'water', [0, 0, 60, 60]), piece(1, 'water', [5, 150, 60, 50])],
  };
  const r = resolveQuery({ kind: 'stuff', stuff: 'water', position: 'left' }, tie);
  assert.deepEqual(r, { ok: false, reason: 'two pieces of water are nearly as far left' });
  const clear: SceneGraph = {
    ...graph,
    pieces: [piece(0, 'water', [0, 0, 60, 60]), piece(1, 'water', [20, 150, 60, 50])],
  };
  const c = resolveQuery({ kind: 'stuff', stuff: 'water', position: 'left' }, clear);
  assert.ok(c.ok && c.referent.type === 'stuff' && c.referent.piece.index === 0);
  // The grass centre is at y = 105: not in the top half.
  assert.match(String(names({ kind: 'stuff', stuff: 'grass', position: 'top' })), /not in the top half/);
  assert.match(String(names({ kind: 'stuff', stuff: 'sky' })), /0 pieces of sky/);
});

test('generated sentences all resolve to their referent and cover every kind', () => {
  const out = generateSentences(graph, new Rng(3));
  const kinds = new Set(out.map((s) => s.kind));
  assert.deepEqual([...kinds].sort(), ['attribute', 'ordinal', 'spatial', 'stuff']);
  for (const s of out) {
    assert.equal(s.sent, renderQuery(s.query));
    assert.equal(normalizeSentence(s.raw), s.sent);
    const r = resolveQuery(parseQuery(s.sent), graph);
    assert.ok(r.ok, s.sent);
    assert.deepEqual(r.referent, s.referent, s.sent);
  }
  // Deterministic for a seed.
  assert.deepEqual(
    generateSentences(graph, new Rng(3)).map((s) => s.sent),
    out.map((s) => s.sent),
  );
});
