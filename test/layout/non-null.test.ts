/**
 * The policy for `!` in src/ (README, Layout): a non-null assertion only on an element access
 * (`a[i]!`) whose index is bounded by construction; any other `!` (`x!.y`, `f()!`,
 * `map.get(k)!`) is a check that throws a named error, or a type that needs none.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { listSources } from './import-graph.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** `file:line: text` for each `!` in the source whose operand is not an element access. */
function nonIndexAssertions(file: string, text: string): string[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isNonNullExpression(node) && !ts.isElementAccessExpression(skipParentheses(node.expression))) {
      const { line } = source.getLineAndCharacterOfPosition(node.getStart(source));
      found.push(`${file}:${line + 1}: ${node.getText(source)}`);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

function skipParentheses(node: ts.Expression): ts.Expression {
  return ts.isParenthesizedExpression(node) ? skipParentheses(node.expression) : node;
}

test('src/ asserts non-null only on element access', () => {
  const files = listSources(join(root, 'src'));
  assert.ok(files.length > 100, `read ${files.length} files`);
  const found = files.flatMap((path) => nonIndexAssertions(relative(root, path), readFileSync(path, 'utf8')));
  assert.deepEqual(found, [], 'replace each with a check that throws a named error (see getOrThrow in src/util)');
});

test('the check sees each kind of non-index assertion and passes element access', () => {
  const text = [
    'const a = [1, 2];',
    'const m = new Map<string, number>();',
    'let x: { y: number } | undefined;',
    'const ok = a[0]! + (a[1])!;',
    'const bad1 = m.get("k")!;',
    'const bad2 = x!.y;',
    'const bad3 = (x as { y: number } | null)!;',
  ].join('\n');
  assert.deepEqual(nonIndexAssertions('planted.ts', text), [
    'planted.ts:5: m.get("k")!',
    'planted.ts:6: x!',
    'planted.ts:7: (x as { y: number } | null)!',
  ]);
});
