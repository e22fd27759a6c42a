/**
 * `npm run bench -- released [--vision-depth N] [--text-layers N] [--skip-forward]
 * [--forward-size N] [--forward-runs N] [--stand-in-text] [--keep]`:
 * released-weights handling.
 * 1. Conversion memory: writes a synthetic `torch.save` checkpoint in the released APE-D layout
 *    (EVA-02 ViT-L-width blocks in float32, an EVA02-CLIP-E-width text tower in float16 with its
 *    49408 x 1280 token table, shared class_embed / RoPE storages, int64 buffers, an optimizer
 *    and scheduler that must be skipped) of a few hundred MB in the temp folder, then converts it
 *    to safetensors in a child process and reports the child's peak RSS, against a child that
 *    only loads the same code (baseline) and one that reads every tensor at once (naive).
 * 2. Forward time of `ape-ti` at 1024x1024 (`--forward-size`) on wasm with random weights of the
 *    real shapes, per phase, with peak allocations: the real text tower encodes the prompts on
 *    its own first and is disposed (`--stand-in-text`: random prompt vectors instead), then the
 *    detector runs with them as embeddings (see forwardTimes); `--skip-forward` leaves it out.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { crc32 } from 'node:zlib';
import { PickleBytes, emitTensor, type TensorSpec } from '../test/io/torch-test-writer.js';
import { option } from './options.js';

const here = fileURLToPath(new URL('.', import.meta.url));

// ---------------------------------------------------------------- a streaming torch.save writer

interface Written {
  name: string;
  offset: number;
  size: number;
  crc: number;
}

/** Writes stored zip entries one at a time (64-byte aligned data, zip64 records), as torch does. */
class TorchZipWriter {
  private readonly fd: number;
  private position = 0;
  private readonly written: Written[] = [];

  constructor(
    path: string,
    private readonly prefix = 'archive',
  ) {
    this.fd = openSync(path, 'w');
  }

  add(name: string, data: Uint8Array): void {
    const full = new TextEncoder().encode(`${this.prefix}/${name}`);
    const base = this.position + 30 + full.length + 4;
    const pad = (64 - (base % 64)) % 64;
    const header = new Uint8Array(30 + full.length + 4 + pad);
    const v = new DataView(header.buffer);
    const crc = crc32(data) >>> 0;
    v.setUint32(0, 0x04034b50, true);
    v.setUint16(4, 45, true);
    v.setUint32(14, crc, true);
    v.setUint32(18, Math.min(data.byteLength, 0xffffffff), true);
    v.setUint32(22, Math.min(data.byteLength, 0xffffffff), true);
    v.setUint16(26, full.length, true);
    v.setUint16(28, 4 + pad, true);
    header.set(full, 30);
    v.setUint16(30 + full.length, 0x4246, true);
    v.setUint16(32 + full.length, pad, true);
    this.written.push({ name: `${this.prefix}/${name}`, offset: this.position, size: data.byteLength, crc });
    this.write(header);
    this.write(data);
  }

  finish(): void {
    const enc = new TextEncoder();
    const cdStart = this.position;
    for (const w of this.written) {
      const name = enc.encode(w.name);
      const c = new Uint8Array(46 + name.length + 28);
      const v = new DataView(c.buffer);
      v.setUint32(0, 0x02014b50, true);
      v.setUint16(4, 45, true);
      v.setUint16(6, 45, true);
      v.setUint32(16, w.crc, true);
      v.setUint32(20, 0xffffffff, true);
      v.setUint32(24, 0xffffffff, true);
      v.setUint16(28, name.length, true);
      v.setUint16(30, 28, true);
      v.setUint32(42, 0xffffffff, true);
      c.set(name, 46);
      const x = 46 + name.length;
      v.setUint16(x, 1, true);
      v.setUint16(x + 2, 24, true);
      v.setBigUint64(x + 4, BigInt(w.size), true);
      v.setBigUint64(x + 12, BigInt(w.size), true);
      v.setBigUint64(x + 20, BigInt(w.offset), true);
      this.write(c);
    }
    const cdSize = this.position - cdStart;
    const tail = new Uint8Array(56 + 20 + 22);
    const v = new DataView(tail.buffer);
    v.setUint32(0, 0x06064b50, true);
    v.setBigUint64(4, 44n, true);
    v.setUint16(12, 45, true);
    v.setUint16(14, 45, true);
    v.setBigUint64(24, BigInt(this.written.length), true);
    v.setBigUint64(32, BigInt(this.written.length), true);
    v.setBigUint64(40, BigInt(cdSize), true);
    v.setBigUint64(48, BigInt(cdStart), true);
    v.setUint32(56, 0x07064b50, true);
    v.setBigUint64(64, BigInt(this.position), true);
    v.setUint32(72, 1, true);
    v.setUint32(76, 0x06054b50, true);
    v.setUint16(84, 0xffff, true);
    v.setUint16(86, 0xffff, true);
    v.setUint32(88, 0xffffffff, true);
    v.setUint32(92, 0xffffffff, true);
    this.write(tail);
    closeSync(this.fd);
  }

