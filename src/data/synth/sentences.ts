import type { Rng } from '../../util/random.js';
import {
  renderQuery,
  renderRaw,
  resolveQuery,
  type Direction,
  type RefQuery,
  type RefStuffPiece,
  type RefThing,
  type Referent,
  type Relation,
  type SceneGraph,
  type SentenceKind,
  type ThingDescription,
} from './referring.js';

/** A referring sentence together with the one object it names. */
export interface GeneratedSentence {
  kind: SentenceKind;
  query: RefQuery;
  raw: string;
  sent: string;
  referent: Referent;
}

/** Stuff pieces named in sentences must be at least this fraction of the image (smaller ones only count as rivals). */
export const MIN_NAMED_PIECE_FRACTION = 0.02;

const RELATIONS: readonly Relation[] = ['left', 'right', 'above', 'below'];
const DIRECTIONS: readonly Direction[] = ['left', 'right', 'top', 'bottom'];

function namesThing(q: RefQuery, graph: SceneGraph, t: RefThing): boolean {
  const r = resolveQuery(q, graph);
  return r.ok && r.referent.type === 'thing' && r.referent.thing === t;
}

function namesPiece(q: RefQuery, graph: SceneGraph, p: RefStuffPiece): boolean {
  const r = resolveQuery(q, graph);
  return r.ok && r.referent.type === 'stuff' && r.referent.piece === p;
}

/** Descriptions of a thing from fewest to most words. */
function descriptions(t: RefThing): ThingDescription[] {
  return [
    { shape: t.shape },
    { shape: t.shape, color: t.color },
    { shape: t.shape, size: t.size },
    { shape: t.shape, size: t.size, color: t.color },
  ];
}

function wordCount(d: ThingDescription): number {
  return 1 + (d.color !== undefined ? 1 : 0) + (d.size !== undefined ? 1 : 0);
}

function make(query: RefQuery, referent: Referent): GeneratedSentence {
  return { kind: query.kind, query, raw: renderRaw(query), sent: renderQuery(query), referent };
}

/** The shortest description that singles `t` out on its own, if any (ties broken by `rng`). */
function shortestUnique(t: RefThing, graph: SceneGraph, rng: Rng): ThingDescription | undefined {
  const unique = descriptions(t).filter((d) => namesThing({ kind: 'attribute', target: d }, graph, t));
  if (unique.length === 0) return undefined;
  const fewest = Math.min(...unique.map(wordCount));
  return rng.pick(unique.filter((d) => wordCount(d) === fewest));
}

/**
 * Sentences for one scene: for every thing at most one of each kind (attribute, spatial,
 * ordinal), for every stuff piece of at least MIN_NAMED_PIECE_FRACTION of the image at most one
 * stuff sentence. Each is kept only when resolveQuery maps it to exactly that object. Among the
 * valid variants of a kind one is drawn at random; spatial sentences prefer targets whose words
 * alone are ambiguous, so the relation carries information.
 */
export function generateSentences(graph: SceneGraph, rng: Rng): GeneratedSentence[] {
  const out: GeneratedSentence[] = [];
  const anchors = graph.things
    .map((t) => ({ thing: t, words: shortestUnique(t, graph, rng) }))
    .filter((a): a is { thing: RefThing; words: ThingDescription } => a.words !== undefined);

  for (const t of graph.things) {
    const referent: Referent = { type: 'thing', thing: t };

    const attribute = descriptions(t).filter((d) => namesThing({ kind: 'attribute', target: d }, graph, t));
    if (attribute.length > 0) {
      // Mostly the shortest unique wording, sometimes a fuller one (both are true).
      const fewest = Math.min(...attribute.map(wordCount));
      const pool = rng.next() < 0.7 ? attribute.filter((d) => wordCount(d) === fewest) : attribute;
      out.push(make({ kind: 'attribute', target: rng.pick(pool) }, referent));
    }

    const targets = descriptions(t).slice(0, 2);
    const spatialInformative: RefQuery[] = [];
    const spatialRedundant: RefQuery[] = [];
    for (const a of anchors) {
      if (a.thing === t) continue;
      for (const relation of RELATIONS) {
        for (const target of targets) {
          const q: RefQuery = { kind: 'spatial', target, relation, anchor: a.words };
          if (!namesThing(q, graph, t)) continue;
          const alone = namesThing({ kind: 'attribute', target }, graph, t);
          (alone ? spatialRedundant : spatialInformative).push(q);
        }
      }
    }
    if (spatialInformative.length > 0) out.push(make(rng.pick(spatialInformative), referent));
    else if (spatialRedundant.length > 0 && rng.next() < 0.5) out.push(make(rng.pick(spatialRedundant), referent));

    const ordinals: RefQuery[] = [];
    for (const target of targets) {
      for (const from of DIRECTIONS) {
        for (let rank = 1; rank <= 5; rank++) {
          const q: RefQuery = { kind: 'ordinal', target, rank, from };
          if (namesThing(q, graph, t)) ordinals.push(q);
        }
      }
    }
    if (ordinals.length > 0) out.push(make(rng.pick(ordinals), referent));
  }

  const minNamed = MIN_NAMED_PIECE_FRACTION * graph.width * graph.height;
  for (const p of graph.pieces) {
    if (p.area < minNamed) continue;
    const referent: Referent = { type: 'stuff', piece: p };
    const plain: RefQuery = { kind: 'stuff', stuff: p.stuff };
    const positioned = DIRECTIONS.map((position): RefQuery => ({ kind: 'stuff', stuff: p.stuff, position })).filter(
      (q) => namesPiece(q, graph, p),
    );
    if (namesPiece(plain, graph, p) && (positioned.length === 0 || rng.next() < 0.6)) out.push(make(plain, referent));
    else if (positioned.length > 0) out.push(make(rng.pick(positioned), referent));
  }
  return out;
}
