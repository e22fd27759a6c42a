/**
 * `npm run bench -- compact-resume [--kind train|pretrain] [--size 64] [--images 12] [--warm 20]
 * [--steps 30]`: what resuming from a compact checkpoint (8-bit AdamW moments) does to the loss.
 * A run of the tiny preset (with the conv stem and the stride-4 mask level of the planned runs, 50 queries)
 * trains `--warm` steps on a small synthetic world and writes a full checkpoint; three copies then
 * continue for `--steps` more from it: from the full checkpoint (exactly the uninterrupted run),
 * from its compact conversion (`ape checkpoint compact`), and from the weights alone (moments
 * zeroed, as if the optimizer state had not been kept). Prints the three loss trajectories and
 * how far the compact and the weights-only ones are from the full one.
 */
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { initEngine } from '../src/engine/engine.js';
import { writeSynthDataset } from '../src/data/synth/write-dataset.js';
import { checkpointName, listCheckpoints, loadCheckpoint, saveCheckpoint } from '../src/training/checkpoint.js';
import { compactCheckpoint } from '../src/training/compact-checkpoint.js';
import { parseTrainConfig, type TrainConfig } from '../src/training/config.js';
import { parsePretrainConfig } from '../src/training/pretrain/config.js';
import { Pretrainer } from '../src/training/pretrain/pretrainer.js';
import { runTraining, type SteppedRun } from '../src/training/run.js';
import { Trainer } from '../src/training/trainer.js';
import type { BenchResult } from './main.js';

