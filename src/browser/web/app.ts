/**
 * The web page: pick an image, type category names and sentences, see masks, boxes, labels and
 * the semantic map drawn by the same viz code the CLI uses. The model runs on the server
 * (POST /v1/predict) or, switched, inside the page (loaded on first use): the network on
 * onnxruntime-web (WebGPU or wasm) or on TF.js wasm, the prompts on the same engine, or by the
 * server where its text tower is too large for the page.
 */
import type { RgbImage } from '../../io/image-types.js';
import { decodeImage, toImageData } from '../../io/image-browser.js';
import { DEFAULT_SCORE_THRESHOLD, type Prediction } from '../../inference/results.js';
import { drawOverlays } from '../../viz/overlay.js';
import { drawInstances, promptColor } from '../../viz/overlay-prediction.js';
import { drawSemantic, semanticAreas } from '../../viz/semantic-map.js';
import { resizeNearest } from '../../viz/image.js';
import { predictionFromJson, type PredictionJson } from '../../inference/prediction-json.js';
import { splitSentences, splitVocabulary } from '../../text/prompt-fields.js';
import type { BrowserEngine, InBrowserModel } from '../in-browser.js';
import { required } from '../../util/checked.js';

type Mode = 'server' | 'browser';

interface State {
  image: RgbImage | null;
  /** The encoded file, sent as is to the server. */
  file: Blob | null;
  fileName: string;
  json: PredictionJson | null;
  prediction: Prediction | null;
  mode: Mode;
  /** What runs the network in the page. */
  engine: BrowserEngine;
  /** Where the shown result was computed, in words (the timing line says it). */
  ranOn: string;
  browserModel: Promise<InBrowserModel> | null;
  busy: boolean;
  /** The object under the mouse in a table (its box and prompt), drawn highlighted. */
  hover: { box: [number, number, number, number]; promptIndex: number } | null;
}

const state: State = {
  image: null,
  file: null,
  fileName: '',
  json: null,
  prediction: null,
  mode: 'server',
  engine: 'ort',
  ranOn: '',
  browserModel: null,
  busy: false,
  hover: null,
};

function $(id: string): HTMLElement {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page: #${id} is missing`);
  return el;
}
const input = (id: string) => $(id) as HTMLInputElement;
const canvas = $('canvas') as HTMLCanvasElement;

function setState(name: 'idle' | 'loading' | 'running' | 'done' | 'error'): void {
  document.body.dataset.state = name;
}

function message(text: string, isError = false): void {
  const el = $('message');
  el.textContent = text;
  el.classList.toggle('error', isError);
}

function cssColor(index: number): string {
  const [r, g, b] = promptColor(index);
  return `rgb(${r}, ${g}, ${b})`;
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<HTMLElementTagNameMap[K]> = {},
  children: (Node | string)[] = [],
): HTMLElementTagNameMap[K] {
  const el = Object.assign(document.createElement(tag), props);
  el.append(...children);
  return el;
}

function swatch(index: number): HTMLSpanElement {
  const s = element('span', { className: 'swatch' });
  s.style.background = cssColor(index);
  return s;
}

const scoreThreshold = () => Number(input('score').value);
const semanticThreshold = () => Number(input('semantic-threshold').value);

/** The prediction's warnings (prompt words the model does not know) above the results, or nothing. */
function showWarnings(warnings: readonly string[]): void {
  const box = $('warnings');
  box.textContent = warnings.join('\n');
  box.hidden = warnings.length === 0;
}

/** Upscaling for display: small images are enlarged (whole pixels) so labels stay crisp. */
function displayScale(image: RgbImage): number {
  return Math.max(1, Math.min(4, Math.floor(800 / Math.max(image.width, image.height))));
}

