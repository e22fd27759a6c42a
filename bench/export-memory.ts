/**
 * `npm run bench -- export-memory [--dir DIR] [--sizes 512,1024] [--prompts 0x1,14x0] [--modes whole,detector,thread,text-whole,text] [--keep]`:
 * the memory of making APE-Ti's ONNX exports with its REAL text tower's shapes (EVA02-CLIP-E,
 * 694 M parameters, 2.78 GB of ape-ti's 3.09 GB), random weights (no released checkpoint here).
 * Each row runs in a child process of its own and reports its wasm heap (the heap only grows, so
 * its size at the end is its peak), its peak RSS, CPU and wall time, and whether it finished:
 * - whole: the way exports were made before (`ape export`, predict's first use): the whole model
 *   loaded into the wasm heap, the network's forward recorded beside it, weights read from the engine;
 * - detector: exportNetworkFromFiles, what `ape export` does now: the detector alone (the text
 *   tower placeholders), zero weights of the right shapes, weights read from the checkpoint;
 * - thread: predict's first use now: the whole model loaded in the process's own heap (as
 *   `loadModel` on ort holds it), the export made in a thread of its own (ExportThreads); the
 *   thread's heap is reported beside the main one;
 * - text-whole / text: the text tower's export (18 graphs, 2.78 GB weights file) from the whole
 *   loaded model (before) and from the tower alone, weights from the checkpoint (now).
 * Network rows run for each input size and prompt shape (VxS: V vocabulary prompts and S sentence
 * rows; 0x1 is predict's export for one sentence, 14x0 `ape export`'s default).
 * The model folder (3.09 GB) is made once in DIR (default: the temp folder) and kept with --keep.
 * Several GB of memory per row: not a unit test.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync, writeSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { option } from './options.js';

const here = fileURLToPath(new URL('.', import.meta.url));

type Mode = 'whole' | 'detector' | 'thread' | 'text-whole' | 'text';
const MODES: Mode[] = ['whole', 'detector', 'thread', 'text-whole', 'text'];

interface RowResult {
  mode: Mode;
  size: number | null;
  /** Vocabulary prompts and sentence rows of the network's export (VxS). */
  prompts?: string;
  ok: boolean;
  error?: string;
  wallS: number;
  cpuS: number;
  peakRssMb: number;
  wasmHeapMb: number;
  /** thread: the export thread's own heap. */
  threadWasmHeapMb?: number;
  exportMb?: number;
}

/** Writes the ape-ti model folder with the real text tower (random weights, F32), a tensor at a time. */
export async function makeModelFolder(dir: string): Promise<void> {
  const { initEngine } = await import('../src/engine/engine.js');
  const { APE_PRESETS } = await import('../src/modeling/config.js');
  const { ApeNetwork } = await import('../src/modeling/ape-network.js');
  const { withParameterValues } = await import('../src/nn/module.js');
  const { modelConfigFile, tokenizerFileName, CONFIG_FILE, WEIGHTS_FILE } = await import(
    '../src/inference/model-folder.js'
  );
  const { loadClipTokenizer } = await import('../src/text/clip-vocab-file.js');
  const { BUNDLED_CLIP_VOCAB } = await import('../src/text/bundled-vocab.js');
  const { encodeHeader } = await import('../src/io/safetensors.js');
  const { writeJsonFile } = await import('../src/util/write-json.js');
  await initEngine();
  const config = APE_PRESETS['ape-ti']();
  mkdirSync(dir, { recursive: true });
  copyFileSync(BUNDLED_CLIP_VOCAB, join(dir, tokenizerFileName(config)));
  const tokenizer = await loadClipTokenizer(BUNDLED_CLIP_VOCAB, { contextLength: config.text.encoder.contextLength });
  // Placeholders would lose the shapes: zeros (3.09 GB of the heap) give them, then are freed.
  const network = withParameterValues('zeros', () => new ApeNetwork(config, tokenizer));
  const shapes = [...network.namedParameters()].map(([name, v]) => ({ name, shape: v.shape }));
  network.dispose();
  const header: Record<string, unknown> = { __metadata__: { format: 'ape', config: config.name } };
  let offset = 0;
  for (const { name, shape } of shapes) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 4;
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const head = encodeHeader(header);
  const path = join(dir, WEIGHTS_FILE);
  const fd = openSync(`${path}.partial`, 'w');
  try {
    writeSync(fd, head);
    // xorshift32, uniform in [-0.05, 0.05): random weights (their values do not change an export's graph).
    let state = 0x9e3779b9;
    for (const { shape } of shapes) {
      const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
      for (let i = 0; i < values.length; i++) {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        values[i] = ((state >>> 0) / 2 ** 32 - 0.5) * 0.1;
      }
      writeSync(fd, new Uint8Array(values.buffer));
    }
  } finally {
    closeSync(fd);
  }
  (await import('node:fs')).renameSync(`${path}.partial`, path);
  await writeJsonFile(join(dir, CONFIG_FILE), modelConfigFile(config), 2);
  console.log(`made ${dir}: ${shapes.length} tensors, ${(offset / 1e9).toFixed(2)} GB`);
}

