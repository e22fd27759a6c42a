import {
  STUFF_KINDS,
  THING_COLOR_NAMES,
  THING_SHAPES,
  THING_SIZES,
  isStuffKind,
  isThingColor,
  isThingShape,
  isThingSize,
  type StuffKind,
  type ThingColor,
  type ThingShape,
  type ThingSize,
} from './categories.js';

/**
 * Referring expressions: their grammar (render and parse) and their meaning (which objects of a
 * scene a sentence picks out). The generator keeps a sentence only when it resolves to exactly
 * one object here, and the checker re-resolves every stored sentence against the annotations, so
 * both sides share this one definition.
 */

/** What the semantics needs to know about an object, all of it recoverable from annotations. */
export interface RefThing {
  /** The object's annotation id in instances.json. */
  id: number;
  shape: ThingShape;
  color: ThingColor;
  size: ThingSize;
  /** Visible-mask box, [x, y, w, h]. */
  bbox: readonly [number, number, number, number];
}

/** One connected piece of a stuff class's visible mask. */
export interface RefStuffPiece {
  /** Index of the piece in the image's list of pieces (see stuffPieces). */
  index: number;
  stuff: StuffKind;
  bbox: readonly [number, number, number, number];
  area: number;
}

export interface SceneGraph {
  width: number;
  height: number;
  things: readonly RefThing[];
  /** Only pieces large enough to be referred to (see MIN_REFERABLE_PIECE_FRACTION). */
  pieces: readonly RefStuffPiece[];
}

/** Stuff pieces smaller than this fraction of the image are neither named nor counted as rivals. */
export const MIN_REFERABLE_PIECE_FRACTION = 0.005;

export interface ThingDescription {
  shape: ThingShape;
  color?: ThingColor;
  size?: ThingSize;
}

export type Relation = 'left' | 'right' | 'above' | 'below';
export type Direction = 'left' | 'right' | 'top' | 'bottom';

export type RefQuery =
  | { kind: 'attribute'; target: ThingDescription }
  | { kind: 'spatial'; target: ThingDescription; relation: Relation; anchor: ThingDescription }
  | { kind: 'ordinal'; target: ThingDescription; rank: number; from: Direction }
  | { kind: 'stuff'; stuff: StuffKind; position?: Direction };

export type SentenceKind = RefQuery['kind'];
export const SENTENCE_KINDS: readonly SentenceKind[] = ['attribute', 'spatial', 'ordinal', 'stuff'];

export const ORDINALS = ['first', 'second', 'third', 'fourth', 'fifth'] as const;

// ---------------------------------------------------------------------------------------------
// Grammar

export function describeThing(d: ThingDescription): string {
  return [d.size, d.color, d.shape].filter((w) => w !== undefined).join(' ');
}

const RELATION_WORDS: Record<Relation, string> = {
  left: 'to the left of',
  right: 'to the right of',
  above: 'above',
  below: 'below',
};

const POSITION_WORDS: Record<Direction, string> = {
  top: 'at the top',
  bottom: 'at the bottom',
  left: 'on the left',
  right: 'on the right',
};

/** The normalised sentence (lower case, single spaces, no punctuation): the `sent` field. */
export function renderQuery(q: RefQuery): string {
  switch (q.kind) {
    case 'attribute':
      return `the ${describeThing(q.target)}`;
    case 'spatial':
      return `the ${describeThing(q.target)} ${RELATION_WORDS[q.relation]} the ${describeThing(q.anchor)}`;
    case 'ordinal':
      return `the ${ORDINALS[q.rank - 1]} ${describeThing(q.target)} from the ${q.from}`;
    case 'stuff':
      return q.position === undefined ? `the ${q.stuff}` : `the ${q.stuff} ${POSITION_WORDS[q.position]}`;
  }
}

/** The sentence as a person would write it: the `raw` field. */
export function renderRaw(q: RefQuery): string {
  const s = renderQuery(q);
  return `${s.charAt(0).toUpperCase() + s.slice(1)}.`;
}

/** raw -> sent: lower case, punctuation dropped, whitespace collapsed. */
export function normalizeSentence(raw: string): string {
  return raw
    .toLowerCase()
    .replace(/[^a-z0-9 ]+/g, ' ')
    .trim()
    .split(/\s+/)
    .join(' ');
}

