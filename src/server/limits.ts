/** What one server accepts; every bound a request can hit, with the answer it gets. */
export interface ServerLimits {
  /** Largest request body in bytes (413). */
  maxRequestBytes: number;
  /**
   * Largest decoded image, width * height, checked on the header before decoding (413). Unset, it
   * follows the model: pixelBudgetFor(its input side).
   */
  maxImagePixels: number;
  /** Most prompts (vocabulary + sentences) in one request (422). */
  maxPrompts: number;
  /** Longest prompt in characters (422). */
  maxPromptLength: number;
  /** Requests that may wait while one runs; more are refused with 503. */
  queueSize: number;
  /** Time from arrival to answer; past it the request is dropped (or its run stopped) with 504. */
  requestTimeoutMs: number;
  /** Most parts in a multipart body (400). */
  maxMultipartParts: number;
  /**
   * On shutdown (SIGTERM), how long requests already taken in are given to finish; new ones get
   * 503 `shutting-down`, and those still unfinished when it ends too.
   */
  shutdownGraceMs: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxRequestBytes: 20 * 1024 * 1024,
  maxImagePixels: 25_000_000,
  maxPrompts: 1000,
  maxPromptLength: 256,
  queueSize: 8,
  requestTimeoutMs: 120_000,
  maxMultipartParts: 64,
  shutdownGraceMs: 30_000,
};

/**
 * The default pixel budget of a model: four times its input side, squared, and at most
 * DEFAULT_LIMITS.maxImagePixels. The network sees every image at its input size, so larger uploads
 * buy no accuracy, only the cost of decoding them and of pasting masks back at full size
 * (1024x1024 for the shipped 256-pixel model, 4096x4096 for APE's 1024).
 */
export function pixelBudgetFor(inputSize: number): number {
  return Math.min(DEFAULT_LIMITS.maxImagePixels, (4 * inputSize) ** 2);
}

/** Fills unset fields with the defaults and checks the given ones are sensible. */
export function resolveLimits(partial: Partial<ServerLimits> = {}): ServerLimits {
  const limits = { ...DEFAULT_LIMITS };
  for (const [key, value] of Object.entries(partial) as [keyof ServerLimits, number | undefined][]) {
    if (value === undefined) continue;
    const min = key === 'queueSize' || key === 'shutdownGraceMs' ? 0 : 1;
    if (!Number.isFinite(value) || !Number.isInteger(value) || value < min) {
      throw new Error(`server limits: ${key} must be an integer >= ${min}, got ${value}`);
    }
    limits[key] = value;
  }
  return limits;
}
