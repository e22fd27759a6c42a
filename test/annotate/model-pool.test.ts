import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ModelPool } from '../../src/annotate/model-pool.js';
import { defaultModelDir } from '../../src/cli/model-option.js';
import { repoRoot } from '../cli/ape-cli.js';
import { waitUntil } from './fixtures.js';

const settings = { vocabulary: ['circle', 'square', 'triangle', 'star'], sentences: [], threshold: 0.3 };
const image = join(repoRoot, 'examples', 'scene-1.png');

describe('ModelPool', () => {
  const pool = new ModelPool(defaultModelDir(), 1);
  before(() => pool.start());
  after(() => pool.close());

  /** Kills the process that holds an image, once one (other than `not`) does; returns its pid. */
  async function killBusy(not = -1): Promise<number> {
    await waitUntil(() => pool.processes.some((p) => p.busy && p.pid !== not), 'a model process holding the image');
    const { pid } = pool.processes.find((p) => p.busy)!;
    process.kill(pid, 'SIGKILL');
    return pid;
  }

  it('replaces a model process killed mid-image and gives the image to the new one', async () => {
    const reference = await pool.annotate({ name: image, path: image, settings });
    assert.equal(reference.ok, true);
    const pending = pool.annotate({ name: image, path: image, settings });
    await killBusy();
    assert.deepEqual(await pending, reference);
  });

  it('answers an image that took down two processes as poisoned, and goes on', async () => {
    const pending = pool.annotate({ name: image, path: image, settings });
    const first = await killBusy();
    await killBusy(first);
    const outcome = await pending;
    assert.equal(outcome.ok, false);
    assert.match(
      outcome.ok ? '' : outcome.reason,
      /scene-1\.png: the model process died on this image 2 times \(last: SIGKILL\)/,
    );
    assert.equal((await pool.annotate({ name: image, path: image, settings })).ok, true);
  });
});
