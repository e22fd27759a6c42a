// The library in a few lines: load a model, predict, draw the overlays, write COCO results.
// Run from the repository after `npm run build`:
//   node examples/library.mjs [IMAGE] [MODEL_DIR] [OUT_DIR]
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { initEngine, loadModel, readImage, writeImage, drawInstances, drawSemantic, toCocoResults } from 'ape/node';

const [imagePath = 'examples/scene-2.png', modelDir = 'models/default', outDir = 'predictions'] = process.argv.slice(2);

await initEngine({ backend: 'wasm' });
const model = await loadModel(modelDir);
const image = await readImage(imagePath);
const result = await model.predict(image, {
  vocabulary: ['circle', 'star', 'heart', 'sky', 'sand', 'water'],
  sentences: ['the red cross to the right of the red star'],
  threshold: 0.3,
});

await mkdir(outDir, { recursive: true });
await writeImage(join(outDir, 'library-instances.png'), drawInstances(image, result));
if (result.semantic) await writeImage(join(outDir, 'library-semantic.png'), drawSemantic(image, result.semantic));
await writeFile(join(outDir, 'library-results.json'), JSON.stringify(toCocoResults(result, 1)));

for (const i of result.instances) console.log(`${i.prompt.padEnd(12)} ${i.score.toFixed(2)}  [${i.box.map(Math.round).join(', ')}]`);
for (const g of result.grounding) console.log(`"${g.sentence}" -> [${g.box.map(Math.round).join(', ')}] (${g.score.toFixed(2)})`);
console.log(`pictures and COCO results in ${outDir}/`);
