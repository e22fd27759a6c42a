/**
 * An error that becomes an HTTP answer: a status, a short machine-readable code and a message
 * meant for the person who sent the request (what was wrong, and the limit where one applies).
 */
export class HttpError extends Error {
  override name = 'HttpError';

  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Extra response headers (`Allow` on a 405). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** The JSON body every error answer carries. */
export function errorBody(error: HttpError): { error: { status: number; code: string; message: string } } {
  return { error: { status: error.status, code: error.code, message: error.message } };
}
