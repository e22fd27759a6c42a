#!/usr/bin/env node
import { readFile } from 'node:fs/promises';
import type { Command } from './command.js';
import { closestName } from './did-you-mean.js';
import { UsageError } from './command.js';

/** Each command lives in its own file and is loaded only when asked for. */
const commands: Record<string, { summary: string; load: () => Promise<Command> }> = {
  annotate: {
    summary:
      'label a folder of images: a COCO dataset with masks (resumable; --workers N, or --queue for many machines)',
    load: async () => (await import('./annotate.js')).command,
  },
  checkpoint: {
    summary: 'convert checkpoints: compact training checkpoints (8-bit moments), half-precision model folders',
    load: async () => (await import('./checkpoint.js')).command,
  },
  convert: {
    summary: 'convert a released APE checkpoint (.pth) to safetensors + config',
    load: async () => (await import('./convert.js')).command,
  },
  data: {
    summary: 'make, check and preview datasets (the synthetic world)',
    load: async () => (await import('./data.js')).command,
  },
  export: {
    summary: 'write the network forward as ONNX for ONNX Runtime',
    load: async () => (await import('./export.js')).command,
  },
  eval: {
    summary: 'evaluate results against ground truth (COCO AP, ...)',
    load: async () => (await import('./eval.js')).command,
  },
  predict: {
    summary: 'detect, segment and ground what text prompts name (JSON + pictures)',
    load: async () => (await import('./predict.js')).command,
  },
  pull: {
    summary: 'download and convert a released APE model by name (ape-ti, ape-l-d)',
    load: async () => (await import('./pull.js')).command,
  },
  serve: { summary: 'HTTP API and web page for a model', load: async () => (await import('./serve.js')).command },
  train: {
    summary: 'train or resume a model from a JSON config (checkpoints, progress, resumable)',
    load: async () => (await import('./train.js')).command,
  },
  worker: {
    summary: 'run queued ape annotate jobs (BullMQ on Redis) with a model',
    load: async () => (await import('./worker.js')).command,
  },
  pretrain: {
    summary: 'pretrain a backbone and text tower for a detector run (proxy tasks; checkpoints, resumable)',
    load: async () => (await import('./pretrain.js')).command,
  },
};

/** The version in the package's package.json (found from this file: src/cli or dist/cli). */
async function packageVersion(): Promise<string> {
  const text = await readFile(new URL('../../package.json', import.meta.url), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
}

function help(): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length), 4);
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    'usage: ape <command> [options]',
    '',
    'commands:',
    ...lines,
    '',
    'ape <command> --help shows its options; ape --version the version.',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(help());
    return name === undefined ? 1 : 0;
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    console.log(`ape ${await packageVersion()}`);
    return 0;
  }
  const entry = commands[name];
  if (!entry) {
    const guess = closestName(name, Object.keys(commands));
    console.error(`ape: unknown command '${name}'${guess ? ` (did you mean '${guess}'?)` : ''}\n\n${help()}`);
    return 2;
  }
  const command = await entry.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(command.usage);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`ape ${name}: ${err.message}\n\n${command.usage}`);
      return 2;
    }
    console.error(`ape ${name}: ${err instanceof Error ? err.message : String(err)}`);
    if (process.env.APE_DEBUG) console.error(err);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(err);
    process.exitCode = 1;
  },
);
