/**
 * `npm run bench -- train [--size 256] [--batch 2] [--steps 8] [--dataset NAME]`: training steps
 * per second of the tiny preset on a synthetic-world mix (detection, semantic, grounding,
 * class-agnostic), and the share of step time in each part: data loading, backbone, encoder,
 * decoder, the rest of the forward (proposals, heads, masks), the criterion, the backward pass and
 * the optimizer update. `--workers 2` splits each batch with a gradient worker thread (the parts
 * are then this thread's half; the worker's run alongside). `--kernels N` then profiles N more
 * steps (tf.profile: per-kernel wall time, this thread only) and lists the kernels and input shapes
 * that take the most time per step.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { initEngine, tf } from '../src/engine/engine.js';
import { writeSynthDataset } from '../src/data/synth/write-dataset.js';
import { parseTrainConfig } from '../src/training/config.js';
import { Trainer } from '../src/training/trainer.js';
import type { BenchResult } from './main.js';

type Timed = { forward: (...args: never[]) => unknown };

/** Wraps `obj.forward` to add its wall time (the wasm backend computes synchronously) to `sink[key]`. */
function timeForward(obj: Timed, key: string, sink: Record<string, number>): void {
  const original = obj.forward.bind(obj) as (...args: unknown[]) => unknown;
  (obj as { forward: (...args: unknown[]) => unknown }).forward = (...args: unknown[]) => {
    const t0 = performance.now();
    try {
      return original(...args);
    } finally {
      sink[key] = (sink[key] ?? 0) + performance.now() - t0;
    }
  };
}

export async function run(argv: string[]): Promise<BenchResult> {
  const { values } = parseArgs({
    args: argv,
    options: {
      size: { type: 'string' },
      batch: { type: 'string' },
      steps: { type: 'string' },
      dataset: { type: 'string' },
      workers: { type: 'string' },
      kernels: { type: 'string' },
      json: { type: 'string' },
    },
  });
  const size = Number(values.size ?? 256);
  const batch = Number(values.batch ?? 2);
  const steps = Number(values.steps ?? 8);
  const workers = Number(values.workers ?? 1);
  await initEngine({ backend: 'wasm' });
  const dir = mkdtempSync(join(tmpdir(), 'ape-bench-train-'));
  await writeSynthDataset(join(dir, 'synth'), { images: 16, seed: 11, size: 256 });
  const all = [
    { name: 'instances', type: 'detection', annotations: 'synth/instances.json', imageRoot: 'synth/images', weight: 1 },
    {
      name: 'semantic',
      type: 'semantic',
      semanticIndex: 'synth/semantic.json',
      imageRoot: 'synth/images',
      weight: 0.5,
    },
    { name: 'grounding', type: 'grounding', annotations: 'synth/grounding.json', imageRoot: 'synth/images', weight: 1 },
    {
      name: 'segments',
      type: 'class-agnostic',
      annotations: 'synth/segments.json',
      imageRoot: 'synth/images',
      weight: 0.5,
    },
  ];
  const datasets = values.dataset ? all.filter((d) => d.name === values.dataset) : all;
  if (datasets.length === 0) throw new Error(`--dataset must be one of ${all.map((d) => d.name).join(', ')}`);
  const json = {
    root: dir,
    output: 'run',
    seed: 1,
    steps: 1000,
    batchSize: batch,
    imageSize: size,
    workers,
    model: { preset: 'tiny', textVocabSize: 4096 },
    datasets,
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(json));
  const config = parseTrainConfig(json, join(dir, 'config.json'));
  const trainer = await Trainer.create(config);
  const parts: Record<string, number> = {};
  timeForward(trainer.network.backbone as unknown as Timed, 'backbone', parts);
  timeForward(trainer.network.transformer.encoder as unknown as Timed, 'encoder', parts);
  timeForward(trainer.network.transformer.decoder as unknown as Timed, 'decoder', parts);

  // Warm-up steps (kernel compilation, first allocations) are not counted.
  for (let i = 0; i < 2; i++) await trainer.trainStep();
  for (const k of Object.keys(parts)) parts[k] = 0;
  const totals = { data: 0, forward: 0, losses: 0, backward: 0, optimizer: 0 };
  const original = trainer.computeGradients.bind(trainer);
  trainer.computeGradients = (b, rng) => {
    const r = original(b, rng);
    totals.forward += r.phaseMs.forward;
    totals.losses += r.phaseMs.losses;
    totals.backward += r.phaseMs.backward;
    return r;
  };
  const used: Record<string, number> = {};
  const t0 = performance.now();
  let computeMs = 0;
  for (let i = 0; i < steps; i++) {
    const r = await trainer.trainStep();
    totals.data += r.dataMs;
    computeMs += r.computeMs;
    for (const d of r.datasets) used[d] = (used[d] ?? 0) + 1;
  }
  const wall = performance.now() - t0;
  totals.optimizer = computeMs - totals.forward - totals.losses - totals.backward;
  const heads = totals.forward - (parts.backbone ?? 0) - (parts.encoder ?? 0) - (parts.decoder ?? 0);
  const breakdown: Record<string, number> = {
    data: totals.data,
    backbone: parts.backbone ?? 0,
    encoder: parts.encoder ?? 0,
    decoder: parts.decoder ?? 0,
    'proposals+heads+masks': heads,
    losses: totals.losses,
    backward: totals.backward,
    optimizer: totals.optimizer,
  };
  const accounted = Object.values(breakdown).reduce((a, b) => a + b, 0);
  const shares = Object.fromEntries(
    Object.entries(breakdown).map(([k, v]) => [k, Math.round((1000 * v) / accounted) / 10]),
  );
  const stepsPerSecond = (1000 * steps) / wall;
  console.log(
    `tiny preset, ${size}x${size}, batch ${batch}, workers ${workers}, ${steps} steps over ${Object.entries(used)
      .map(([k, v]) => `${k} x${v}`)
      .join(', ')}`,
  );
  console.log(
    `${stepsPerSecond.toFixed(3)} steps/s (${(wall / steps / 1000).toFixed(2)} s/step, ${Math.round(stepsPerSecond * batch * 3600)} images/hour)`,
  );
  for (const [k, v] of Object.entries(breakdown))
    console.log(
      `  ${k.padEnd(22)} ${(v / steps).toFixed(0).padStart(6)} ms/step  ${shares[k]!.toFixed(1).padStart(5)}%`,
    );
  console.log(`  tensors alive after the run: ${tf.memory().numTensors}`);
  const kernels = values.kernels ? await profileKernels(trainer, Number(values.kernels)) : undefined;
  await trainer.close();
  rmSync(dir, { recursive: true, force: true });
  return {
    results: {
      size,
      batch,
      workers,
      steps,
      stepsPerSecond,
      secondsPerStep: wall / steps / 1000,
      imagesPerHour: stepsPerSecond * batch * 3600,
      datasetsDrawn: used,
      msPerStep: Object.fromEntries(Object.entries(breakdown).map(([k, v]) => [k, v / steps])),
      sharePercent: shares,
      ...(kernels ? { kernels } : {}),
    },
  };
}

