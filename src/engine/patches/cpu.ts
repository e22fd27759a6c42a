/**
 * Fixes for the cpu backend, which the project uses as a reference in tests: kernels whose stock
 * versions return wrong gradients.
 */
import { patchResizeBilinearGradCpu } from './resize-bilinear-grad.js';
import { patchResizeNearestGradCpu } from './resize-nearest-neighbor-grad.js';

let installed = false;

export function installCpuPatches(): void {
  if (installed) return;
  installed = true;
  patchResizeBilinearGradCpu();
  patchResizeNearestGradCpu();
}
