import { parsePromptString } from '../text/prompts.js';
import { parseDecimal } from '../util/decimal.js';
import { HttpError } from './http-error.js';
import type { ServerLimits } from './limits.js';
import { multipartBoundary, parseMultipart } from './multipart.js';
import { splitSentences, splitVocabulary } from '../text/prompt-fields.js';

/** A predict request once its body is read and checked; the image is still encoded. */
export interface PredictRequest {
  image: Uint8Array;
  /** Where the image came from, for messages ("upload 'cat.png'"). */
  imageName: string;
  vocabulary: string[];
  sentences: string[];
  threshold?: number;
  /** Semantic pixels whose label scores under this are unlabelled (default DEFAULT_SEMANTIC_THRESHOLD). */
  semanticThreshold?: number;
}

const unprocessable = (code: string, message: string) => new HttpError(422, code, message);

function parseThreshold(value: unknown, field = 'threshold'): number | undefined {
  if (value === undefined || value === null || (typeof value === 'string' && value.trim() === '')) return undefined;
  const n = typeof value === 'number' ? value : typeof value === 'string' ? parseDecimal(value) : NaN;
  if (!Number.isFinite(n) || n < 0 || n > 1)
    throw unprocessable(
      field === 'threshold' ? 'bad-threshold' : 'bad-semantic-threshold',
      `${field} must be a number from 0 to 1, got ${JSON.stringify(value)}`,
    );
  return n;
}

