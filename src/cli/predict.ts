import { basename, extname, join, resolve } from 'node:path';
import { parseCommandArgs } from './args.js';
import { initEngine } from '../engine/engine.js';
import { readImage, writeImage } from '../io/image-node.js';
import { loadModel } from '../inference/model-files.js';
import { DEFAULT_SCORE_THRESHOLD, type Prediction } from '../inference/results.js';
import { DEFAULT_SEMANTIC_THRESHOLD } from '../inference/semantic-confidence.js';
import { vocabularyWarnings } from '../text/prompt-vocabulary.js';
import { encodePromptsWithProgress } from './encode-prompts.js';
import { exportProgressDisplay } from './export-progress.js';
import { drawInstances } from '../viz/overlay-prediction.js';
import { drawSemantic, semanticAreas } from '../viz/semantic-map.js';
import { predictionToJson, type CocoInstanceJson } from '../inference/prediction-json.js';
import { writeJsonFile } from '../util/write-json.js';
import { imageIdsOf, readCategoryMapping, withDatasetCategories } from './coco-categories.js';
import { UsageError, type Command } from './command.js';
import { PROMPT_ARGS, promptOptions, thresholdOption } from './prompt-options.js';
import { engineOption } from './engine-option.js';
import { expandImageInputs } from './image-inputs.js';
import { freshOutputDir } from './output-dir.js';
import { resolveModelOption, sizeOption } from './model-option.js';

/** All images' instances as one COCO results array, in the output folder. */
export const RESULTS_FILE = 'results.json';

const usage = `usage: ape predict IMAGE|FOLDER... [--vocab "circle,square,grass"] [--sentence "the red star on the left"]...
                   [--prompt "a,b"] [--model DIR|NAME] [--size N] [--threshold ${DEFAULT_SCORE_THRESHOLD}]
                   [--semantic-threshold ${DEFAULT_SEMANTIC_THRESHOLD}] [--out predictions] [--engine ort|tfjs]
  Detects, segments and grounds what the prompts name, one forward pass per image.
  --vocab LIST      category names, comma-separated (each its own prompt)
  --sentence TEXT   a sentence / referring expression (repeatable)
  --prompt TEXT     APE's rule: split on commas; all sentences if any item has a space, else vocabulary
  --model DIR|NAME  model folder (default: the shipped models/default), or a released model by
                    name: ape-ti, ape-l-d (downloaded and converted on first use, see 'ape pull')
  --size N          input size in pixels (long side; default the model's: 1024 for released
                    models, 256 for the shipped one); the encoder's cost grows with N squared
  --threshold T     lowest instance score kept (0-1, default ${DEFAULT_SCORE_THRESHOLD})
  --semantic-threshold T
                    semantic map: pixels whose label scores under T are left unlabelled
                    (0-1, default ${DEFAULT_SEMANTIC_THRESHOLD}; 0 is APE's map, where one prompt labels everything)
  --out DIR         where the results go (default: predictions); a folder that already has
                    results is not overwritten: DIR-2, DIR-3, ... is used instead
  --overwrite       write into --out even when it has results
  --engine E        ort (default: the network on ONNX Runtime, exported on first use for each
                    input size and sentence bucket and cached in MODEL/onnx, or in $APE_HOME/onnx
                    when the model folder is read-only) or tfjs (TF.js on wasm, the reference)
  --categories GT   a COCO ground-truth file: its category names are the vocabulary (unless
                    --vocab is given) and results.json takes its category and image ids (images
                    matched by file name), ready for 'ape eval coco --gt GT --results OUT/results.json'
  A FOLDER gives every image in it (.png, .jpg, .jpeg, .webp); every input is checked first.
  For each image NAME it writes NAME.json (COCO-style instances with RLE masks, semantic segments,
  grounding, warnings), NAME.png (masks, boxes, labels and scores drawn) and NAME.semantic.png
  (colour map with a legend), then results.json (every instance, COCO results), and prints a
  short table per image.`;

/** Output names per image: the file name without extension, made unique by a suffix. */
export function outputStems(paths: readonly string[]): string[] {
  const used = new Map<string, number>();
  return paths.map((p) => {
    const stem = basename(p, extname(p)) || 'image';
    const n = used.get(stem) ?? 0;
    used.set(stem, n + 1);
    return n === 0 ? stem : `${stem}-${n + 1}`;
  });
}

const fmtBox = (b: readonly number[]) => `[${b.map((v) => Math.round(v)).join(', ')}]`;

/** A few lines per image: instances (best first), grounding, semantic shares. */
export function summaryTable(name: string, prediction: Prediction, maxRows = 12): string {
  const lines = [`${name}: ${prediction.width}x${prediction.height}, ${prediction.instances.length} instances`];
  const rows = [...prediction.instances].sort((a, b) => b.score - a.score).slice(0, maxRows);
  if (rows.length > 0) {
    const width = Math.min(32, Math.max(6, ...rows.map((r) => r.prompt.length)));
    lines.push(`  ${'prompt'.padEnd(width)}  kind        score  box [x1, y1, x2, y2]`);
    for (const r of rows)
      lines.push(
        `  ${r.prompt.slice(0, width).padEnd(width)}  ${r.kind.padEnd(10)}  ${r.score.toFixed(3)}  ${fmtBox(r.box)}`,
      );
    if (prediction.instances.length > rows.length)
      lines.push(`  ... ${prediction.instances.length - rows.length} more in the JSON`);
  }
  for (const g of prediction.grounding)
    lines.push(`  grounding "${g.sentence}": ${g.score.toFixed(3)} at ${fmtBox(g.box)}`);
  if (prediction.semantic) {
    const areas = semanticAreas(prediction.semantic).slice(0, 6);
    lines.push(
      `  semantic: ${areas.map((a) => `${a.prompt} ${(a.fraction * 100).toFixed(1)}%`).join(', ') || 'all background'}`,
    );
  }
  return lines.join('\n');
}

