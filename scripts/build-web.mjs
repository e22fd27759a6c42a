#!/usr/bin/env node
// Bundles the web page (src/browser/web/app.ts and, as chunks loaded on demand, the in-browser
// model and onnxruntime-web) with esbuild and copies the page's static files next to it. `npm run build` runs it.
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const STATIC_FILES = ['index.html', 'style.css'];

/** Builds the page into `outDir` (default dist/web); returns the files written. */
export async function buildWeb({ outDir = join(root, 'dist', 'web'), minify = true } = {}) {
  const { build } = await import('esbuild');
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  const result = await build({
    entryPoints: { app: join(root, 'src', 'browser', 'web', 'app.ts') },
    outdir: outDir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022'],
    minify,
    sourcemap: 'linked',
    chunkNames: 'chunk-[hash]',
    legalComments: 'linked',
    metafile: true,
    // onnxruntime-web's builds that load their wasm runtime (.mjs + .wasm) from env.wasm.wasmPaths
    // (the server's /v1/ort/) rather than carrying the .mjs inside the bundle.
    conditions: ['onnxruntime-web-use-extern-wasm'],
    logLevel: 'warning',
  });
  for (const name of STATIC_FILES) await copyFile(join(root, 'src', 'browser', 'web', name), join(outDir, name));
  return [...Object.keys(result.metafile.outputs), ...STATIC_FILES.map((n) => join(outDir, n))];
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const outDir = process.argv[2];
  const files = await buildWeb(outDir ? { outDir } : {});
  console.log(`build-web: ${files.length} files in ${outDir ?? 'dist/web'}`);
}