/** The prediction's boxes in an image `k` times larger, without masks (they are drawn before scaling). */
function scaledBoxes(p: Prediction, k: number): Prediction {
  const scale = (b: readonly number[]) => b.map((v) => v * k) as [number, number, number, number];
  return {
    ...p,
    width: p.width * k,
    height: p.height * k,
    semantic: null,
    instances: p.instances.map((i) => ({ ...i, box: scale(i.box), mask: null })),
    grounding: p.grounding.map((g) => ({ ...g, box: scale(g.box), mask: null })),
  };
}

function render(): void {
  drawPicture();
  renderTables();
}

/**
 * Draws the image with whatever the toggles and the slider ask for: semantic colours and masks
 * at the image's own size, then (after enlarging small images) boxes and labels, every
 * sentence's match (marked when under the slider), and the hovered object on top.
 */
function drawPicture(): void {
  const image = state.image;
  if (!image) return;
  let picture = image;
  const p = state.prediction;
  const k = displayScale(image);
  const current = p && p.width === image.width && p.height === image.height ? p : null;
  const threshold = scoreThreshold();
  if (current) {
    if (input('show-semantic').checked && current.semantic)
      picture = drawSemantic(picture, current.semantic, { legend: false, alpha: 0.55 });
    if (input('show-masks').checked)
      picture = drawInstances(picture, current, { scoreThreshold: threshold, boxes: false, labels: false });
  }
  if (k > 1) picture = resizeNearest(picture, image.width * k, image.height * k);
  const boxes = input('show-boxes').checked;
  const labels = input('show-labels').checked;
  if (current && (boxes || labels)) {
    picture = drawInstances(picture, scaledBoxes(current, k), {
      scoreThreshold: threshold,
      masks: false,
      boxes,
      labels,
      boxThickness: 2,
      labelScale: k >= 3 ? 2 : 1,
      belowThresholdNote: ` (below ${threshold.toFixed(2)})`,
      skipOverlappingLabels: true,
    });
  }
  if (current && state.hover) {
    const [x1, y1, x2, y2] = state.hover.box.map((v) => v * k) as [number, number, number, number];
    const box: [number, number, number, number] = [x1, y1, x2 - x1, y2 - y1];
    picture = drawOverlays(picture, [{ color: [255, 255, 255], box }], { boxThickness: 6 });
    picture = drawOverlays(picture, [{ color: promptColor(state.hover.promptIndex), box }], { boxThickness: 3 });
  }
  canvas.width = picture.width;
  canvas.height = picture.height;
  required(canvas.getContext('2d'), 'a 2D canvas context').putImageData(toImageData(picture), 0, 0);
}

/** Table rows and list items highlight their object on the picture while the mouse is over them. */
function hoverable<T extends HTMLElement>(
  el: T,
  target: { box: [number, number, number, number]; promptIndex: number },
): T {
  el.addEventListener('mouseenter', () => {
    state.hover = target;
    el.classList.add('hovered');
    drawPicture();
  });
  el.addEventListener('mouseleave', () => {
    state.hover = null;
    el.classList.remove('hovered');
    drawPicture();
  });
  return el;
}