/** Per-step kernel time of `steps` profiled training steps, by kernel name and by kernel + input shapes. */
async function profileKernels(trainer: Trainer, steps: number) {
  const byName = new Map<string, number>();
  const byCall = new Map<string, { ms: number; calls: number }>();
  for (let i = 0; i < steps; i++) {
    const info = await tf.profile(async () => {
      await trainer.trainStep();
    });
    for (const k of info.kernels) {
      const ms = k.kernelTimeMs as number;
      byName.set(k.name, (byName.get(k.name) ?? 0) + ms);
      const key = `${k.name} ${JSON.stringify(k.inputShapes)}`;
      const e = byCall.get(key) ?? { ms: 0, calls: 0 };
      e.ms += ms;
      e.calls++;
      byCall.set(key, e);
    }
  }
  const top = <T>(m: Map<string, T>, ms: (v: T) => number, n: number) =>
    [...m].sort((a, b) => ms(b[1]) - ms(a[1])).slice(0, n);
  const total = [...byName.values()].reduce((a, b) => a + b, 0) / steps;
  console.log(`kernels (${steps} profiled steps): ${total.toFixed(0)} ms/step in kernels`);
  for (const [name, ms] of top(byName, (v) => v, 12))
    console.log(`  ${(ms / steps).toFixed(1).padStart(8)} ms  ${name}`);
  console.log('by input shapes:');
  for (const [key, v] of top(byCall, (v) => v.ms, 15))
    console.log(`  ${(v.ms / steps).toFixed(1).padStart(8)} ms  x${(v.calls / steps).toFixed(1).padEnd(6)} ${key}`);
  return {
    msPerStep: total,
    byKernel: Object.fromEntries(top(byName, (v) => v, 12).map(([k, v]) => [k, v / steps])),
    byCall: top(byCall, (v) => v.ms, 15).map(([key, v]) => ({
      key,
      msPerStep: v.ms / steps,
      callsPerStep: v.calls / steps,
    })),
  };
}