  private write(bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.byteLength)
      done += writeSync(this.fd, bytes, done, bytes.byteLength - done, this.position + done);
    this.position += bytes.byteLength;
  }
}

// ---------------------------------------------------------------- the synthetic checkpoint

interface SyntheticTensor {
  key: string;
  shape: number[];
  dtype: 'F32' | 'F16' | 'I64';
  storage?: string;
}

/** Keys and shapes in the released APE-D layout, at ViT-L / EVA02-CLIP-E widths, with `visionDepth` and `textLayers` blocks. */
function syntheticLayout(visionDepth: number, textLayers: number): SyntheticTensor[] {
  const t: SyntheticTensor[] = [];
  const add = (key: string, shape: number[], dtype: SyntheticTensor['dtype'] = 'F32', storage?: string) =>
    t.push({ key, shape, dtype, storage });
  const v = 'model_vision.backbone.net.';
  const dim = 1024;
  const hidden = 2730;
  add(`${v}pos_embed`, [1, 442, dim]);
  add(`${v}patch_embed.proj.weight`, [dim, 3, 16, 16]);
  add(`${v}patch_embed.proj.bias`, [dim]);
  add(`${v}rope_win.freqs_cos`, [1024, 64]);
  add(`${v}rope_win.freqs_sin`, [1024, 64]);
  add(`${v}rope_glb.freqs_cos`, [4096, 64]);
  add(`${v}rope_glb.freqs_sin`, [4096, 64]);
  for (let b = 0; b < visionDepth; b++) {
    const p = `${v}blocks.${b}.`;
    const rope = b % 3 === 2 ? 'rope_glb' : 'rope_win';
    add(`${p}norm1.weight`, [dim]);
    add(`${p}norm1.bias`, [dim]);
    add(`${p}attn.q_bias`, [dim]);
    add(`${p}attn.v_bias`, [dim]);
    for (const m of ['q_proj', 'k_proj', 'v_proj']) add(`${p}attn.${m}.weight`, [dim, dim]);
    add(`${p}attn.rope.freqs_cos`, rope === 'rope_glb' ? [4096, 64] : [1024, 64], 'F32', `${v}${rope}.freqs_cos`);
    add(`${p}attn.rope.freqs_sin`, rope === 'rope_glb' ? [4096, 64] : [1024, 64], 'F32', `${v}${rope}.freqs_sin`);
    add(`${p}attn.inner_attn_ln.weight`, [dim]);
    add(`${p}attn.inner_attn_ln.bias`, [dim]);
    add(`${p}attn.proj.weight`, [dim, dim]);
    add(`${p}attn.proj.bias`, [dim]);
    add(`${p}norm2.weight`, [dim]);
    add(`${p}norm2.bias`, [dim]);
    add(`${p}mlp.w1.weight`, [hidden, dim]);
    add(`${p}mlp.w1.bias`, [hidden]);
    add(`${p}mlp.w2.weight`, [hidden, dim]);
    add(`${p}mlp.w2.bias`, [hidden]);
    add(`${p}mlp.ffn_ln.weight`, [hidden]);
    add(`${p}mlp.ffn_ln.bias`, [hidden]);
    add(`${p}mlp.w3.weight`, [dim, hidden]);
    add(`${p}mlp.w3.bias`, [dim]);
  }
  for (const [level, convIn] of [
    [4, 256],
    [5, 1024],
  ] as const) {
    const p = `model_vision.backbone.simfp_${level}.`;
    add(`${p}0.weight`, [256, convIn, 1, 1]);
    add(`${p}0.norm.weight`, [256]);
    add(`${p}0.norm.bias`, [256]);
    add(`${p}1.weight`, [256, 256, 3, 3]);
    add(`${p}1.norm.weight`, [256]);
    add(`${p}1.norm.bias`, [256]);
  }
  const a = 'model_vision.transformer.encoder.layers.0.attentions.0.';
  add(`${a}sampling_offsets.weight`, [320, 256]);
  add(`${a}sampling_offsets.bias`, [320]);
  add(`${a}attention_weights.weight`, [160, 256]);
  add(`${a}attention_weights.bias`, [160]);
  add(`${a}value_proj.weight`, [256, 256]);
  add(`${a}output_proj.weight`, [256, 256]);
  add('model_vision.transformer.level_embeds', [5, 256]);
  for (const [k, s] of [
    ['log_scale', [1]],
    ['bias_lang', [1024]],
    ['bias0', [1]],
    ['dot_product_projection_text.weight', [256, 1024]],
    ['dot_product_projection_text.bias', [256]],
  ] as const) {
    add(`model_vision.transformer.decoder.class_embed.0.${k}`, [...s]);
    add(`model_vision.class_embed.0.${k}`, [...s], 'F32', `model_vision.transformer.decoder.class_embed.0.${k}`);
  }
  add('model_vision.name_prompt_fusion_feature', [1, 1, 1024]);
  add('model_vision.criterion.0.fed_loss_cls_weights', [1203]);
  add('model_vision.criterion.0.fed_loss_pad_classes', [50], 'I64');
  const l = 'model_vision.model_language.net.';
  const w = 1280;
  add(`${l}logit_scale`, [], 'F16');
  add(`${l}text.positional_embedding`, [77, w], 'F16');
  add(`${l}text.text_projection`, [w, 1024], 'F16');
  add(`${l}text.token_embedding.weight`, [49408, w], 'F16');
  for (let b = 0; b < textLayers; b++) {
    const p = `${l}text.transformer.resblocks.${b}.`;
    add(`${p}ln_1.weight`, [w], 'F16');
    add(`${p}ln_1.bias`, [w], 'F16');
    add(`${p}attn.in_proj_weight`, [3 * w, w], 'F16');
    add(`${p}attn.in_proj_bias`, [3 * w], 'F16');
    add(`${p}attn.out_proj.weight`, [w, w], 'F16');
    add(`${p}attn.out_proj.bias`, [w], 'F16');
    add(`${p}ln_2.weight`, [w], 'F16');
    add(`${p}ln_2.bias`, [w], 'F16');
    add(`${p}mlp.c_fc.weight`, [4 * w, w], 'F16');
    add(`${p}mlp.c_fc.bias`, [4 * w], 'F16');
    add(`${p}mlp.c_proj.weight`, [w, 4 * w], 'F16');
    add(`${p}mlp.c_proj.bias`, [w], 'F16');
  }
  add(`${l}text.ln_final.weight`, [w], 'F16');
  add(`${l}text.ln_final.bias`, [w], 'F16');
  return t;
}

