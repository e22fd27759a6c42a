/**
 * Settings read from outside (a training config, a model folder's config.json, a run's model
 * overrides) checked against a template of the same shape: one walk for all of them, so that a
 * new setting is added to its template (its preset, its defaults) alone.
 */

export interface MergeRules {
  /**
   * A field the value lacks: filled from the template ('default') or an error ('error'). With
   * 'error', fields whose template value is null (optional settings, off by default) may be
   * missing and stay absent.
   */
  missing: 'default' | 'error';
  /** A key the template lacks: an error ('error', typos would silently do nothing) or kept ('keep'). */
  unknown: 'error' | 'keep';
  /** Dotted paths whose contents are taken as given (free-form maps, unions that their owner checks); an object must still be an object. */
  freeForm?: readonly string[];
  /** Dotted paths that may be null where the template holds a value. */
  nullable?: readonly string[];
}

/** Reports a problem at a dotted path ('' is the whole value); never returns. */
export type MergeFail = (path: string, why: string) => never;

/** JSON of a value for an error message, cut short. */
export function showValue(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * `value` checked against `template` and completed from it: objects are walked key by key, lists
 * must be lists, every other value must have the template's type; a template value of null takes
 * any value (its owner checks it). Returns a new object; the template is not shared.
 */
export function checkedMerge<T>(template: T, value: unknown, rules: MergeRules, fail: MergeFail): T {
  const at = (t: unknown, v: unknown, path: string): unknown => {
    if (t === null) return v;
    if (v === null) {
      if (rules.nullable?.includes(path)) return null;
      return fail(path, `must be ${describeKind(t)}, got null`);
    }
    if (Array.isArray(t)) return Array.isArray(v) ? v : fail(path, `must be a list, got ${showValue(v)}`);
    if (!isPlainObject(t))
      return typeof v === typeof t ? v : fail(path, `must be ${describeKind(t)}, got ${showValue(v)}`);
    if (!isPlainObject(v)) return fail(path, `must be an object, got ${showValue(v)}`);
    if (path !== '' && rules.freeForm?.includes(path)) return v;
    const out: Record<string, unknown> = {};
    for (const [key, tv] of Object.entries(t)) {
      const sub = path === '' ? key : `${path}.${key}`;
      if (key in v) out[key] = at(tv, v[key], sub);
      else if (rules.missing === 'default') out[key] = structuredClone(tv);
      else if (tv !== null) fail(sub, 'is missing');
    }
    for (const [key, vv] of Object.entries(v)) {
      if (key in t) continue;
      const sub = path === '' ? key : `${path}.${key}`;
      if (rules.unknown === 'keep' || rules.freeForm?.includes(sub)) out[key] = vv;
      else fail(sub, 'is not a known setting');
    }
    return out;
  };
  return at(template, value, '') as T;
}

function describeKind(t: unknown): string {
  if (Array.isArray(t)) return 'a list';
  return isPlainObject(t) ? 'an object' : `a ${typeof t}`;
}
