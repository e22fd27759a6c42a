/**
 * The body of `POST /v1/prompts`: `{"texts": ["a cat", ...]}`, the prompts whose vectors a page
 * asks for because it does not hold the model's text tower. Bounded as predict's prompts are (the
 * count, each text's length); every text is encoded exactly as sent (no trimming, no splitting at
 * commas), so the page can key its prompt cache by what it sent.
 */
import { HttpError } from './http-error.js';
import type { ServerLimits } from './limits.js';
import { checkPromptLengths, parseJsonObject, promptItem } from './predict-request.js';

const FIELDS = ['texts'];

/** The texts of a prompts request, checked: 400 naming the field, 415 for another content type, 422 past a limit. */
export function parsePromptsRequest(body: Buffer, contentType: string | undefined, limits: ServerLimits): string[] {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json')
    throw new HttpError(
      415,
      'unsupported-content-type',
      `Content-Type '${type || '(none)'}' is not accepted; send application/json: {"texts": ["...", ...]}`,
    );
  const o = parseJsonObject(body);
  for (const key of Object.keys(o))
    if (!FIELDS.includes(key))
      throw new HttpError(400, 'unknown-field', `unknown field '${key.slice(0, 60)}' (fields: ${FIELDS.join(', ')})`);
  const { texts } = o;
  if (!Array.isArray(texts)) throw new HttpError(400, 'bad-field', "field 'texts' must be a list of strings");
  if (texts.length === 0) throw new HttpError(422, 'no-prompts', "field 'texts' is empty: give at least one prompt");
  if (texts.length > limits.maxPrompts)
    throw new HttpError(422, 'too-many-prompts', `${texts.length} texts, more than the limit of ${limits.maxPrompts}`);
  const checked = texts.map((text: unknown, i) => promptItem(text, 'texts', i));
  checkPromptLengths(checked, 'texts', limits);
  return checked;
}
