import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './command.js';
import { closestName } from './did-you-mean.js';

/**
 * node:util parseArgs (strict), with its complaints about the arguments turned into UsageErrors;
 * an unknown option is named with the closest known one ("did you mean --threshold?").
 */
export function parseCommandArgs<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (err) {
    const e = err as Error & { code?: string };
    const unknown = e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /'(-{1,2}[^']+)'/.exec(e.message)?.[1] : undefined;
    if (unknown) {
      const names = Object.keys(config.options ?? {});
      const guess = closestName(unknown.replace(/^-+/, '').split('=')[0]!, names);
      throw new UsageError(`Unknown option '${unknown}'${guess ? ` (did you mean --${guess}?)` : ''}`);
    }
    throw new UsageError(e.message);
  }
}

/** An optional whole-number option of at least 1 (`--name N`). */
export function positiveIntegerOption(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new UsageError(`--${name} must be a positive integer, got '${value}'`);
  return Number(value);
}

/**
 * `--steps N` of a run command: at most N more steps in this session. 0 takes none; the run then
 * writes the weights it exports from its newest checkpoint again (runTraining).
 */
export function stepsOption(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`--steps must be a whole number, got '${value}'`);
  return Number(value);
}

/** `--backend wasm|cpu`, wasm when not given. */
export function backendOption(value: string | undefined): 'wasm' | 'cpu' {
  const backend = value ?? 'wasm';
  if (backend !== 'wasm' && backend !== 'cpu') throw new UsageError(`--backend must be wasm or cpu, got '${backend}'`);
  return backend;
}

/**
 * Runs a long loop with a stop flag that the first Ctrl-C sets (the loop stops cleanly after its
 * current step, writing a checkpoint); a second Ctrl-C exits at once.
 */
export async function withStopOnSigint<T>(work: (signal: { stop: boolean }) => Promise<T>): Promise<T> {
  const signal = { stop: false };
  const onSigint = () => {
    if (signal.stop) process.exit(130);
    signal.stop = true;
    console.error('\nstopping after this step (Ctrl-C again to abort without a checkpoint)');
  };
  process.on('SIGINT', onSigint);
  try {
    return await work(signal);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** The arguments of a run command (ape train, ape pretrain): `--config FILE [--steps N] [--backend wasm|cpu]`. */
export function runCommandArgs(argv: string[]): {
  config: string;
  maxSteps: number | undefined;
  backend: 'wasm' | 'cpu';
} {
  const { values, positionals } = parseCommandArgs({
    args: argv,
    options: { config: { type: 'string' }, steps: { type: 'string' }, backend: { type: 'string' } },
    allowPositionals: true,
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  if (!values.config) throw new UsageError('--config is required');
  return {
    config: values.config,
    maxSteps: stepsOption(values.steps),
    backend: backendOption(values.backend),
  };
}
