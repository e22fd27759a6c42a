import { test } from 'node:test';
import assert from 'node:assert/strict';
import { drawOverlays } from '../../src/viz/overlay.js';
import { createRgbImage } from '../../src/viz/image.js';

test('labels do not pile up: a tag that would cover a later (better) one is left out, apart ones stay', () => {
  const base = createRgbImage(80, 60, [90, 90, 90]);
  const weak = {
    color: [200, 0, 0] as [number, number, number],
    box: [10, 10, 30, 30] as [number, number, number, number],
    label: 'ring 0.05',
  };
  const strong = {
    color: [0, 0, 200] as [number, number, number],
    box: [12, 11, 30, 30] as [number, number, number, number],
    label: 'circle 0.91',
  };
  const apart = {
    color: [0, 150, 0] as [number, number, number],
    box: [10, 45, 20, 10] as [number, number, number, number],
    label: 'sky 0.02',
  };
  const skipped = drawOverlays(base, [apart, weak, strong], { skipOverlappingLabels: true });
  // The same picture as drawing the weak one without its label.
  const { label: _dropped, ...weakBoxOnly } = weak;
  assert.deepEqual(skipped.data, drawOverlays(base, [apart, weakBoxOnly, strong]).data);
  // Without the option both tags are drawn (the weak one shows where the strong one does not cover it).
  assert.notDeepEqual(drawOverlays(base, [apart, weak, strong]).data, skipped.data);
});