/** Parses a normalised sentence; throws an Error saying where it stops fitting the grammar. */
export function parseQuery(sent: string): RefQuery {
  const words = sent.trim().split(/\s+/);
  let i = 0;
  const fail = (what: string): never => {
    throw new Error(`sentence '${sent}': expected ${what} at word ${i + 1} ('${words[i] ?? '<end>'}')`);
  };
  const expect = (...ws: string[]): void => {
    for (const w of ws) {
      if (words[i] !== w) fail(`'${w}'`);
      i++;
    }
  };
  const description = (): ThingDescription => {
    let size: ThingSize | undefined;
    let color: ThingColor | undefined;
    if (words[i] !== undefined && isThingSize(words[i]!)) size = words[i++] as ThingSize;
    if (words[i] !== undefined && isThingColor(words[i]!)) color = words[i++] as ThingColor;
    const shape = words[i];
    if (shape === undefined || !isThingShape(shape)) return fail(`a shape (${THING_SHAPES.join(', ')})`);
    i++;
    const d: ThingDescription = { shape };
    if (size !== undefined) d.size = size;
    if (color !== undefined) d.color = color;
    return d;
  };
  const end = (q: RefQuery): RefQuery => {
    if (i !== words.length) fail('the end of the sentence');
    return q;
  };

  expect('the');
  const head = words[i];
  if (head !== undefined && isStuffKind(head)) {
    i++;
    if (i === words.length) return { kind: 'stuff', stuff: head };
    const prep = words[i];
    if (prep !== 'at' && prep !== 'on') fail(`'at the top', 'at the bottom', 'on the left' or 'on the right'`);
    i++;
    expect('the');
    const where = words[i];
    const ok = prep === 'at' ? where === 'top' || where === 'bottom' : where === 'left' || where === 'right';
    if (!ok) fail(prep === 'at' ? `'top' or 'bottom'` : `'left' or 'right'`);
    i++;
    return end({ kind: 'stuff', stuff: head, position: where as Direction });
  }
  const rank = (ORDINALS as readonly string[]).indexOf(head ?? '');
  if (rank >= 0) {
    i++;
    const target = description();
    expect('from', 'the');
    const from = words[i];
    if (from !== 'left' && from !== 'right' && from !== 'top' && from !== 'bottom')
      fail(`'left', 'right', 'top' or 'bottom'`);
    i++;
    return end({ kind: 'ordinal', target, rank: rank + 1, from: from as Direction });
  }
  const target = description();
  if (i === words.length) return { kind: 'attribute', target };
  let relation: Relation;
  if (words[i] === 'above' || words[i] === 'below') {
    relation = words[i] as Relation;
    i++;
  } else {
    expect('to', 'the');
    if (words[i] !== 'left' && words[i] !== 'right') fail(`'left' or 'right'`);
    relation = words[i] as Relation;
    i++;
    expect('of');
  }
  expect('the');
  const anchor = description();
  return end({ kind: 'spatial', target, relation, anchor });
}

// ---------------------------------------------------------------------------------------------
// Semantics

/**
 * The positional margin: how far apart (in pixels, between box centres) two objects must be for
 * "left of", "above" or an ordinal to count as clear. 4% of the image's longer side.
 */
export function positionMargin(graph: { width: number; height: number }): number {
  return 0.04 * Math.max(graph.width, graph.height);
}

function centre(b: readonly [number, number, number, number]): [number, number] {
  return [b[0] + b[2] / 2, b[1] + b[3] / 2];
}

export function matchesDescription(t: RefThing, d: ThingDescription): boolean {
  return (
    t.shape === d.shape && (d.color === undefined || t.color === d.color) && (d.size === undefined || t.size === d.size)
  );
}

export type Referent = { type: 'thing'; thing: RefThing } | { type: 'stuff'; piece: RefStuffPiece };

/** Either the one object a sentence names, or why it does not name exactly one. */
export type Resolution = { ok: true; referent: Referent } | { ok: false; reason: string };

/** Signed distance by which `a` is `relation` of `b` (positive: it is). */
function relationOffset(a: RefThing, b: RefThing, relation: Relation): number {
  const [ax, ay] = centre(a.bbox);
  const [bx, by] = centre(b.bbox);
  switch (relation) {
    case 'left':
      return bx - ax;
    case 'right':
      return ax - bx;
    case 'above':
      return by - ay;
    case 'below':
      return ay - by;
  }
}

/** Position along a direction so that smaller comes first ("first from the right" = largest x). */
function orderKey(b: readonly [number, number, number, number], from: Direction): number {
  const [x, y] = centre(b);
  switch (from) {
    case 'left':
      return x;
    case 'right':
      return -x;
    case 'top':
      return y;
    case 'bottom':
      return -y;
  }
}

