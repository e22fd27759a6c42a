/**
 * The ONNX exports made from a model's files rather than from a loaded model: the network's from
 * its detector alone (the text tower as placeholders, no memory: the graph takes prompt vectors),
 * the text tower's from the tower alone. The recording runs on zero weights of the right shapes
 * (a 'shapes' recording never reads their values), and the weights the export writes are read
 * from the checkpoint a tensor at a time as each file is written. For ape-ti the released text
 * tower is 2.78 of its 3.09 GB: beside the whole model a recording at 1024 reached the 4 GB wasm
 * heap's limit (and `ape export`'s failed); from the detector alone it takes 1.5 GB (docs/onnx.md).
 */
import { join } from 'node:path';
import { readSafetensorsHeaderFile } from '../io/safetensors-node.js';
import { ApeNetwork, TEXT_TOWER_PREFIX } from '../modeling/ape-network.js';
import type { ApeConfig } from '../modeling/config.js';
import { withParameterValues } from '../nn/module.js';
import { checkpointWeights } from '../onnx/checkpoint-weights.js';
import type { ExportProgress } from '../onnx/export-progress.js';
import {
  exportNetwork,
  recordedParameters,
  type ExportOptions,
  type ExportShape,
  type NetworkExport,
} from '../onnx/export-network.js';
import { exportTextTower, type TextExport, type TextExportShape } from '../onnx/text-export.js';
import { ClipTextEncoder } from '../text/clip-text-transformer.js';
import { Rng } from '../util/random.js';
import { checkWeights, WEIGHTS_FILE } from './model-folder.js';
import { loadModelTokenizer } from './model-files.js';

/** A model folder and the config it is loaded with (loadModel's inputSize applied, if any). */
export interface ModelFiles {
  dir: string;
  config: ApeConfig;
  /** For CLIP BPE models whose folder lacks the merges file (loadModel's option of the same name). */
  vocabPath?: string;
}

/** The export options a recording from files takes (it always records shapes only). */
export type FileExportOptions = Pick<ExportOptions, 'externalData' | 'cutAfter' | 'chunkRows' | 'onProgress'>;

/** The network's export of `shape`, recorded from the detector alone, its weights read from the checkpoint. */
export async function exportNetworkFromFiles(
  files: ModelFiles,
  shape: ExportShape,
  hash: string,
  options: FileExportOptions = {},
): Promise<NetworkExport> {
  const path = join(files.dir, WEIGHTS_FILE);
  const header = await readSafetensorsHeaderFile(path);
  const { tokenizer } = await loadModelTokenizer(files.dir, files.config, files.vocabPath);
  const network = withParameterValues('zeros', () => new ApeNetwork(files.config, tokenizer, 0, 'detector'));
  try {
    const params = recordedParameters(network);
    checkWeights(
      params,
      header.tensors.filter((t) => !t.name.startsWith(TEXT_TOWER_PREFIX)),
      path,
      files.config.name,
    );
    return exportNetwork(network, shape, hash, {
      ...options,
      compute: 'shapes',
      weightData: checkpointWeights(path, header, params),
    });
  } finally {
    network.dispose();
  }
}

/** The text tower's export of `shape`, recorded from the tower alone, its weights read from the checkpoint. */
export async function exportTextTowerFromFiles(
  files: ModelFiles,
  shape: TextExportShape,
  hash: string,
  onProgress?: ExportProgress,
): Promise<TextExport> {
  const path = join(files.dir, WEIGHTS_FILE);
  const header = await readSafetensorsHeaderFile(path);
  const { config } = files;
  const encoder = withParameterValues('zeros', () => new ClipTextEncoder(config.text.encoder, new Rng(0)));
  try {
    const params = encoder.namedParameters();
    checkWeights(
      new Map([...params].map(([name, v]) => [TEXT_TOWER_PREFIX + name, v])),
      header.tensors.filter((t) => t.name.startsWith(TEXT_TOWER_PREFIX)),
      path,
      config.name,
    );
    return exportTextTower(
      encoder,
      config.text.pooling,
      shape,
      { name: config.name, hash },
      { externalData: true, weightData: checkpointWeights(path, header, params, TEXT_TOWER_PREFIX), onProgress },
    );
  } finally {
    encoder.dispose();
  }
}