const storageType = { F32: 'FloatStorage', F16: 'HalfStorage', I64: 'LongStorage' } as const;
const elementSize = { F32: 4, F16: 2, I64: 8 } as const;

/** Deterministic filler values: small floats (or valid float16 bits), so nothing is all-zero. */
function fill(dtype: SyntheticTensor['dtype'], n: number, seed: number): Uint8Array {
  let s = (seed * 2654435761) >>> 0 || 1;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
  if (dtype === 'F32') {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = (next() / 2 ** 32 - 0.5) * 0.1;
    return new Uint8Array(a.buffer);
  }
  if (dtype === 'F16') {
    const a = new Uint16Array(n);
    for (let i = 0; i < n; i++) a[i] = 0x2000 + (next() >>> 20); // magnitudes 2^-7 .. 2^-3, both signs below
    for (let i = 0; i < n; i += 2) a[i]! |= 0x8000;
    return new Uint8Array(a.buffer);
  }
  return new Uint8Array(BigInt64Array.from({ length: n }, (_, i) => BigInt(i)).buffer);
}

/** Writes the checkpoint; returns its size, the model's tensor bytes and the largest model tensor's bytes. */
function writeSyntheticCheckpoint(
  path: string,
  layout: SyntheticTensor[],
): { fileBytes: number; modelBytes: number; largestBytes: number; keys: number } {
  const zip = new TorchZipWriter(path);
  const specs = new Map<string, TensorSpec>();
  let storage = 0;
  let modelBytes = 0;
  let largestBytes = 0;
  const numel = (s: number[]) => s.reduce((x, y) => x * y, 1);
  for (const t of layout) {
    if (t.storage) {
      specs.set(t.key, { ...specs.get(t.storage)! });
      continue;
    }
    const n = numel(t.shape);
    const key = String(storage++);
    zip.add(`data/${key}`, fill(t.dtype, n, storage));
    specs.set(t.key, { storage: key, storageType: storageType[t.dtype], numel: n, shape: t.shape });
    modelBytes += n * elementSize[t.dtype];
    largestBytes = Math.max(largestBytes, n * elementSize[t.dtype]);
  }
  // Optimizer state for the two largest vision matrices (AdamW exp_avg / exp_avg_sq): never to be read.
  const optimizer: TensorSpec[] = [];
  for (let i = 0; i < 4; i++) {
    const key = String(storage++);
    zip.add(`data/${key}`, fill('F32', 2730 * 1024, 1000 + i));
    optimizer.push({ storage: key, storageType: 'FloatStorage', numel: 2730 * 1024, shape: [2730, 1024] });
  }
  const p = new PickleBytes().proto(2).emptyDict().mark();
  p.str('model').global('collections', 'OrderedDict').emptyTuple().reduce().mark();
  for (const t of layout) {
    p.str(t.key);
    emitTensor(p, specs.get(t.key)!);
  }
  p.setitems();
  p.str('optimizer').emptyDict().str('state').emptyDict();
  for (let i = 0; i < 2; i++) {
    p.int(i).emptyDict().str('exp_avg');
    emitTensor(p, optimizer[2 * i]!);
    p.setitem().str('exp_avg_sq');
    emitTensor(p, optimizer[2 * i + 1]!);
    p.setitem().setitem();
  }
  p.setitem().str('param_groups').emptyList().emptyDict().str('lr').float(2e-4).setitem().append().setitem();
  p.str('scheduler').emptyDict().str('last_epoch').int(1080000).setitem();
  p.str('iteration').int(1080000);
  zip.add('data.pkl', p.setitems().stop().bytes());
  zip.add('version', new TextEncoder().encode('3\n'));
  zip.finish();
  return { fileBytes: statSync(path).size, modelBytes, largestBytes, keys: layout.length };
}

