/** `ape/server` (Node): the HTTP API and the web page. */
export { createApeServer } from './server/app.js';
export type { ApeServerOptions, ApeServer } from './server/app.js';
export { DEFAULT_LIMITS } from './server/limits.js';
export type { ServerLimits } from './server/limits.js';