async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs({
    args: argv,
    options: {
      ...PROMPT_ARGS,
      model: { type: 'string' },
      size: { type: 'string' },
      threshold: { type: 'string' },
      'semantic-threshold': { type: 'string' },
      out: { type: 'string' },
      engine: { type: 'string' },
      overwrite: { type: 'boolean', default: false },
      categories: { type: 'string' },
    },
    allowPositionals: true,
  });
  if (positionals.length === 0) throw new UsageError('give at least one image (or a folder of images)');
  // Everything is checked before the model loads: inputs, prompts, options, the model folder.
  const images = await expandImageInputs(positionals);
  const categories = values.categories ? await readCategoryMapping(values.categories) : null;
  const imageIds = categories ? imageIdsOf(images, categories) : images.map((_, i) => i + 1);
  const { vocabulary, sentences } = promptOptions(values, categories?.names);
  const engine = engineOption(values.engine);
  const threshold = thresholdOption(values.threshold);
  const semanticThreshold = thresholdOption(
    values['semantic-threshold'],
    'semantic-threshold',
    DEFAULT_SEMANTIC_THRESHOLD,
  );
  const inputSize = sizeOption(values.size);
  const modelDir = await resolveModelOption(values.model);

  await initEngine({ backend: 'wasm' });
  // A first-use export shows its recording and writing as they go (a minute or more for the released models).
  const exportShown = exportProgressDisplay('ape predict');
  const model = await loadModel(modelDir, {
    engine,
    ort: {
      onExport: (message) => {
        exportShown.finish();
        console.error(`ape predict: ${message}`);
      },
      onExportProgress: exportShown.onProgress,
    },
    ...(inputSize !== undefined ? { inputSize } : {}),
  });
  for (const warning of vocabularyWarnings(model.tokenizer, [...vocabulary, ...sentences]))
    console.error(`warning: ${warning}`);
  const wanted = resolve(values.out ?? 'predictions');
  const outDir = await freshOutputDir(wanted, values.overwrite);
  if (outDir !== wanted)
    console.error(
      `ape predict: ${wanted} already has results; writing to ${outDir} (--overwrite writes into ${wanted})`,
    );
  // A first run of a large vocabulary encodes it here, with progress, rather than silently in the first predict.
  await encodePromptsWithProgress(model, [...vocabulary, ...sentences], 'ape predict: encoding prompts');
  // 'results' is taken by results.json: an image of that name becomes results-2.
  const stems = outputStems([RESULTS_FILE, ...images]).slice(1);
  const cocoResults: CocoInstanceJson[] = [];
  for (const [i, path] of images.entries()) {
    const image = await readImage(path);
    const t0 = performance.now();
    const prediction = await model.predict(image, { vocabulary, sentences, threshold, semanticThreshold });
    const ms = performance.now() - t0;
    const stem = stems[i]!;
    const t = model.lastTimings;
    const timing = {
      preprocessMs: Math.round(t.preprocess),
      networkMs: Math.round(t.network),
      postprocessMs: Math.round(t.postprocess),
      totalMs: Math.round(ms),
    };
    const json = { ...predictionToJson(prediction, { id: imageIds[i]!, file: path }), timing };
    cocoResults.push(...(categories ? withDatasetCategories(json.instances, categories) : json.instances));
    await writeJsonFile(join(outDir, `${stem}.json`), json);
    await writeImage(join(outDir, `${stem}.png`), drawInstances(image, prediction, { scoreThreshold: threshold }));
    if (prediction.semantic)
      await writeImage(join(outDir, `${stem}.semantic.png`), drawSemantic(image, prediction.semantic));
    console.log(summaryTable(basename(path), prediction));
    console.log(
      `  ${(ms / 1000).toFixed(2)} s -> ${join(outDir, stem)}.{json,png${prediction.semantic ? ',semantic.png' : ''}}`,
    );
  }
  await writeJsonFile(join(outDir, RESULTS_FILE), cocoResults);
  console.log(
    `ape predict: pictures and JSON for ${images.length} image${images.length === 1 ? '' : 's'} are in ${outDir}; ${RESULTS_FILE} holds every instance as COCO results${categories ? ` with the category and image ids of ${categories.source} (ape eval coco --gt ${categories.source} --results ${join(outDir, RESULTS_FILE)} --type bbox)` : " (category_id = prompt index; --categories GT.json gives a dataset's ids)"}`,
  );
  return 0;
}

export const command: Command = {
  name: 'predict',
  summary: 'detect, segment and ground what text prompts name; writes JSON and pictures',
  usage,
  run,
};
