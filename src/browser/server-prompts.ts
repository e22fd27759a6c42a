/**
 * Prompts encoded by the page's server (`POST /v1/prompts`) for a model whose text tower is too
 * large to run in the page: the server says so in `GET /v1/model` (its `promptEncoding`: the
 * tower's size against the limit it states), holds the tower anyway, and answers each new prompt
 * from its prompt cache and store, encoding only those it never saw. The page keeps the vectors in
 * its own prompt cache, so a prompt costs one request for the page's life; it never downloads the
 * tower's weights or its text export.
 */
import type { PromptTextEncoder } from '../text/prompt-embeddings.js';

/** Where the server says the page should encode prompts (`GET /v1/model`'s promptEncoding), with the request bound that applies. */
export interface ServerPromptEncoding {
  encodeIn: 'page' | 'server';
  /** Bytes of the text tower's weights. */
  textTowerBytes: number;
  /** The largest tower the server tells the page to run itself. */
  pageLimitBytes: number;
  /** The route that encodes prompts (e.g. '/v1/prompts'). */
  url: string;
  /** Most texts in one request (the server's maxPrompts). */
  maxPrompts: number;
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

/**
 * The server's statement at `modelUrl` (its /v1/model), or null where it makes none (an older
 * server, a static page): the page then encodes prompts itself, as before.
 */
export async function fetchPromptEncoding(modelUrl: string): Promise<ServerPromptEncoding | null> {
  try {
    const response = await fetch(modelUrl);
    if (!response.ok) return null;
    const body = (await response.json()) as {
      promptEncoding?: Partial<Record<keyof ServerPromptEncoding, unknown>>;
      limits?: { maxPrompts?: unknown };
    };
    const { encodeIn, textTowerBytes, pageLimitBytes, url } = body.promptEncoding ?? {};
    const maxPrompts = body.limits?.maxPrompts;
    if (
      (encodeIn !== 'page' && encodeIn !== 'server') ||
      !isCount(textTowerBytes) ||
      !isCount(pageLimitBytes) ||
      typeof url !== 'string' ||
      !isCount(maxPrompts) ||
      maxPrompts === 0
    )
      return null;
    return { encodeIn, textTowerBytes, pageLimitBytes, url: new URL(url, modelUrl).href, maxPrompts };
  } catch {
    return null;
  }
}

/** Little-endian float32 values from base64 (the server's `vectors`). */
function float32FromBase64(text: string, what: string): Float32Array {
  const binary = atob(text);
  if (binary.length % 4 !== 0) throw new Error(`${what}: ${binary.length} bytes are not float32 values`);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  const view = new DataView(bytes.buffer);
  const values = new Float32Array(bytes.length / 4);
  for (let i = 0; i < values.length; i++) values[i] = view.getFloat32(i * 4, true);
  return values;
}

/** Asks the server for prompt vectors, at most `maxPrompts` texts a request, checking each answer against the page's model. */
export class ServerPromptEncoder {
  /** Texts sent so far (the page sends only those its prompt cache lacks). */
  sent = 0;

  constructor(
    readonly encoding: ServerPromptEncoding,
    /** The model hash the page's weights and the server's exports carry: the vectors must name it. */
    private readonly modelHash: string,
    /** The width of a prompt vector (the text tower's embedDim). */
    private readonly dim: number,
  ) {}

  /** The vectors of `texts`, one per text, in order. */
  readonly encode: PromptTextEncoder = async (texts, onProgress) => {
    const out: Float32Array[] = [];
    const step = this.encoding.maxPrompts;
    for (let start = 0; start < texts.length; start += step) {
      const chunk = texts.slice(start, start + step);
      out.push(...(await this.request(chunk)));
      this.sent += chunk.length;
      onProgress?.(out.length);
    }
    return out;
  };

  private async request(texts: readonly string[]): Promise<Float32Array[]> {
    const what = `the server's prompt vectors (${this.encoding.url})`;
    const response = await fetch(this.encoding.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ texts }),
    });
    const body = (await response.json().catch(() => null)) as {
      error?: { message?: string };
      model?: { hash?: unknown };
      count?: unknown;
      dim?: unknown;
      vectors?: unknown;
    } | null;
    if (!response.ok)
      throw new Error(
        `${what}: the server answered ${response.status}${body?.error?.message ? `: ${body.error.message}` : ''}`,
      );
    if (body?.model?.hash !== this.modelHash)
      throw new Error(
        `${what} are of other weights (model hash ${String(body?.model?.hash).slice(0, 12)}; this page's model is ${this.modelHash.slice(0, 12)})`,
      );
    if (body.count !== texts.length || body.dim !== this.dim || typeof body.vectors !== 'string')
      throw new Error(
        `${what}: ${String(body.count)} vectors of ${String(body.dim)} values for ${texts.length} texts; this model's are ${this.dim}-d`,
      );
    const values = float32FromBase64(body.vectors, what);
    if (values.length !== texts.length * this.dim)
      throw new Error(`${what}: ${values.length} values, not ${texts.length} x ${this.dim}`);
    return texts.map((_, i) => values.slice(i * this.dim, (i + 1) * this.dim));
  }
}