/**
 * What a query picks out of a scene:
 * - attribute: the things matching every given word; unique when exactly one does.
 * - spatial: the anchor must be unique by its own words; among the other things matching the
 *   target words exactly one may lie on the named side of the anchor by at least the margin, and
 *   no other may lie on that side at all (so near-ties are refused, not guessed).
 * - ordinal: things matching the target words (at least two) ordered by box centre from the named
 *   side; the one at the rank, provided no other is within the margin of it along that axis.
 * - stuff: the referable pieces of that stuff; without a position there must be one; with one,
 *   the piece furthest towards that side, which must lie in that half of the image and lead every
 *   other piece by at least the margin.
 */
export function resolveQuery(q: RefQuery, graph: SceneGraph): Resolution {
  const margin = positionMargin(graph);
  switch (q.kind) {
    case 'attribute': {
      const matches = graph.things.filter((t) => matchesDescription(t, q.target));
      if (matches.length !== 1)
        return { ok: false, reason: `${matches.length} objects match '${describeThing(q.target)}'` };
      return { ok: true, referent: { type: 'thing', thing: matches[0]! } };
    }
    case 'spatial': {
      const anchor = resolveQuery({ kind: 'attribute', target: q.anchor }, graph);
      if (!anchor.ok) return { ok: false, reason: `anchor: ${anchor.reason}` };
      const a = (anchor.referent as { thing: RefThing }).thing;
      const candidates = graph.things.filter((t) => t !== a && matchesDescription(t, q.target));
      const offsets = candidates.map((t) => relationOffset(t, a, q.relation));
      const clear = candidates.filter((_, k) => offsets[k]! >= margin);
      const onSide = candidates.filter((_, k) => offsets[k]! > 0);
      if (clear.length !== 1 || onSide.length !== 1) {
        return { ok: false, reason: `${clear.length} clear and ${onSide.length} possible matches for the relation` };
      }
      return { ok: true, referent: { type: 'thing', thing: clear[0]! } };
    }
    case 'ordinal': {
      const candidates = graph.things.filter((t) => matchesDescription(t, q.target));
      if (candidates.length < 2)
        return {
          ok: false,
          reason: `${candidates.length} objects match '${describeThing(q.target)}'; an ordinal needs at least 2`,
        };
      if (q.rank > candidates.length)
        return { ok: false, reason: `rank ${q.rank} but only ${candidates.length} candidates` };
      const sorted = [...candidates].sort((s, t) => orderKey(s.bbox, q.from) - orderKey(t.bbox, q.from));
      const ref = sorted[q.rank - 1]!;
      const key = orderKey(ref.bbox, q.from);
      const close = sorted.filter((t) => t !== ref && Math.abs(orderKey(t.bbox, q.from) - key) < margin);
      if (close.length > 0)
        return { ok: false, reason: `${close.length} other candidates within the margin of rank ${q.rank}` };
      return { ok: true, referent: { type: 'thing', thing: ref } };
    }
    case 'stuff': {
      const pieces = graph.pieces.filter((p) => p.stuff === q.stuff);
      if (q.position === undefined) {
        if (pieces.length !== 1) return { ok: false, reason: `${pieces.length} pieces of ${q.stuff}` };
        return { ok: true, referent: { type: 'stuff', piece: pieces[0]! } };
      }
      if (pieces.length === 0) return { ok: false, reason: `no piece of ${q.stuff}` };
      const pos = q.position;
      const sorted = [...pieces].sort((s, t) => orderKey(s.bbox, pos) - orderKey(t.bbox, pos));
      const ref = sorted[0]!;
      const [cx, cy] = centre(ref.bbox);
      const inHalf =
        pos === 'top'
          ? cy < graph.height / 2
          : pos === 'bottom'
            ? cy > graph.height / 2
            : pos === 'left'
              ? cx < graph.width / 2
              : cx > graph.width / 2;
      if (!inHalf) return { ok: false, reason: `the ${q.stuff} furthest ${pos} is not in the ${pos} half` };
      const second = sorted[1];
      if (second !== undefined && orderKey(second.bbox, pos) - orderKey(ref.bbox, pos) < margin) {
        return { ok: false, reason: `two pieces of ${q.stuff} are nearly as far ${pos}` };
      }
      return { ok: true, referent: { type: 'stuff', piece: ref } };
    }
  }
}

/** All words the grammar can produce, for tokenizer vocabularies and tests. */
export function referringVocabulary(): string[] {
  const words = new Set<string>([
    'the',
    'to',
    'of',
    'left',
    'right',
    'above',
    'below',
    'from',
    'top',
    'bottom',
    'at',
    'on',
    ...ORDINALS,
    ...THING_SHAPES,
    ...THING_COLOR_NAMES,
    ...THING_SIZES,
    ...STUFF_KINDS,
  ]);
  return [...words].sort();
}
