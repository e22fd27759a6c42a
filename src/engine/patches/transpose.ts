/**
 * Batched 2-D transpose on the wasm heap, [batch, rows, cols] -> [batch, cols, rows], in cache
 * blocks with contiguous writes. Faster than the stock C++ Transpose kernel for the shapes matmul
 * gradients produce (whose power-of-two row strides make its row-by-row loop miss the cache).
 */
const BLOCK = 64;

export function transposeBatched(
  heap: Float32Array,
  src: number,
  dst: number,
  batch: number,
  rows: number,
  cols: number,
): void {
  const size = rows * cols;
  for (let b = 0; b < batch; b++) {
    const s0 = src + b * size;
    const d0 = dst + b * size;
    for (let j0 = 0; j0 < cols; j0 += BLOCK) {
      const j1 = Math.min(j0 + BLOCK, cols);
      for (let i0 = 0; i0 < rows; i0 += BLOCK) {
        const i1 = Math.min(i0 + BLOCK, rows);
        for (let j = j0; j < j1; j++) {
          const d = d0 + j * rows;
          for (let i = i0; i < i1; i++) heap[d + i] = heap[s0 + i * cols + j]!;
        }
      }
    }
  }
}