// ---------------------------------------------------------------- child processes

interface ChildResult {
  maxRssBytes: number;
  seconds: number;
  [k: string]: unknown;
}

function child(mode: string, ...args: string[]): ChildResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(here, 'released.ts'), '--child', mode, ...args], {
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
  if (r.status !== 0) throw new Error(`child '${mode}' failed (${r.status}):\n${r.stderr}`);
  const line = r.stdout.trim().split('\n').pop()!;
  return JSON.parse(line) as ChildResult;
}

async function childMain(mode: string, args: string[]): Promise<void> {
  const { convertTorchCheckpoint } = await import('../src/convert/convert-checkpoint.js');
  const { readTorchCheckpoint } = await import('../src/io/torch/checkpoint.js');
  const { releasedTargets } = await import('../src/convert/released-mapping.js');
  const t0 = performance.now();
  const out: Record<string, unknown> = {};
  if (mode === 'convert') {
    const report = await convertTorchCheckpoint(args[0]!, args[1]!, {
      targets: (key, info) => releasedTargets(key, info.shape.length),
    });
    Object.assign(out, { used: report.used.length, unused: report.unused.length, outputBytes: report.bytes });
  } else if (mode === 'naive') {
    const all = await readTorchCheckpoint(args[0]!, { upcastHalf: true });
    out.tensors = all.size;
  } else if (mode === 'forward') {
    Object.assign(
      out,
      await forwardTimes(Number(args[0]), Number(args[1]), args[2] === 'stand-in' ? 'stand-in' : 'real'),
    );
  } else if (mode !== 'baseline') {
    throw new Error(`unknown child mode ${mode}`);
  }
  out.seconds = (performance.now() - t0) / 1000;
  out.maxRssBytes = process.resourceUsage().maxRSS * 1024;
  console.log(JSON.stringify(out));
}

