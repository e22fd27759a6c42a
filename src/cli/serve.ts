import { parseCommandArgs } from './args.js';
import { createApeServer } from '../server/app.js';
import { DEFAULT_LIMITS, type ServerLimits } from '../server/limits.js';
import { DEFAULT_PAGE_TEXT_TOWER_LIMIT } from '../server/prompt-encoding.js';
import { resolveModelOption, sizeOption } from './model-option.js';
import { UsageError, type Command } from './command.js';
import { engineOption } from './engine-option.js';

const usage = `usage: ape serve [--port 8080] [--host 127.0.0.1] [--model DIR|NAME] [--engine ort|tfjs] [limits]
  HTTP API and web page for one model:
    POST /v1/predict     multipart/form-data (image file; vocabulary, sentences, prompt, threshold fields)
                         or JSON {image: base64, vocabulary: [...], sentences: [...], prompt, threshold}
    POST /v1/prompts     JSON {texts: [...]}: their prompt vectors (for a page without the text tower)
    GET  /v1/health      status, queue, engine memory
    GET  /v1/model       the model's config and files, and where the page encodes prompts
    GET  /               the web page (server mode, or the model running in the browser)
  --model DIR|NAME       model folder (default: the shipped models/default), or a released model
                         by name: ape-ti, ape-l-d (pulled on first use, see 'ape pull')
  --size N               input size in pixels instead of the model's (a multiple of 64; the
                         encoder's cost grows with N squared)
  --engine E             where the model thread runs the network: ort (default: ONNX Runtime;
                         exported on first use for each input size and sentence bucket (1, 2, 4, ...),
                         cached in MODEL/onnx: the first request of a new one waits for it) or tfjs (TF.js)
  --port P               0 picks a free port (default 8080)
  --host H               address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)
limits (answers: 413 too large, 422 bad prompts, 503 queue full, 504 too slow):
  --max-request-mb N     request body (default ${DEFAULT_LIMITS.maxRequestBytes / 1024 / 1024})
  --max-pixels N         image width*height (default (4 x the model's input side)^2, at most
                         ${DEFAULT_LIMITS.maxImagePixels}: 1048576 for the shipped 256-pixel model)
  --max-prompts N        vocabulary + sentences per request (default ${DEFAULT_LIMITS.maxPrompts})
  --max-prompt-length N  characters per prompt (default ${DEFAULT_LIMITS.maxPromptLength})
  --queue N              requests waiting behind the running one (default ${DEFAULT_LIMITS.queueSize})
  --timeout-ms N         per request, from arrival to answer (default ${DEFAULT_LIMITS.requestTimeoutMs})
  --grace-ms N           on SIGTERM/SIGINT, time requests in progress get to finish; new ones
                         and the unfinished get 503 shutting-down (default ${DEFAULT_LIMITS.shutdownGraceMs})
  --web-dir DIR          the built page (default dist/web of the package)
  --page-text-tower-mb N the largest text tower the page runs itself; a larger one's prompts are
                         encoded by the server (default ${DEFAULT_PAGE_TEXT_TOWER_LIMIT / 1024 / 1024}; 0: always the server)`;

function positiveNumber(value: string | undefined, name: string, min = 1): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) throw new UsageError(`--${name} must be a number >= ${min}, got '${value}'`);
  return n;
}

async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs({
    args: argv,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      model: { type: 'string' },
      'max-request-mb': { type: 'string' },
      'max-pixels': { type: 'string' },
      'max-prompts': { type: 'string' },
      'max-prompt-length': { type: 'string' },
      queue: { type: 'string' },
      'timeout-ms': { type: 'string' },
      'grace-ms': { type: 'string' },
      'web-dir': { type: 'string' },
      'page-text-tower-mb': { type: 'string' },
      size: { type: 'string' },
      engine: { type: 'string' },
    },
    allowPositionals: true,
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  const port = positiveNumber(values.port, 'port', 0) ?? 8080;
  if (!Number.isInteger(port) || port > 65535)
    throw new UsageError(`--port must be an integer from 0 to 65535, got '${values.port}'`);
  const mb = positiveNumber(values['max-request-mb'], 'max-request-mb', 0.001);
  const integer = (name: keyof typeof values, min = 1) => {
    const n = positiveNumber(values[name] as string | undefined, name, min);
    if (n !== undefined && !Number.isInteger(n))
      throw new UsageError(`--${name} must be an integer, got '${values[name]}'`);
    return n;
  };
  const limits: Partial<ServerLimits> = {
    maxRequestBytes: mb === undefined ? undefined : Math.round(mb * 1024 * 1024),
    maxImagePixels: integer('max-pixels'),
    maxPrompts: integer('max-prompts'),
    maxPromptLength: integer('max-prompt-length'),
    queueSize: integer('queue', 0),
    requestTimeoutMs: integer('timeout-ms'),
    shutdownGraceMs: integer('grace-ms', 0),
  };
  const pageTowerMb = positiveNumber(values['page-text-tower-mb'], 'page-text-tower-mb', 0);
  const inputSize = sizeOption(values.size);
  const engine = engineOption(values.engine);
  const modelDir = await resolveModelOption(values.model);
  const app = await createApeServer({
    modelDir,
    engine,
    log: (line) => console.error(`ape serve: ${line}`),
    limits,
    ...(inputSize !== undefined ? { inputSize } : {}),
    ...(values['web-dir'] ? { webDir: values['web-dir'] } : {}),
    ...(pageTowerMb !== undefined ? { pageTextTowerLimit: Math.round(pageTowerMb * 1024 * 1024) } : {}),
  });
  const info = await app.host.start().catch(async (error: Error) => {
    await app.close();
    throw error;
  });
  const { url } = await app.listen(port, values.host ?? '127.0.0.1');
  console.log(
    `ape serve: model '${info.name}' from ${modelDir} (${info.inferenceEngine}, ${info.backend}, loaded in ${info.loadMs} ms)`,
  );
  console.log(`ape serve: listening on ${url}`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      console.log(`ape serve: shutting down (requests taken in get up to ${app.limits.shutdownGraceMs} ms to finish)`);
      app.close().then(resolve, resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  return 0;
}

export const command: Command = {
  name: 'serve',
  summary: 'HTTP API and web page (detect, segment, ground from text prompts)',
  usage,
  run,
};
