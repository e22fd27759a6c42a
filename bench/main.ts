/**
 * `npm run bench -- NAME [options]`: runs bench/NAME.ts, whose `run(argv)` prints its numbers and
 * returns them; they are written to bench/results/NAME.json (and to --json PATH when given).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';

export interface BenchResult {
  /** Machine-readable numbers. */
  results: Record<string, unknown>;
}

const here = dirname(fileURLToPath(import.meta.url));
const [name, ...argv] = process.argv.slice(2);
if (!name || !/^[a-z][a-z0-9-]*$/.test(name) || !existsSync(join(here, `${name}.ts`))) {
  console.error(`usage: npm run bench -- <name> [options]   (name: a file bench/<name>.ts; got '${name ?? ''}')`);
  process.exit(2);
}
const mod = (await import(`./${name}.ts`)) as { run(argv: string[]): Promise<BenchResult> };
const { results } = await mod.run(argv);
const record = { bench: name, date: new Date().toISOString(), node: process.version, ...results };
mkdirSync(join(here, 'results'), { recursive: true });
const out = join(here, 'results', `${name}.json`);
writeFileSync(out, `${JSON.stringify(record, null, 2)}\n`);
console.log(`results written to ${out}`);
const jsonFlag = argv.indexOf('--json');
if (jsonFlag >= 0 && argv[jsonFlag + 1]) {
  writeFileSync(argv[jsonFlag + 1]!, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`results written to ${argv[jsonFlag + 1]}`);
}
