import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Progress, progressFrom } from '../../src/util/progress.js';

/** A stream that is not a terminal, recording what is written. */
function pipe(): { stream: NodeJS.WriteStream; text: () => string } {
  let text = '';
  const write = (s: string) => {
    text += s;
    return true;
  };
  const stream = { isTTY: false, write } as unknown as NodeJS.WriteStream;
  return { stream, text: () => text };
}

const LINE = /^encoding: (\d+)\/(\d+) [\d.]+ (prompt\/s|s\/prompt) elapsed \d\d:\d\d eta (\d\d:\d\d|--:--)$/;

test('progressFrom: nothing below `from`; from it, plain lines ending at total/total, once per run of reports; a new total starts again', () => {
  const out = pipe();
  const report = progressFrom(1000, { label: 'encoding', unit: 'prompt', stream: out.stream, plainEverySeconds: 3600 });
  for (const done of [0, 500, 999]) report(done, 999);
  assert.equal(out.text(), '');
  for (const done of [0, 600, 1200]) report(done, 1200);
  // Plain lines at most once per plainEverySeconds, and always the last one.
  const lines = out.text().trimEnd().split('\n');
  assert.deepEqual(
    lines.map((l) => LINE.exec(l)?.slice(1, 3)),
    [
      ['0', '1200'],
      ['1200', '1200'],
    ],
    out.text(),
  );
  report(0, 2000);
  report(2000, 2000);
  assert.deepEqual(
    out
      .text()
      .trimEnd()
      .split('\n')
      .slice(2)
      .map((l) => LINE.exec(l)?.slice(1, 3)),
    [
      ['0', '2000'],
      ['2000', '2000'],
    ],
  );
});

test('Progress with `lines`: each plain line goes to the callback (a log), never a bar, even on a terminal stream', () => {
  const lines: string[] = [];
  const tty = {
    isTTY: true,
    write: () => assert.fail('nothing is written to the stream'),
  } as unknown as NodeJS.WriteStream;
  const bar = new Progress({ total: 3, label: 'encoding', unit: 'prompt', stream: tty, lines: (l) => lines.push(l) });
  bar.tick(3);
  bar.finish();
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /^encoding: 3\/3 /);
});