/**
 * Tracks the wasm heap bytes that TF.js allocates from JavaScript (every tensor buffer and the
 * kernel patches' scratch buffers) by wrapping the module's malloc/free: `peak()` is the most
 * held at once since `reset()`. `heapBytes()` is the wasm memory's size, which only grows, in
 * large steps up to the 4 GB cap: an upper bound that includes the allocator's overhead,
 * fragmentation and XNNPACK's internal allocations (which do not pass through the wrapper).
 */
async function wasmHeapTracker() {
  const { tf } = await import('../src/engine/engine.js');
  const wasm = (
    tf.backend() as unknown as { wasm: { _malloc(n: number): number; _free(p: number): void; HEAPU8: Uint8Array } }
  ).wasm;
  // Emscripten's exports replace themselves with the raw function on first call: settle both first.
  tf.ones([1]).dispose();
  const sizes = new Map<number, number>();
  let live = 0;
  let peak = 0;
  const malloc = wasm._malloc.bind(wasm);
  const free = wasm._free.bind(wasm);
  // Offsets past 2 GB come back from malloc as negative int32; the backend frees them unsigned.
  wasm._malloc = (n: number) => {
    const ptr = malloc(n);
    sizes.set(ptr >>> 0, n);
    live += n;
    if (live > peak) peak = live;
    return ptr;
  };
  wasm._free = (ptr: number) => {
    live -= sizes.get(ptr >>> 0) ?? 0;
    sizes.delete(ptr >>> 0);
    free(ptr);
  };
  return {
    reset: () => {
      peak = live;
    },
    peak: () => peak,
    live: () => live,
    heapBytes: () => wasm.HEAPU8.buffer.byteLength,
  };
}

/**
 * ape-ti's forward at size x size with random weights of the real shapes, in one wasm heap:
 * 1. with `textTower` 'real', the EVA02-CLIP-E text tower (32 layers, width 1280, 694 M
 *    parameters, 2.8 GB of float32) is built on its own, encodes the prompts (fixed token ids:
 *    there is no tokenizer file in the bench) and is disposed: in use prompts are encoded once
 *    and served from the prompt cache, and the tower's weights cannot share the 4 GB heap with
 *    the detector's activations at 1024;
 * 2. the detector is built with a one-layer stand-in text tower of the same output width (the
 *    forward never runs it: the prompts come in as embeddings) and runs `runs` forwards with the
 *    encoded prompts as sentences, timed per phase.
 * With `textTower` 'stand-in' step 1 is left out and the prompts are random vectors.
 */
