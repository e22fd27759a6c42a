import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FLOORS, NODE_ONLY_PACKAGES } from './floors.js';
import { importCycles, reachableFiles, readImportGraph, type ImportGraph } from './import-graph.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const graph = readImportGraph(root);

/** The folder of a src/ file ('' for the entry points directly in src/). */
function folderOf(file: string): string {
  const parts = file.split('/');
  return parts.length > 2 ? parts[1]! : '';
}

const floorOf = new Map<string, number>(FLOORS.flatMap((folders, floor) => folders.map((f) => [f, floor] as const)));

/** Every `from -> to` import that climbs a floor or crosses to a folder on the same floor. */
function upwardImports(g: ImportGraph): string[] {
  const bad: string[] = [];
  for (const [file, edges] of g) {
    const from = folderOf(file);
    if (from === '') continue;
    for (const edge of edges) {
      if (!edge.local) continue;
      const to = folderOf(edge.target);
      if (to === from) continue;
      if (to === '' || floorOf.get(to)! >= floorOf.get(from)!) bad.push(`${file} -> ${edge.target}`);
    }
  }
  return bad;
}

test('every folder of src/ has a floor in test/layout/floors.ts', () => {
  const folders = readdirSync(join(root, 'src')).filter((n) => statSync(join(root, 'src', n)).isDirectory());
  assert.deepEqual(
    folders.filter((f) => !floorOf.has(f)),
    [],
    'add the new folder to FLOORS in test/layout/floors.ts',
  );
  assert.deepEqual(
    [...floorOf.keys()].filter((f) => !folders.includes(f)),
    [],
    'FLOORS names a folder that src/ lacks',
  );
});

test('no folder imports a folder on its own floor or above it', () => {
  assert.ok(graph.size > 100, `read ${graph.size} files`);
  assert.deepEqual(upwardImports(graph), []);
});

test('the check sees an upward import', () => {
  const planted: ImportGraph = new Map([
    ['src/nn/linear.ts', [{ target: 'src/modeling/config.ts', local: true, typeOnly: true }]],
    ['src/server/app.ts', [{ target: 'src/browser/in-browser.ts', local: true, typeOnly: false }]],
    ['src/modeling/config.ts', [{ target: 'src/nn/linear.ts', local: true, typeOnly: false }]],
  ]);
  assert.deepEqual(upwardImports(planted), [
    'src/nn/linear.ts -> src/modeling/config.ts',
    'src/server/app.ts -> src/browser/in-browser.ts',
  ]);
});

test('no import loops between files', () => {
  assert.deepEqual(importCycles(graph), []);
  const loop: ImportGraph = new Map([
    ['a.ts', [{ target: 'b.ts', local: true, typeOnly: false }]],
    ['b.ts', [{ target: 'c.ts', local: true, typeOnly: false }]],
    [
      'c.ts',
      [
        { target: 'a.ts', local: true, typeOnly: false },
        { target: 'd.ts', local: true, typeOnly: false },
      ],
    ],
    ['d.ts', []],
  ]);
  assert.deepEqual(importCycles(loop), [['a.ts', 'b.ts', 'c.ts']]);
});

/** A package import that needs Node: a built-in (`node:fs`, `fs`) or a Node-only package. */
function needsNode(specifier: string): boolean {
  const name = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!;
  return specifier.startsWith('node:') || builtinModules.includes(name) || NODE_ONLY_PACKAGES.includes(name);
}

/** `file imports package` for every Node import reachable from `entries` (static or dynamic). */
function nodeImportsFrom(g: ImportGraph, entries: string[]): string[] {
  const found: string[] = [];
  for (const file of reachableFiles(g, entries)) {
    for (const edge of g.get(file) ?? [])
      if (!edge.local && !edge.typeOnly && needsNode(edge.target)) found.push(`${file} imports ${edge.target}`);
  }
  return found.sort();
}

test('no Node built-in is reachable from the platform-neutral entry (ape) or the browser code', () => {
  const browser = [...graph.keys()].filter((f) => f.startsWith('src/browser/'));
  assert.ok(browser.includes('src/browser/web/app.ts'));
  assert.deepEqual(nodeImportsFrom(graph, ['src/index.ts', ...browser]), []);
  // The same walk from the Node entry finds sharp and the file system.
  const fromNode = nodeImportsFrom(graph, ['src/node.ts']);
  assert.ok(fromNode.includes('src/io/image-node.ts imports sharp'), fromNode.join('\n'));
  assert.ok(
    fromNode.some((line) => line.startsWith('src/inference/model-files.ts imports node:fs')),
    fromNode.join('\n'),
  );
});

test("package.json's exports each name a source entry directly in src/", () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    exports: Record<string, { types: string; default: string }>;
  };
  const names = Object.keys(pkg.exports);
  assert.deepEqual(names, ['.', './node', './train', './eval', './server', './convert']);
  for (const name of names) {
    const { types, default: js } = pkg.exports[name]!;
    const match = /^\.\/dist\/([a-z]+)\.js$/.exec(js);
    assert.ok(match, `${name}: ${js}`);
    assert.equal(types, `./dist/${match[1]}.d.ts`);
    assert.ok(graph.has(`src/${match[1]}.ts`), `${name}: no src/${match[1]}.ts`);
  }
});
