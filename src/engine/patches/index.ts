/**
 * Registers the project's wasm kernel patches once (see ../../../docs/engine.md): fast paths for
 * kernels that the stock TF.js 4.22.0 wasm backend runs slowly, correct versions of ones it gets
 * wrong, and the kernels it lacks but training needs.
 */
import { patchBatchMatMul } from './batch-mat-mul.js';
import { patchConv2DBackpropFilter } from './conv2d-backprop-filter.js';
import { patchConv2DBackpropInput } from './conv2d-backprop-input.js';
import { patchDepthwiseBackpropFilter } from './depthwise-conv2d-backprop-filter.js';
import { patchDepthwiseBackpropInput } from './depthwise-conv2d-backprop-input.js';
import { patchGatherV2 } from './gather-v2.js';
import { patchIdentity } from './identity.js';
import { patchMaxPoolGrad } from './max-pool-grad.js';
import { patchResizeBilinearGrad } from './resize-bilinear-grad.js';
import { patchResizeNearestGrad } from './resize-nearest-neighbor-grad.js';
import { patchUnsortedSegmentSum } from './unsorted-segment-sum.js';

let installed = false;

export function installWasmPatches(): void {
  if (installed) return;
  installed = true;
  patchBatchMatMul();
  patchConv2DBackpropFilter();
  patchConv2DBackpropInput();
  patchUnsortedSegmentSum();
  patchMaxPoolGrad();
  patchDepthwiseBackpropInput();
  patchDepthwiseBackpropFilter();
  patchGatherV2();
  patchResizeBilinearGrad();
  patchResizeNearestGrad();
  patchIdentity();
}