/** Saves a blob under a name through a temporary link (the browser's download). */
function download(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const link = element('a', { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

const resultStem = () => `${state.fileName.replace(/\.[^.]*$/, '') || 'image'}.ape`;

function renderTables(): void {
  const body = ($('results') as HTMLTableElement).tBodies[0]!;
  const grounding = $('grounding');
  const legend = $('legend');
  body.replaceChildren();
  grounding.replaceChildren();
  legend.replaceChildren();
  const p = state.prediction;
  if (!p) {
    $('count').textContent = '';
    return;
  }
  const threshold = scoreThreshold();
  const rows = p.instances.filter((i) => i.score >= threshold).sort((a, b) => b.score - a.score);
  $('count').textContent = `${rows.length} of ${p.instances.length}`;
  for (const inst of rows) {
    const [x1, y1, x2, y2] = inst.box;
    body.append(
      hoverable(
        element('tr', {}, [
          element('td', {}, [swatch(inst.promptIndex)]),
          element('td', { textContent: inst.prompt }),
          element('td', { textContent: inst.kind }),
          element('td', { className: 'num', textContent: inst.score.toFixed(3) }),
          element('td', {
            className: 'num',
            textContent: [x1, y1, x2 - x1, y2 - y1].map((v) => Math.round(v)).join(', '),
          }),
        ]),
        inst,
      ),
    );
  }
  if (p.grounding.length === 0) grounding.append(element('li', { className: 'empty', textContent: 'no sentences' }));
  for (const g of p.grounding) {
    const below = g.score < threshold;
    const score = element('span', {
      className: 'num',
      textContent: `${g.score.toFixed(3)}${below ? ` (below ${threshold.toFixed(2)})` : ''}`,
    });
    grounding.append(
      hoverable(
        element('li', below ? { className: 'below' } : {}, [
          swatch(g.promptIndex),
          element('span', { textContent: g.sentence }),
          score,
        ]),
        g,
      ),
    );
  }
  const areas = p.semantic ? semanticAreas(p.semantic) : [];
  if (areas.length === 0)
    legend.append(element('li', { className: 'empty', textContent: p.semantic ? 'all background' : 'not computed' }));
  for (const a of areas) {
    legend.append(
      element('li', {}, [
        swatch(a.promptIndex),
        element('span', { textContent: a.prompt }),
        element('span', { className: 'num', textContent: `${(a.fraction * 100).toFixed(1)}%` }),
      ]),
    );
  }
  const t = state.json?.timing;
  $('timing').textContent = t
    ? `${state.ranOn}: ${Object.entries(t)
        .map(([k, v]) => `${k.replace(/Ms$/, '')} ${Math.round(v)} ms`)
        .join(', ')}`
    : '';
}

function updateRunButton(): void {
  (input('run') as unknown as HTMLButtonElement).disabled = state.busy || !state.image;
  for (const id of ['download-json', 'download-png'])
    (input(id) as unknown as HTMLButtonElement).disabled = state.busy || !state.json;
}

async function setImage(file: Blob, name: string): Promise<void> {
  try {
    const image = await decodeImage(file, { source: name });
    state.image = image;
    state.file = file;
    state.fileName = name;
    state.json = null;
    state.prediction = null;
    state.hover = null;
    document.body.dataset.image = name;
    message(`${name}: ${image.width} x ${image.height}`);
    render();
    setState('idle');
  } catch (error) {
    message((error as Error).message, true);
    setState('error');
  }
  updateRunButton();
}

function browserModel(): Promise<InBrowserModel> {
  if (!state.browserModel) {
    setState('loading');
    message('loading the model into this page...');
    state.browserModel = import('../in-browser.js').then(({ InBrowserModel }) =>
      InBrowserModel.load({
        wasmPaths: new URL('v1/wasm/', location.href).href,
        ortWasmPaths: new URL('v1/ort/', location.href).href,
        filesUrl: new URL('v1/model/files/', location.href).href,
        onnxUrl: new URL('v1/onnx/', location.href).href,
        modelUrl: new URL('v1/model', location.href).href,
        onProgress: (file, loaded, total) =>
          message(
            `downloading ${file}: ${(loaded / 1e6).toFixed(1)}${total ? ` of ${(total / 1e6).toFixed(1)}` : ''} MB`,
          ),
      }),
    );
    state.browserModel.then(
      (m) => message(loadedMessage(m)),
      () => {
        state.browserModel = null;
      },
    );
  }
  return state.browserModel;
}

/** What the page loaded, in words: all of the model, or its classifier or prompt side beside the server's graphs. */
function loadedMessage(model: InBrowserModel): string {
  const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
  const { parts, bytes, fileBytes, prompts } = model.weights;
  const what =
    prompts.on === 'server'
      ? `its classifier: ${mb(bytes)} of ${mb(fileBytes)} MB of weights; the network runs the server's ONNX graphs; the server encodes the prompts (its text tower, ${mb(prompts.textTowerBytes)} MB, is too large for this page)`
      : parts === 'classifier'
        ? `its classifier: ${mb(bytes)} of ${mb(fileBytes)} MB of weights; the network and the text tower run the server's ONNX graphs`
        : parts === 'prompts'
          ? `its prompt side: ${mb(bytes)} of ${mb(fileBytes)} MB of weights; the network runs the server's ONNX graphs`
          : `${mb(fileBytes)} MB of weights`;
  return `model loaded in ${Math.round(model.loadMs)} ms (${what})${model.loadNote ? `; ${model.loadNote}` : ''}`;
}

/** Loads the model into the page (and onnxruntime-web when that engine is picked) and says what runs it. */
async function showBrowserEngine(): Promise<void> {
  const model = await browserModel();
  const engine = state.engine;
  const description = await model.describe(engine);
  if (state.mode === 'browser' && state.engine === engine) {
    $('model-status').textContent =
      `model ${model.name} · in this browser (${description}) · ${model.promptsEncodedBy}`;
  }
}

async function predictOnServer(vocabulary: string[], sentences: string[]): Promise<PredictionJson> {
  const form = new FormData();
  form.append('image', required(state.file, 'the image to predict on'), state.fileName);
  if (vocabulary.length > 0) form.append('vocabulary', vocabulary.join(','));
  if (sentences.length > 0) form.append('sentences', sentences.join('\n'));
  form.append('threshold', '0');
  form.append('semanticThreshold', String(semanticThreshold()));
  const response = await fetch('v1/predict', { method: 'POST', body: form });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error(body?.error?.message ?? `the server answered ${response.status}`);
  return body as PredictionJson;
}

async function run(): Promise<void> {
  if (!state.image || state.busy) return;
  const vocabulary = splitVocabulary(input('vocabulary').value);
  const sentences = splitSentences(($('sentences') as HTMLTextAreaElement).value);
  if (vocabulary.length + sentences.length === 0) {
    message('type at least one category name or sentence', true);
    return;
  }
  state.busy = true;
  updateRunButton();
  try {
    let json: PredictionJson;
    let notes: string[] = [];
    if (state.mode === 'server') {
      setState('running');
      message('running on the server...');
      json = await predictOnServer(vocabulary, sentences);
      state.ranOn = 'server';
    } else {
      const model = await browserModel();
      const engine = state.engine;
      setState('running');
      message(`running in this browser (${await model.describe(engine)})...`);
      // Let the page paint the message before the forward pass (synchronous on TF.js, and the
      // first ONNX Runtime run of a new image size or prompt count exports the graph first).
      await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
      json = await model.predict(
        state.image,
        { vocabulary, sentences, threshold: 0, semanticThreshold: semanticThreshold() },
        engine,
      );
      notes = model.lastNotes;
      // Described after the run: onnxruntime-web settles its threads when its first session starts.
      state.ranOn = `in this browser (${await model.describe(engine)})`;
      void showBrowserEngine();
    }
    state.json = json;
    state.hover = null;
    // How the page ran (a server's export it did not use, and why) above what the model warns about.
    showWarnings([...notes, ...(json.warnings ?? [])]);
    state.prediction = predictionFromJson(json);
    render();
    const shown = state.prediction.instances.filter((i) => i.score >= scoreThreshold()).length;
    message(`${state.prediction.instances.length} objects found, ${shown} at score >= ${scoreThreshold().toFixed(2)}`);
    setState('done');
  } catch (error) {
    message((error as Error).message, true);
    setState('error');
  } finally {
    state.busy = false;
    updateRunButton();
  }
}

async function loadExamples(): Promise<void> {
  const response = await fetch('v1/examples');
  if (!response.ok) return;
  const { examples } = (await response.json()) as { examples: { name: string }[] };
  const box = $('examples');
  for (const { name } of examples) {
    const url = `v1/examples/${encodeURIComponent(name)}`;
    const button = element('button', { title: name, type: 'button' }, [element('img', { src: url, alt: name })]);
    button.dataset.example = name;
    button.addEventListener('click', async () => {
      box.querySelectorAll('button').forEach((b) => b.classList.toggle('selected', b === button));
      const blob = await (await fetch(url)).blob();
      await setImage(blob, name);
    });
    box.append(button);
  }
}

async function loadModelInfo(): Promise<void> {
  try {
    const response = await fetch('v1/model');
    if (!response.ok) throw new Error(`the server answered ${response.status}`);
    const info = (await response.json()) as { name: string; backend: string };
    $('model-status').textContent = `model ${info.name} · server (${info.backend})`;
  } catch (error) {
    $('model-status').textContent = `no model: ${(error as Error).message}`;
  }
}

function wire(): void {
  input('file').addEventListener('change', () => {
    const file = input('file').files?.[0];
    if (file) void setImage(file, file.name);
  });
  const drop = $('drop');
  const stop = (e: Event) => {
    e.preventDefault();
    e.stopPropagation();
  };
  for (const type of ['dragenter', 'dragover'])
    drop.addEventListener(type, (e) => {
      stop(e);
      drop.classList.add('over');
    });
  for (const type of ['dragleave', 'drop'])
    drop.addEventListener(type, (e) => {
      stop(e);
      drop.classList.remove('over');
    });
  drop.addEventListener('drop', (e) => {
    const file = (e as DragEvent).dataTransfer?.files?.[0];
    if (file) void setImage(file, file.name);
  });
  $('run').addEventListener('click', () => void run());
  $('download-json').addEventListener('click', () => {
    if (state.json)
      download(new Blob([JSON.stringify(state.json, null, 2)], { type: 'application/json' }), `${resultStem()}.json`);
  });
  $('download-png').addEventListener('click', () => {
    canvas.toBlob((blob) => blob && download(blob, `${resultStem()}.png`), 'image/png');
  });
  for (const id of ['show-masks', 'show-boxes', 'show-labels', 'show-semantic'])
    input(id).addEventListener('change', render);
  // The slider starts at the threshold the CLI and the API use (the page asks the server for
  // every instance and filters here, so moving it needs no new request).
  input('score').value = String(DEFAULT_SCORE_THRESHOLD);
  $('score-value').textContent = DEFAULT_SCORE_THRESHOLD.toFixed(2);
  input('semantic-threshold').addEventListener('input', () => {
    $('semantic-threshold-value').textContent = semanticThreshold().toFixed(2);
  });
  input('score').addEventListener('input', () => {
    $('score-value').textContent = scoreThreshold().toFixed(2);
    render();
  });
  for (const radio of Array.from(document.querySelectorAll<HTMLInputElement>('input[name="mode"]'))) {
    radio.addEventListener('change', () => {
      if (!radio.checked) return;
      state.mode = radio.value as Mode;
      (input('browser-engine') as unknown as HTMLSelectElement).disabled = state.mode !== 'browser';
      if (state.mode === 'browser') {
        showBrowserEngine().then(
          () => setState('idle'),
          (error: Error) => {
            message(`could not load the model into this page: ${error.message}`, true);
            setState('error');
          },
        );
      } else {
        void loadModelInfo();
      }
    });
  }
  const engineSelect = $('browser-engine') as HTMLSelectElement;
  engineSelect.addEventListener('change', () => {
    state.engine = engineSelect.value as BrowserEngine;
    if (state.mode !== 'browser') return;
    setState('loading');
    showBrowserEngine().then(
      () => setState('idle'),
      (error: Error) => {
        message(`could not start ${engineSelect.selectedOptions[0]?.textContent}: ${error.message}`, true);
        setState('error');
      },
    );
  });
}

document.body.dataset.image = 'none';
wire();
await Promise.all([loadModelInfo(), loadExamples()]);
setState('idle');
