import { assertMaskSize, type CompressedRle, type Rle } from './rle.js';

/**
 * The compact string form of RLE counts used in COCO files (maskApi.c rleToString / rleFrString):
 * from the fourth run on, each count is stored as the difference to the count two runs earlier,
 * then written like LEB128 with 5 data bits per character (bit 0x20 = more follows, bit 0x10 of the
 * last character = sign), characters offset by 48 ('0').
 */

/** Longest character group accepted per count: 7 x 5 bits covers every 32-bit run length difference. */
const MAX_GROUP = 7;

export function compressRle(rle: Rle): CompressedRle {
  const codes: number[] = [];
  const counts = rle.counts;
  for (let i = 0; i < counts.length; i++) {
    let x = counts[i]!;
    if (i > 2) x -= counts[i - 2]!;
    let more = true;
    while (more) {
      // x & 0x1f and x >> 5 with arithmetic that stays exact beyond 32 bits.
      let c = ((x % 32) + 32) % 32;
      x = Math.floor(x / 32);
      more = c & 0x10 ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      codes.push(c + 48);
    }
  }
  let text = '';
  for (let i = 0; i < codes.length; i += 8192) text += String.fromCharCode(...codes.slice(i, i + 8192));
  return { size: [rle.size[0], rle.size[1]], counts: text };
}

export function decompressRle(compressed: CompressedRle): Rle {
  const [h, w] = compressed.size;
  assertMaskSize(h, w, 'compressed RLE');
  const s = compressed.counts;
  const counts: number[] = [];
  let p = 0;
  while (p < s.length) {
    let x = 0;
    let k = 0;
    let more = true;
    while (more) {
      if (p >= s.length) throw new Error(`compressed RLE: counts string ends inside a number (at character ${p})`);
      const c = s.charCodeAt(p) - 48;
      if (c < 0 || c > 63) {
        throw new Error(`compressed RLE: invalid character ${JSON.stringify(s[p])} at ${p} (allowed: '0' to 'o')`);
      }
      x += (c & 0x1f) * 2 ** (5 * k);
      more = (c & 0x20) !== 0;
      p++;
      k++;
      if (k > MAX_GROUP)
        throw new Error(`compressed RLE: number at character ${p - k} is longer than ${MAX_GROUP} characters`);
      if (!more && c & 0x10) x -= 2 ** (5 * k);
    }
    const m = counts.length;
    if (m > 2) x += counts[m - 2]!;
    if (x < 0 || x > 0xffffffff) throw new Error(`compressed RLE: run ${m} decodes to ${x}, not a valid run length`);
    counts.push(x);
  }
  return { size: [h, w], counts };
}
