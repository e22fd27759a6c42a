/**
 * Ground-truth masks brought to the mask head's grid, in plain arrays (targets carry no gradient).
 */

/**
 * Area-average a binary mask of H x W down to h x w (soft targets in [0, 1]); H and W must be
 * integer multiples of h and w, as they are when the mask head runs at a stride of the padded input.
 */
export function downsampleMaskArea(mask: Uint8Array, H: number, W: number, h: number, w: number): Float32Array {
  if (mask.length !== H * W) throw new Error(`downsampleMaskArea: mask has ${mask.length} values, expected ${H}x${W}`);
  if (H % h !== 0 || W % w !== 0) throw new Error(`downsampleMaskArea: ${H}x${W} is not a multiple of ${h}x${w}`);
  const fy = H / h;
  const fx = W / w;
  const out = new Float32Array(h * w);
  for (let y = 0; y < H; y++) {
    const row = Math.floor(y / fy) * w;
    for (let x = 0; x < W; x++) if (mask[y * W + x]) out[row + Math.floor(x / fx)]! += 1;
  }
  const inv = 1 / (fx * fy);
  for (let i = 0; i < out.length; i++) out[i]! *= inv;
  return out;
}

/**
 * Bilinear value of a row-major h x w map at normalised (x, y) in [0, 1], with PyTorch's
 * grid_sample conventions (align_corners=False, zeros outside), as detectron2's point_sample.
 */
export function bilinearAt(values: ArrayLike<number>, h: number, w: number, x: number, y: number): number {
  const px = x * w - 0.5;
  const py = y * h - 0.5;
  const x0 = Math.floor(px);
  const y0 = Math.floor(py);
  const ax = px - x0;
  const ay = py - y0;
  let sum = 0;
  for (let dy = 0; dy < 2; dy++) {
    const yy = y0 + dy;
    if (yy < 0 || yy >= h) continue;
    const wy = dy ? ay : 1 - ay;
    for (let dx = 0; dx < 2; dx++) {
      const xx = x0 + dx;
      if (xx < 0 || xx >= w) continue;
      sum += (dx ? ax : 1 - ax) * wy * (values[yy * w + xx] as number);
    }
  }
  return sum;
}