async function forwardTimes(
  size: number,
  runs: number,
  textTower: 'real' | 'stand-in',
): Promise<Record<string, unknown>> {
  const { initEngine, tf } = await import('../src/engine/engine.js');
  const { ApeNetwork } = await import('../src/modeling/ape-network.js');
  const { APE_PRESETS } = await import('../src/modeling/config.js');
  const { ClipTextEncoder } = await import('../src/text/clip-text-transformer.js');
  const { Rng } = await import('../src/util/random.js');
  await initEngine({ backend: 'wasm' });
  const heap = await wasmHeapTracker();
  const config = APE_PRESETS['ape-ti']();
  const out: Record<string, unknown> = { textTower };
  const ms = (t: number) => Number(t.toFixed(0));

  let prompt: import('@tensorflow/tfjs-core').Tensor2D;
  if (textTower === 'real') {
    const t0 = performance.now();
    const tower = new ClipTextEncoder(config.text.encoder, new Rng(3));
    const built = performance.now();
    // Two sentences of 6 and 9 tokens: start, word ids, end (49406 / 49407), zero padding.
    const ids = [
      [49406, 320, 736, 1615, 525, 49407],
      [49406, 518, 2533, 1929, 593, 518, 3351, 1823, 49407],
    ].map((row) => [...row, ...new Array<number>(77 - row.length).fill(0)]);
    const encoded = tower.forward(ids, { pooling: config.text.pooling });
    encoded.attentionMask.dispose();
    const values = encoded.embeddings.dataSync() as Float32Array;
    const encodedAt = performance.now();
    encoded.embeddings.dispose();
    out.text = {
      params: tower.parameterCount(),
      buildSeconds: Number(((built - t0) / 1000).toFixed(1)),
      encodeTwoPromptsMs: ms(encodedAt - built),
      peakAllocatedMb: mb(heap.peak()),
      heapMb: mb(heap.heapBytes()),
    };
    tower.dispose();
    prompt = tf.tensor2d(values, [2, config.text.encoder.embedDim]);
    out.afterTextDisposedAllocatedMb = mb(heap.live());
  } else {
    prompt = tf.randomNormal(
      [2, config.text.encoder.embedDim],
      0,
      1,
      'float32',
      2,
    ) as import('@tensorflow/tfjs-core').Tensor2D;
  }

  config.text.encoder = { ...config.text.encoder, vocabSize: 1024, width: 64, heads: 1, layers: 1 };
  const enc = config.text.encoder;
  const sizes = {
    vocabSize: enc.vocabSize,
    contextLength: enc.contextLength,
    sot: enc.vocabSize - 2,
    eot: enc.vocabSize - 1,
    tokenize(): number[][] {
      throw new Error('the forward benchmark passes prompt embeddings');
    },
  };
  heap.reset();
  const t0 = performance.now();
  const net = new ApeNetwork(config, sizes, 0);
  out.buildSeconds = Number(((performance.now() - t0) / 1000).toFixed(1));
  out.weightsMb = mb(heap.live());
  const images = tf.randomUniform([1, size, size, 3], 0, 255, 'float32', 1) as import('@tensorflow/tfjs-core').Tensor4D;
  const forwards: Record<string, number>[] = [];
  for (let i = 0; i < runs; i++) {
    // The forward writes each phase's time as the phase ends: the peak allocation of that phase
    // is read (and the tracker reset) at the same moment.
    const peaks: Record<string, number> = {};
    const timings = new Proxy({} as Record<string, number>, {
      set(target, phase: string, value: number) {
        target[phase] = value;
        peaks[`${phase}PeakMb`] = mb(heap.peak());
        heap.reset();
        return true;
      },
    });
    heap.reset();
    const t = performance.now();
    const result = net.forward({ images, sizes: [[size, size]] }, { extraSentenceEmbeddings: prompt }, { timings });
    await result.layers[result.layers.length - 1]!.logits.data();
    const total = performance.now() - t;
    result.dispose();
    forwards.push({
      totalMs: ms(total),
      ...Object.fromEntries(Object.entries(timings).map(([k, v]) => [`${k}Ms`, ms(v)])),
      ...peaks,
    });
  }
  out.forwards = forwards;
  out.detectorPeakAllocatedMb = Math.max(
    ...forwards.flatMap((f) =>
      Object.entries(f)
        .filter(([k]) => k.endsWith('PeakMb'))
        .map(([, v]) => v),
    ),
  );
  out.heapMb = mb(heap.heapBytes());
  out.visionParams = net.parameterCount() - net.language.parameterCount();
  return out;
}

// ---------------------------------------------------------------- the benchmark

const MB = 1024 * 1024;
const mb = (b: number) => Number((b / MB).toFixed(1));

