#!/usr/bin/env node
// Node 20's test runner takes no globs and ignores .ts files in folders, so the file list is made here.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...findTests(path));
    else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

const filters = process.argv.slice(2);

// The whole suite starts with the static checks: Biome (format and lint, biome.json) and the
// type check of src, test and bench (tsx runs the tests without checking types).
if (filters.length === 0) {
  for (const [what, args] of [
    ['biome check', ['node_modules/@biomejs/biome/bin/biome', 'check', '.']],
    ['type check', ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.check.json']],
  ]) {
    const check = spawnSync(process.execPath, args, { stdio: 'inherit' });
    if (check.status !== 0) {
      console.error(`${what} failed (npm run lint / npm run typecheck show the same); fix it or run npm run format`);
      process.exit(check.status ?? 1);
    }
  }
}
const files = findTests('test').filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