/** Characters as people count them (code points): an emoji is one, not two UTF-16 units. */
function codePointCount(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/** Checks the prompt lists against the limits; the comma-rule prompt string is already merged in. */
export function checkPrompts(vocabulary: string[], sentences: string[], limits: ServerLimits): void {
  const total = vocabulary.length + sentences.length;
  if (total === 0)
    throw unprocessable('no-prompts', 'give at least one prompt: vocabulary (category names), sentences, or prompt');
  if (total > limits.maxPrompts)
    throw unprocessable('too-many-prompts', `${total} prompts, more than the limit of ${limits.maxPrompts}`);
  checkPromptLengths(vocabulary, 'vocabulary', limits);
  checkPromptLengths(sentences, 'sentences', limits);
}

/** Refuses (422) the first text of `list` longer than the limit, naming it as `field[i]`. */
export function checkPromptLengths(list: readonly string[], field: string, limits: ServerLimits): void {
  list.forEach((text, i) => {
    const length = codePointCount(text);
    if (length > limits.maxPromptLength) {
      throw unprocessable(
        'prompt-too-long',
        `${field}[${i}] is ${length} characters, more than the limit of ${limits.maxPromptLength}`,
      );
    }
  });
}

function withPromptString(vocabulary: string[], sentences: string[], prompt: string | undefined): void {
  if (prompt === undefined || prompt.trim() === '') return;
  const parsed = parsePromptString(prompt);
  vocabulary.push(...parsed.vocabulary);
  sentences.push(...parsed.sentences);
}

const FORM_FIELDS = new Set([
  'image',
  'vocabulary',
  'sentences',
  'sentence',
  'prompt',
  'threshold',
  'semanticThreshold',
]);

function fromMultipart(body: Buffer, contentType: string, limits: ServerLimits): PredictRequest {
  const parts = parseMultipart(body, multipartBoundary(contentType), { maxParts: limits.maxMultipartParts });
  let image: PredictRequest['image'] | undefined;
  let imageName = 'upload';
  const vocabulary: string[] = [];
  const sentences: string[] = [];
  let prompt: string | undefined;
  let threshold: number | undefined;
  let semanticThreshold: number | undefined;
  for (const part of parts) {
    if (!FORM_FIELDS.has(part.name))
      throw new HttpError(
        400,
        'unknown-field',
        `unknown form field '${part.name.slice(0, 60)}' (fields: image, vocabulary, sentences, prompt, threshold, semanticThreshold)`,
      );
    if (part.name === 'image') {
      if (image !== undefined)
        throw new HttpError(400, 'bad-field', 'more than one image field; send one image per request');
      image = part.data;
      if (part.filename) imageName = `upload '${part.filename.slice(0, 100)}'`;
      continue;
    }
    const text = part.data.toString('utf8');
    if (part.name === 'vocabulary') vocabulary.push(...splitVocabulary(text));
    else if (part.name === 'sentences' || part.name === 'sentence') sentences.push(...splitSentences(text));
    else if (part.name === 'prompt') prompt = prompt === undefined ? text : `${prompt},${text}`;
    else if (part.name === 'semanticThreshold') semanticThreshold = parseThreshold(text, 'semanticThreshold');
    else threshold = parseThreshold(text);
  }
  if (image === undefined || image.length === 0)
    throw new HttpError(400, 'no-image', "the form has no 'image' file (or it is empty)");
  withPromptString(vocabulary, sentences, prompt);
  checkPrompts(vocabulary, sentences, limits);
  return {
    image,
    imageName,
    vocabulary,
    sentences,
    ...(threshold !== undefined ? { threshold } : {}),
    ...(semanticThreshold !== undefined ? { semanticThreshold } : {}),
  };
}

function stringList(value: unknown, field: string): string[] {
  if (value === undefined || value === null) return [];
  if (typeof value === 'string') return field === 'vocabulary' ? splitVocabulary(value) : splitSentences(value);
  if (!Array.isArray(value)) throw new HttpError(400, 'bad-field', `${field} must be a list of strings`);
  return value.map((item, i) => promptItem(item, field, i).trim());
}

/** Item i of a list of prompts, as sent: 400 when it is not a string, 422 when it is blank. */
export function promptItem(item: unknown, field: string, i: number): string {
  if (typeof item !== 'string')
    throw new HttpError(
      400,
      'bad-field',
      `${field}[${i}] must be a string, got ${item === null ? 'null' : typeof item}`,
    );
  if (item.trim().length === 0) throw unprocessable('empty-prompt', `${field}[${i}] is empty`);
  return item;
}

/** Characters outside base64 (digits, padding, whitespace); single-character classes scan linearly. */
const NOT_BASE64 = /[^A-Za-z0-9+/=\t\n\v\f\r ]/;
const NOT_WHITESPACE = /[^\t\n\v\f\r ]/;

/**
 * Base64 digits and whitespace, then at most two '=' and whitespace. The field is outside input of
 * up to the body limit, checked on the HTTP thread, so this must be linear: the regular expression
 * it replaces (`^[A-Za-z0-9+/\s]*={0,2}\s*$`) backtracked quadratically on a long whitespace run
 * ended by an invalid character and stalled the server.
 */
export function isBase64(text: string): boolean {
  if (NOT_BASE64.test(text)) return false;
  const padding = text.indexOf('=');
  if (padding < 0) return true;
  const rest = text.charCodeAt(padding + 1) === 0x3d ? padding + 2 : padding + 1;
  return !NOT_WHITESPACE.test(text.slice(rest));
}

/** A JSON request body that must be an object (400 `bad-json` otherwise). */
export function parseJsonObject(body: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new HttpError(400, 'bad-json', `the body is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new HttpError(400, 'bad-json', 'the body must be a JSON object');
  return value as Record<string, unknown>;
}

function fromJson(body: Buffer, limits: ServerLimits): PredictRequest {
  const o = parseJsonObject(body);
  for (const key of Object.keys(o)) {
    if (!FORM_FIELDS.has(key))
      throw new HttpError(
        400,
        'unknown-field',
        `unknown field '${key.slice(0, 60)}' (fields: image, vocabulary, sentences, prompt, threshold, semanticThreshold)`,
      );
  }
  if (typeof o.image !== 'string' || o.image.length === 0)
    throw new HttpError(
      400,
      'no-image',
      "field 'image' must be the image file as a base64 string (a data: URL is fine)",
    );
  const encoded = o.image.startsWith('data:') ? o.image.slice(o.image.indexOf(',') + 1) : o.image;
  if (!isBase64(encoded)) throw new HttpError(400, 'bad-image-encoding', "field 'image' is not base64");
  const image = Buffer.from(encoded, 'base64');
  if (image.length === 0) throw new HttpError(400, 'no-image', "field 'image' decodes to zero bytes");
  if (o.prompt !== undefined && typeof o.prompt !== 'string')
    throw new HttpError(400, 'bad-field', 'prompt must be a string');
  const vocabulary = stringList(o.vocabulary, 'vocabulary');
  const sentences = stringList(o.sentences ?? o.sentence, 'sentences');
  withPromptString(vocabulary, sentences, o.prompt as string | undefined);
  checkPrompts(vocabulary, sentences, limits);
  const threshold = parseThreshold(o.threshold);
  const semanticThreshold = parseThreshold(o.semanticThreshold, 'semanticThreshold');
  return {
    image,
    imageName: 'upload',
    vocabulary,
    sentences,
    ...(threshold !== undefined ? { threshold } : {}),
    ...(semanticThreshold !== undefined ? { semanticThreshold } : {}),
  };
}

/** Reads a predict request body by its Content-Type: multipart/form-data or application/json. */
export function parsePredictRequest(
  body: Buffer,
  contentType: string | undefined,
  limits: ServerLimits,
): PredictRequest {
  const header = contentType ?? '';
  const type = header.split(';')[0]!.trim().toLowerCase();
  if (type === 'multipart/form-data') return fromMultipart(body, header, limits);
  if (type === 'application/json') return fromJson(body, limits);
  throw new HttpError(
    415,
    'unsupported-content-type',
    `Content-Type '${type || '(none)'}' is not accepted; send multipart/form-data or application/json`,
  );
}
