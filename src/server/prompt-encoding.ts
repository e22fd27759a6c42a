/**
 * Where the page should encode its prompts, as the server states it in `GET /v1/model`: in the page
 * (the text tower's ONNX export, or its weights) while the tower is small, else on the server
 * (`POST /v1/prompts`). The released models' EVA02-CLIP-E tower is 2.78 GB of float32: the page
 * would download it and hold it in one array beside onnxruntime-web's 4 GB wasm32 heap, for a tower
 * that is needed once per new prompt; the server holds it anyway.
 */
import { readSafetensorsHeaderFile } from '../io/safetensors-node.js';
import { TEXT_TOWER_PREFIX } from '../modeling/ape-network.js';

/** Text towers above this are not run in the page by default (the tiny model's is 3.75 MB, ape-ti's 2.78 GB). */
export const DEFAULT_PAGE_TEXT_TOWER_LIMIT = 512 * 1024 * 1024;

/** The route that encodes prompts for the page. */
export const PROMPTS_ROUTE = '/v1/prompts';

export interface PromptEncodingStatement {
  /** Bytes of the text tower's weights in model.safetensors (its ONNX export's weights file is as large). */
  textTowerBytes: number;
  /** The largest tower the page is told to run itself. */
  pageLimitBytes: number;
  /** 'page' while the tower is within the limit, else 'server': the page asks `url` for its prompts' vectors. */
  encodeIn: 'page' | 'server';
  url: string;
}

/** The bytes of the text tower's tensors in a safetensors file (read from its header only). */
export async function textTowerBytes(weightsPath: string): Promise<number> {
  const header = await readSafetensorsHeaderFile(weightsPath);
  return header.tensors
    .filter((t) => t.name.startsWith(TEXT_TOWER_PREFIX))
    .reduce((sum, t) => sum + t.end - t.begin, 0);
}

/** The statement for a tower of `towerBytes` under a page limit of `pageLimitBytes`. */
export function promptEncodingStatement(towerBytes: number, pageLimitBytes: number): PromptEncodingStatement {
  return {
    textTowerBytes: towerBytes,
    pageLimitBytes,
    encodeIn: towerBytes > pageLimitBytes ? 'server' : 'page',
    url: PROMPTS_ROUTE,
  };
}
