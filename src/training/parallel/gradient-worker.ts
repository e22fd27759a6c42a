/**
 * A gradient worker thread: its own TF.js wasm backend and copy of the network. It receives the
 * current weights and half a batch, and returns that half's gradients, so two threads use both
 * cores (Node's wasm backend is single-threaded).
 */
import { parentPort } from 'node:worker_threads';
import '../../engine/gradients-node.js';
import { initEngine, tf } from '../../engine/engine.js';
import { ApeModel } from '../../inference/ape-model.js';
import { WordTokenizer } from '../../text/word-tokenizer.js';
import { Rng } from '../../util/random.js';
import { batchGradients } from '../batch-gradients.js';
import type { CriterionConfig } from '../criterion.js';
import type { FromWorker, ToWorker } from './protocol.js';

if (!parentPort) throw new Error('gradient-worker: must run in a worker thread');
const port = parentPort;

let network: ApeModel | null = null;
let trainable = new Map<string, tf.Variable>();
let criterion: CriterionConfig | null = null;

function assign(params: Array<[string, Float32Array]>, all: Map<string, tf.Variable>): void {
  for (const [name, data] of params) {
    const v = all.get(name);
    if (!v) throw new Error(`gradient-worker: unknown parameter '${name}'`);
    tf.tidy(() => v.assign(tf.tensor(data, v.shape)));
  }
}

port.on('message', async (message: ToWorker) => {
  try {
    if (message.type === 'init') {
      await initEngine({ backend: 'wasm' });
      network = new ApeModel(message.modelConfig, WordTokenizer.fromJSON(message.tokenizer, 'trainer tokenizer'), 0);
      const all = network.namedParameters();
      assign(message.params, all);
      const trained = new Set(message.trained);
      trainable = new Map([...all].filter(([name]) => trained.has(name)));
      criterion = message.criterion;
      port.postMessage({ type: 'ready' } satisfies FromWorker);
      return;
    }
    if (!network || !criterion) throw new Error('gradient-worker: step before init');
    if (message.params) assign(message.params, trainable);
    const r = batchGradients(network, trainable, message.batch, message.negatives, criterion, new Rng(message.seed));
    const grads = [...r.grads];
    port.postMessage(
      {
        type: 'result',
        grads,
        losses: r.losses,
        phaseMs: r.phaseMs,
        numTensors: tf.memory().numTensors,
      } satisfies FromWorker,
      grads.map(([, g]) => g.buffer as ArrayBuffer),
    );
  } catch (err) {
    port.postMessage({
      type: 'error',
      message: (err as Error).message,
      stack: (err as Error).stack,
    } satisfies FromWorker);
  }
});
