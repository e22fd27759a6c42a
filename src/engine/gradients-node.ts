/**
 * tfjs-core 4.22 ships its gradient functions only as unbundled ES modules
 * (dist/register_all_gradients.js and dist/gradients/*) whose relative imports lack the ".js"
 * extension; the CommonJS bundle that Node loads has none of them, and the umbrella
 * @tensorflow/tfjs package (which would register them) is not a dependency. Training loads them
 * here through a resolve hook that adds the extension for files inside tfjs-core/dist only.
 * The second copy of tfjs-core modules this loads shares the engine and the gradient registry
 * with the bundle through tfjs's global namespace, so registration reaches the running engine.
 * Training code imports this lazily (Trainer.create), so importing the library registers nothing.
 */
import { register } from 'node:module';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';
import { registerCoreGradientFixes } from './core-gradient-fixes.js';

const HOOKS = `
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
export async function resolve(specifier, context, next) {
  if (specifier.startsWith('.') && !specifier.endsWith('.js') && context.parentURL?.includes('/@tensorflow/tfjs-core/dist/')) {
    const url = new URL(specifier + '.js', context.parentURL);
    if (existsSync(fileURLToPath(url))) return next(url.href, context);
  }
  return next(specifier, context);
}`;

const coreMain = createRequire(import.meta.url).resolve('@tensorflow/tfjs-core');
const registerAll = pathToFileURL(join(dirname(coreMain), 'register_all_gradients.js')).href;
register(`data:text/javascript,${encodeURIComponent(HOOKS)}`);
await import(registerAll);
// The stock set replaces the engine's fixed gradients (broadcast matMul, ...); put them back.
registerCoreGradientFixes();