export async function run(argv: string[]): Promise<{ results: Record<string, unknown> }> {
  const opt = (name: string, fallback: number) => Number(option(argv, name, String(fallback)));
  const visionDepth = opt('--vision-depth', 6);
  const textLayers = opt('--text-layers', 2);
  const dir = mkdtempSync(join(tmpdir(), 'ape-released-bench-'));
  const results: Record<string, unknown> = {};
  try {
    const ckpt = join(dir, 'model_final.pth');
    const t0 = performance.now();
    const made = writeSyntheticCheckpoint(ckpt, syntheticLayout(visionDepth, textLayers));
    console.log(
      `synthetic checkpoint: ${mb(made.fileBytes)} MB, ${made.keys} model keys, model tensors ${mb(made.modelBytes)} MB, largest ${mb(made.largestBytes)} MB (written in ${((performance.now() - t0) / 1000).toFixed(1)} s)`,
    );
    const baseline = child('baseline');
    const convert = child('convert', ckpt, join(dir, 'model.safetensors'));
    const naive = child('naive', ckpt);
    console.log(
      `peak RSS: baseline ${mb(baseline.maxRssBytes)} MB; streaming conversion ${mb(convert.maxRssBytes)} MB (${convert.seconds.toFixed(1)} s, wrote ${mb(convert.outputBytes as number)} MB float32); reading everything at once ${mb(naive.maxRssBytes)} MB`,
    );
    Object.assign(results, {
      checkpoint_mb: mb(made.fileBytes),
      checkpoint_model_tensor_mb: mb(made.modelBytes),
      checkpoint_largest_tensor_mb: mb(made.largestBytes),
      converted_f32_mb: mb(convert.outputBytes as number),
      baseline_peak_rss_mb: mb(baseline.maxRssBytes),
      convert_peak_rss_mb: mb(convert.maxRssBytes),
      convert_peak_above_baseline_mb: mb(convert.maxRssBytes - baseline.maxRssBytes),
      convert_seconds: Number(convert.seconds.toFixed(2)),
      read_all_peak_rss_mb: mb(naive.maxRssBytes),
      read_all_seconds: Number(naive.seconds.toFixed(2)),
    });
    if (!argv.includes('--skip-forward')) {
      const size = opt('--forward-size', 1024);
      const runs = opt('--forward-runs', 2);
      const textTower = argv.includes('--stand-in-text') ? 'stand-in' : 'real';
      try {
        const f = child('forward', String(size), String(runs), textTower);
        const text = f.text as Record<string, number> | undefined;
        if (text) {
          console.log(
            `EVA02-CLIP-E text tower alone (${text.params} parameters): built in ${text.buildSeconds} s, 2 prompts encoded in ${text.encodeTwoPromptsMs} ms; peak allocated ${text.peakAllocatedMb} MB, wasm heap ${text.heapMb} MB; disposed (${f.afterTextDisposedAllocatedMb} MB left allocated)`,
          );
        }
        const forwards = f.forwards as Record<string, number>[];
        for (const [i, r] of forwards.entries()) {
          console.log(
            `ape-ti forward ${size}x${size} (wasm) run ${i + 1}: ${(r.totalMs! / 1000).toFixed(1)} s = backbone ${r.backboneMs} + prompts ${r.promptsMs} + encoder ${r.encoderMs} + decoder ${r.decoderMs} + heads ${r.headsMs} ms${i === 0 ? ' (includes warm-up)' : ''}; peak allocated per phase (MB, weights included): backbone ${r.backbonePeakMb}, encoder ${r.encoderPeakMb}, decoder ${r.decoderPeakMb}, heads ${r.headsPeakMb}`,
          );
        }
        console.log(
          `detector: ${f.visionParams} parameters outside the text tower (${f.weightsMb} MB), peak allocated ${f.detectorPeakAllocatedMb} MB, wasm heap ${f.heapMb} MB at the end; peak RSS ${mb(f.maxRssBytes)} MB`,
        );
        Object.assign(results, {
          [`ape_ti_forward_${size}`]: {
            textTower,
            ...Object.fromEntries(Object.entries(f).filter(([k]) => k !== 'textTower')),
          },
          [`ape_ti_forward_${size}_seconds`]: forwards.map((r) => Number((r.totalMs! / 1000).toFixed(1))),
          [`ape_ti_forward_${size}_peak_rss_mb`]: mb(f.maxRssBytes),
          ape_ti_vision_params: f.visionParams,
        });
      } catch (err) {
        const lines = (err as Error).message.split('\n');
        const message = lines.find((l) => /^\w*Error: /.test(l)) ?? lines[0]!;
        console.log(`ape-ti forward ${size}x${size} (wasm) failed: ${message}`);
        results[`ape_ti_forward_${size}_error`] = message;
      }
    }
  } finally {
    if (!argv.includes('--keep')) rmSync(dir, { recursive: true, force: true });
    else console.log(`kept ${dir}`);
  }
  return { results };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf('--child');
  if (i >= 0) await childMain(process.argv[i + 1]!, process.argv.slice(i + 2));
}