/** One row, in this (child) process. */
async function measure(
  mode: Mode,
  dir: string,
  size: number,
  prompts: string,
): Promise<Omit<RowResult, 'wallS' | 'cpuS' | 'peakRssMb'>> {
  const { initEngine, tf } = await import('../src/engine/engine.js');
  const { loadModel } = await import('../src/inference/model-files.js');
  const { exportNetworkFromFiles, exportTextTowerFromFiles } = await import('../src/inference/export-from-files.js');
  const { ExportThreads } = await import('../src/inference/export-thread.js');
  const { exportNetwork } = await import('../src/onnx/export-network.js');
  const { exportTextTower, textExportShape } = await import('../src/onnx/text-export.js');
  const { pendingNetworkExport, pendingTextExport } = await import('../src/onnx/pending-export.js');
  const { parseModelConfig } = await import('../src/inference/model-folder.js');
  const { readFileSync } = await import('node:fs');
  await initEngine();
  const heapMb = () => {
    const backend = tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } };
    return Math.round(backend.wasm.HEAPU8.buffer.byteLength / 2 ** 20);
  };
  const out = join(tmpdir(), `ape-export-memory-${process.pid}`);
  const [vocabulary, sentences] = prompts.split('x').map(Number) as [number, number];
  const shape = { size, vocabulary, sentences };
  const config = parseModelConfig(readFileSync(join(dir, 'config.json'), 'utf8'));
  const textShape = textExportShape(config.text.encoder.contextLength);
  let threadWasmHeapMb: number | undefined;
  try {
    let pending: import('../src/onnx/pending-export.js').PendingExport;
    if (mode === 'detector') {
      pending = pendingNetworkExport(await exportNetworkFromFiles({ dir, config }, shape, 'bench'));
    } else if (mode === 'text') {
      pending = pendingTextExport(await exportTextTowerFromFiles({ dir, config }, textShape, 'bench'));
    } else {
      const model = await loadModel(dir, { engine: 'tfjs', promptCache: false });
      if (mode === 'whole') pending = pendingNetworkExport(exportNetwork(model, shape, 'bench'));
      else if (mode === 'text-whole')
        pending = pendingTextExport(
          exportTextTower(
            model.language.net,
            config.text.pooling,
            textShape,
            { name: config.name, hash: 'bench' },
            {
              externalData: true,
            },
          ),
        );
      else {
        const made = await new ExportThreads({ dir, config: model.config }).network(shape, 'bench');
        threadWasmHeapMb = Math.round(
          (made as import('../src/inference/export-thread.js').ThreadExport).memory.wasmHeapBytes / 2 ** 20,
        );
        pending = made;
      }
    }
    await pending.write(out);
    pending.release();
    return {
      mode,
      size,
      ok: true,
      wasmHeapMb: heapMb(),
      exportMb: Math.round(pending.bytes / 1e6),
      ...(threadWasmHeapMb !== undefined ? { threadWasmHeapMb } : {}),
    };
  } catch (e) {
    return { mode, size, ok: false, error: (e as Error).message.slice(0, 300), wasmHeapMb: heapMb() };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

function child(mode: Mode, dir: string, size: number, prompts: string): RowResult {
  const started = performance.now();
  const r = spawnSync(
    'bash',
    [
      '-c',
      `exec /usr/bin/time -f '@rss %M @cpu %U %S' "$@"`,
      'time',
      process.execPath,
      '--import',
      'tsx',
      join(here, 'export-memory.ts'),
      '--child',
      mode,
      dir,
      String(size),
      prompts,
    ],
    { encoding: 'utf8', maxBuffer: 1 << 26, cwd: join(here, '..') },
  );
  const wallS = (performance.now() - started) / 1000;
  const usage = /@rss (\d+) @cpu ([\d.]+) ([\d.]+)/.exec(r.stderr);
  const peakRssMb = usage ? Math.round(Number(usage[1]) / 1024) : -1;
  const cpuS = usage ? Number(usage[2]) + Number(usage[3]) : -1;
  const last = r.stdout.trim().split('\n').at(-1) ?? '';
  const base = {
    ...(mode.startsWith('text') ? {} : { prompts }),
    wallS: Math.round(wallS * 10) / 10,
    cpuS: Math.round(cpuS * 10) / 10,
    peakRssMb,
  };
  if (!last.startsWith('{'))
    // A wasm heap that ran out may end the process itself (an abort) before it can answer.
    return {
      mode,
      size,
      ok: false,
      error: `exit ${r.status}: ${r.stderr
        .trim()
        .split('\n')
        .filter((l) => !l.startsWith('@rss'))
        .slice(-3)
        .join(' | ')
        .slice(0, 300)}`,
      wasmHeapMb: -1,
      ...base,
    };
  return { ...(JSON.parse(last) as RowResult), ...base };
}

export async function run(argv: string[]): Promise<{ results: Record<string, unknown> }> {
  const dir = option(argv, '--dir', join(tmpdir(), 'ape-ti-real-text'));
  const sizes = option(argv, '--sizes', '512,1024').split(',').map(Number);
  const modes = option(argv, '--modes', MODES.join(',')).split(',') as Mode[];
  const promptShapes = option(argv, '--prompts', '0x1,14x0').split(',');
  for (const p of promptShapes)
    if (!/^\d+x\d+$/.test(p) || p === '0x0') throw new Error(`--prompts: '${p}' is not VxS (e.g. 0x1, 14x0)`);
  for (const m of modes) if (!MODES.includes(m)) throw new Error(`--modes: unknown mode '${m}' (${MODES.join(', ')})`);
  if (!existsSync(join(dir, 'model.safetensors'))) await makeModelFolder(dir);
  const rows: RowResult[] = [];
  for (const mode of modes) {
    const text = mode.startsWith('text');
    for (const prompts of text ? ['0x0'] : promptShapes)
      for (const size of text ? [0] : sizes) {
        const row = child(mode, dir, size, prompts);
        console.log(JSON.stringify(row));
        rows.push(row);
      }
  }
  if (!argv.includes('--keep')) rmSync(dir, { recursive: true, force: true });
  return { results: { model: 'ape-ti, real text tower shapes (random weights)', rows } };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf('--child');
  if (i >= 0) {
    const [mode, dir, size, prompts] = process.argv.slice(i + 1);
    console.log(JSON.stringify(await measure(mode as Mode, dir!, Number(size), prompts!)));
    process.exit(0);
  }
}
