/** The library's public surface. */
export { initEngine, tf } from './engine/engine.js';
export type { BackendName, EngineOptions } from './engine/engine.js';