export async function run(argv: string[]): Promise<BenchResult> {
  const { values } = parseArgs({
    args: argv,
    options: {
      kind: { type: 'string' },
      size: { type: 'string' },
      images: { type: 'string' },
      warm: { type: 'string' },
      steps: { type: 'string' },
      json: { type: 'string' },
    },
  });
  const kind = values.kind ?? 'train';
  if (kind !== 'train' && kind !== 'pretrain') throw new Error(`--kind must be train or pretrain, got '${kind}'`);
  const size = Number(values.size ?? 64);
  const images = Number(values.images ?? 12);
  const warm = Number(values.warm ?? 20);
  const steps = Number(values.steps ?? 30);
  await initEngine({ backend: 'wasm' });
  const dir = mkdtempSync(join(tmpdir(), 'ape-bench-compact-'));
  await writeSynthDataset(join(dir, 'synth'), { images, seed: 11, size });
  const configFor = (output: string): TrainConfig => {
    const json: Record<string, unknown> = {
      root: dir,
      output,
      seed: 1,
      steps: warm + steps,
      batchSize: 2,
      imageSize: size,
      model: {
        preset: 'tiny',
        textVocabSize: 512,
        overrides: {
          backbone: { stem: { channels: [32, 64, 128, 128] }, pyramid: { maskOnlyScales: [4] } },
          maskHead: { feature: 'p2' },
          // A 64x64 input has 84 encoder tokens, fewer than the preset's 100 queries.
          transformer: { proposals: { numQueries: 50 } },
        },
      },
      optimizer: { lr: 2e-4, clipNorm: 1 },
      schedule: { warmupSteps: 5, decay: 'constant' },
      checkpoint: { every: 10_000, keep: 1 },
      datasets: [
        { name: 'inst', type: 'detection', annotations: 'synth/instances.json', imageRoot: 'synth/images' },
        { name: 'sem', type: 'semantic', semanticIndex: 'synth/semantic.json', imageRoot: 'synth/images', weight: 0.5 },
        { name: 'ground', type: 'grounding', annotations: 'synth/grounding.json', imageRoot: 'synth/images' },
      ],
    };
    const file = join(dir, `${output}.json`);
    writeFileSync(file, JSON.stringify(json));
    return kind === 'train' ? parseTrainConfig(json, file) : parsePretrainConfig(json, file);
  };
  const train = async (config: TrainConfig, maxSteps?: number): Promise<number[]> => {
    const losses: number[] = [];
    const open =
      kind === 'train'
        ? undefined
        : (log: (l: string) => void) => Pretrainer.create(config as Parameters<typeof Pretrainer.create>[0], log);
    const run = (await runTraining<SteppedRun & { dispose(): void }>(config, {
      progress: false,
      log: () => {},
      maxSteps,
      onStep: (r) => losses.push(r.losses.total!),
      ...(open ? { open } : {}),
    })) as SteppedRun & { dispose(): void };
    run.dispose();
    return losses;
  };

  const t0 = performance.now();
  const base = configFor('base');
  const before = await train(base, warm);
  const [saved] = listCheckpoints(Trainer.checkpointDir(base));
  const source = join(Trainer.checkpointDir(base), saved!.file);

  const full = configFor('full');
  mkdirSync(Trainer.checkpointDir(full), { recursive: true });
  copyFileSync(source, join(Trainer.checkpointDir(full), checkpointName(warm)));
  const compact = configFor('compact');
  const converted = await compactCheckpoint(source, Trainer.checkpointDir(compact), () => {});
  const weightsOnly = configFor('weights-only');
  const checkpoint = await loadCheckpoint(source);
  for (const mv of checkpoint.optimizer.moments.values()) {
    mv.m.fill(0);
    mv.v.fill(0);
  }
  for (const name of Object.keys(checkpoint.optimizerParamSteps)) checkpoint.optimizerParamSteps[name] = 0;
  await saveCheckpoint(Trainer.checkpointDir(weightsOnly), checkpoint, 1);

  const trajectories = {
    full: await train(full),
    compact: await train(compact),
    weightsOnly: await train(weightsOnly),
  };
  const seconds = (performance.now() - t0) / 1000;
  const gap = (xs: number[]) => {
    const d = xs.map((x, i) => Math.abs(x - trajectories.full[i]!) / trajectories.full[i]!);
    return { mean: d.reduce((a, b) => a + b, 0) / d.length, max: Math.max(...d) };
  };
  const stepChange = trajectories.full.slice(1).map((x, i) => Math.abs(x - trajectories.full[i]!) / x);
  const summary = {
    kind,
    size,
    images,
    warm,
    steps,
    checkpointBytes: { full: converted.bytesBefore, compact: converted.bytesAfter },
    directionError: converted.directionError,
    lossBefore: before,
    trajectories,
    compactGap: gap(trajectories.compact),
    weightsOnlyGap: gap(trajectories.weightsOnly),
    meanStepToStepChange: stepChange.reduce((a, b) => a + b, 0) / stepChange.length,
    seconds,
  };
  console.log(
    `${kind}, tiny preset + stem + p2, 50 queries, ${size}x${size}, ${images} images, batch 2: ${warm} steps, then ${steps} from the step-${warm} checkpoint`,
  );
  console.log(
    `checkpoint ${(converted.bytesBefore / 1e6).toFixed(1)} MB full, ${(converted.bytesAfter / 1e6).toFixed(1)} MB compact; update direction within ${(100 * converted.directionError).toFixed(2)}%`,
  );
  console.log('step   full     compact  weights-only');
  trajectories.full.forEach((x, i) =>
    console.log(
      `${String(warm + i + 1).padStart(4)}  ${x.toFixed(4)}  ${trajectories.compact[i]!.toFixed(4)}  ${trajectories.weightsOnly[i]!.toFixed(4)}`,
    ),
  );
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  console.log(
    `relative gap to full: compact mean ${pct(summary.compactGap.mean)}, max ${pct(summary.compactGap.max)}; weights-only mean ${pct(summary.weightsOnlyGap.mean)}, max ${pct(summary.weightsOnlyGap.max)}; the full run's own step-to-step change ${pct(summary.meanStepToStepChange)} (${seconds.toFixed(0)} s)`,
  );
  return { results: summary };
}
