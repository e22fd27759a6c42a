/**
 * A small PNG codec for what general decoders get wrong for label maps: single-channel PNGs read
 * with their exact stored values (palette PNGs give their indices, as PIL's 'P' mode does, not
 * the palette colours), and 8-bit grey/RGB PNGs written exactly. zlib is injected, so the same
 * code runs on Node (node:zlib) and in browsers (CompressionStream).
 */
import { checkPixelBudget, sniffImageFormat } from './image-header.js';
import {
  DEFAULT_MAX_PIXELS,
  ImageError,
  blobBytes,
  imageChannels,
  type GrayImage,
  type RgbImage,
} from './image-types.js';
import { concatArrays } from '../util/concat-arrays.js';

/** zlib-format inflate that must fail (or stop) once more than maxOutput bytes would come out. */
export type Inflate = (data: Uint8Array, maxOutput: number) => Promise<Uint8Array>;
/** zlib-format deflate. */
export type Deflate = (data: Uint8Array) => Promise<Uint8Array>;

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes: Uint8Array, start: number, end: number): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function u32be(b: Uint8Array, i: number): number {
  return ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
}

const COLOR_TYPE_NAMES: Record<number, string> = {
  0: 'greyscale',
  2: 'RGB',
  3: 'palette',
  4: 'greyscale with alpha',
  6: 'RGBA',
};

// Adam7 passes: [xStart, yStart, xStep, yStep].
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
] as const;

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Reverses the per-row filters of one (sub-)image in place; rows start with their filter byte. */
function unfilter(data: Uint8Array, offset: number, rows: number, rowBytes: number, bpp: number, source: string): void {
  let prev = -1;
  for (let y = 0; y < rows; y++) {
    const row = offset + y * (rowBytes + 1) + 1;
    const filter = data[row - 1];
    // One loop per filter type: this runs once per byte of every label map read.
    if (filter === 0) {
      // None
    } else if (filter === 1) {
      for (let i = bpp; i < rowBytes; i++) data[row + i] = (data[row + i]! + data[row + i - bpp]!) & 0xff;
    } else if (filter === 2) {
      if (prev >= 0) for (let i = 0; i < rowBytes; i++) data[row + i] = (data[row + i]! + data[prev + i]!) & 0xff;
    } else if (filter === 3) {
      for (let i = 0; i < rowBytes; i++) {
        const a = i >= bpp ? data[row + i - bpp]! : 0;
        const b = prev >= 0 ? data[prev + i]! : 0;
        data[row + i] = (data[row + i]! + ((a + b) >> 1)) & 0xff;
      }
    } else if (filter === 4) {
      for (let i = 0; i < rowBytes; i++) {
        const a = i >= bpp ? data[row + i - bpp]! : 0;
        const b = prev >= 0 ? data[prev + i]! : 0;
        const c = prev >= 0 && i >= bpp ? data[prev + i - bpp]! : 0;
        data[row + i] = (data[row + i]! + paeth(a, b, c)) & 0xff;
      }
    } else {
      throw new ImageError('corrupt', source, `PNG row ${y} has invalid filter type ${filter}`);
    }
    prev = row;
  }
}

export interface SingleChannelPngOptions {
  maxPixels?: number;
  source?: string;
}

/**
 * Decodes an 8-bit greyscale PNG or a palette PNG (1/2/4/8-bit indices) to its exact stored values.
 * Anything else (RGB, alpha, 16-bit, low-bit greyscale whose meaning is ambiguous) is refused
 * with an error that says what the file is.
 */
export async function decodeSingleChannelPng(
  bytes: Uint8Array,
  inflate: Inflate,
  options: SingleChannelPngOptions = {},
): Promise<GrayImage & { palette: boolean }> {
  const source = options.source ?? 'image';
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  const format = sniffImageFormat(bytes, source);
  if (format !== 'png') {
    throw new ImageError(
      'not-single-channel',
      source,
      `label maps must be single-channel PNG; found ${format.toUpperCase()}`,
    );
  }
  let at = 8;
  let header: { width: number; height: number; depth: number; colorType: number; interlace: number } | undefined;
  let hasPalette = false;
  const idat: Uint8Array[] = [];
  let idatBytes = 0;
  let ended = false;
  while (!ended) {
    if (at + 12 > bytes.length)
      throw new ImageError('truncated', source, `PNG ends at byte ${bytes.length} before its IEND chunk`);
    const length = u32be(bytes, at);
    const type = String.fromCharCode(bytes[at + 4]!, bytes[at + 5]!, bytes[at + 6]!, bytes[at + 7]!);
    const dataStart = at + 8;
    const dataEnd = dataStart + length;
    if (length > 0x7fffffff || dataEnd + 4 > bytes.length) {
      throw new ImageError('truncated', source, `PNG ends at byte ${bytes.length}, inside chunk '${type}'`);
    }
    if (crc32(bytes, at + 4, dataEnd) !== u32be(bytes, dataEnd)) {
      throw new ImageError('corrupt', source, `PNG chunk '${type}' at byte ${at} fails its CRC check`);
    }
    if (!header && type !== 'IHDR')
      throw new ImageError('corrupt', source, `PNG starts with chunk '${type}' instead of IHDR`);
    if (type === 'IHDR') {
      if (length !== 13) throw new ImageError('corrupt', source, `PNG IHDR has length ${length}, expected 13`);
      header = {
        width: u32be(bytes, dataStart),
        height: u32be(bytes, dataStart + 4),
        depth: bytes[dataStart + 8]!,
        colorType: bytes[dataStart + 9]!,
        interlace: bytes[dataStart + 12]!,
      };
      if (bytes[dataStart + 10] !== 0 || bytes[dataStart + 11] !== 0 || header.interlace > 1) {
        throw new ImageError('corrupt', source, 'PNG IHDR has an unknown compression, filter or interlace method');
      }
    } else if (type === 'PLTE') {
      hasPalette = true;
    } else if (type === 'IDAT') {
      idat.push(bytes.subarray(dataStart, dataEnd));
      idatBytes += length;
    } else if (type === 'IEND') {
      ended = true;
    }
    at = dataEnd + 4;
  }
  if (!header) throw new ImageError('corrupt', source, 'PNG has no IHDR');
  const { width, height, depth, colorType, interlace } = header;
  const kind = `${depth}-bit ${COLOR_TYPE_NAMES[colorType] ?? `colour type ${colorType}`}`;
  const palette = colorType === 3;
  if (!((colorType === 0 && depth === 8) || (palette && [1, 2, 4, 8].includes(depth)))) {
    throw new ImageError(
      'not-single-channel',
      source,
      `PNG is ${kind}; label maps must be 8-bit greyscale or palette PNGs with exact values`,
    );
  }
  if (palette && !hasPalette) throw new ImageError('corrupt', source, 'palette PNG has no PLTE chunk');
  if (width === 0 || height === 0) throw new ImageError('empty', source, `PNG has zero size (${width}x${height})`);
  checkPixelBudget(width, height, maxPixels, source);
  if (idat.length === 0) throw new ImageError('corrupt', source, 'PNG has no IDAT (image data) chunk');

  const passes = interlace
    ? ADAM7.map(([x0, y0, dx, dy]) => ({
        x0,
        y0,
        dx,
        dy,
        w: Math.ceil((width - x0) / dx),
        h: Math.ceil((height - y0) / dy),
      })).filter((p) => p.w > 0 && p.h > 0)
    : [{ x0: 0, y0: 0, dx: 1, dy: 1, w: width, h: height }];
  const rowBytesOf = (w: number) => Math.ceil((w * depth) / 8);
  const expected = passes.reduce((sum, p) => sum + p.h * (rowBytesOf(p.w) + 1), 0);

  const compressed = new Uint8Array(idatBytes);
  let offset = 0;
  for (const part of idat) {
    compressed.set(part, offset);
    offset += part.length;
  }
  let raw: Uint8Array;
  try {
    raw = await inflate(compressed, expected);
  } catch (error) {
    throw new ImageError('corrupt', source, `PNG image data does not decompress (${(error as Error).message})`);
  }
  if (raw.length < expected) {
    throw new ImageError(
      'truncated',
      source,
      `PNG image data holds ${raw.length} bytes; ${width}x${height} ${kind} needs ${expected}`,
    );
  }

  const out = new Uint8Array(width * height);
  const perByte = 8 / depth;
  const maskBits = (1 << depth) - 1;
  offset = 0;
  for (const p of passes) {
    const rowBytes = rowBytesOf(p.w);
    unfilter(raw, offset, p.h, rowBytes, 1, source);
    for (let y = 0; y < p.h; y++) {
      const row = offset + y * (rowBytes + 1) + 1;
      const outRow = (p.y0 + y * p.dy) * width;
      if (depth === 8 && p.dx === 1) {
        out.set(raw.subarray(row, row + p.w), outRow + p.x0);
        continue;
      }
      for (let x = 0; x < p.w; x++) {
        let v: number;
        if (depth === 8) v = raw[row + x]!;
        else {
          const byte = raw[row + Math.floor(x / perByte)]!;
          v = (byte >> (8 - depth * ((x % perByte) + 1))) & maskBits;
        }
        out[outRow + p.x0 + x * p.dx] = v;
      }
    }
    offset += p.h * (rowBytes + 1);
  }
  return { width, height, data: out, palette };
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out, 4, 8 + data.length));
  return out;
}

/**
 * Filters each row with the type that minimises the sum of absolute byte values (libpng's
 * heuristic), which is what makes flat label maps and photos compress well.
 */
function filterRows(pixels: Uint8Array, width: number, height: number, bpp: number): Uint8Array {
  const rowBytes = width * bpp;
  const out = new Uint8Array(height * (rowBytes + 1));
  const candidate = new Uint8Array(rowBytes);
  const best = new Uint8Array(rowBytes);
  for (let y = 0; y < height; y++) {
    const row = y * rowBytes;
    const prev = row - rowBytes;
    let bestScore = Infinity;
    let bestFilter = 0;
    for (let filter = 0; filter <= 4; filter++) {
      let score = 0;
      for (let i = 0; i < rowBytes; i++) {
        const x = pixels[row + i]!;
        const a = i >= bpp ? pixels[row + i - bpp]! : 0;
        const b = y > 0 ? pixels[prev + i]! : 0;
        const c = y > 0 && i >= bpp ? pixels[prev + i - bpp]! : 0;
        const pred =
          filter === 0 ? 0 : filter === 1 ? a : filter === 2 ? b : filter === 3 ? (a + b) >> 1 : paeth(a, b, c);
        const v = (x - pred) & 0xff;
        candidate[i] = v;
        score += v < 128 ? v : 256 - v;
      }
      if (score < bestScore) {
        bestScore = score;
        bestFilter = filter;
        best.set(candidate);
      }
    }
    out[y * (rowBytes + 1)] = bestFilter;
    out.set(best, y * (rowBytes + 1) + 1);
  }
  return out;
}

/** 8-bit greyscale (GrayImage) or RGB (RgbImage) PNG, pixel-exact. */
export async function encodePngWith(image: RgbImage | GrayImage, deflate: Deflate): Promise<Uint8Array> {
  const channels = imageChannels(image, 'encodePng');
  const { width, height } = image;
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  ihdr[8] = 8;
  ihdr[9] = channels === 1 ? 0 : 2;
  const compressed = await deflate(filterRows(image.data, width, height, channels));
  return concatArrays(Uint8Array, [
    Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', compressed),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

/** Inflate/deflate over the Compression Streams API (browsers, Deno, Node >= 18). */
export const streamInflate: Inflate = async (data, maxOutput) => {
  const stream = new Blob([blobBytes(data)]).stream().pipeThrough(new DecompressionStream('deflate'));
  const reader = stream.getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    parts.push(value);
    // Stop reading once the expected size is reached; anything more is not needed.
    if (total >= maxOutput) {
      await reader.cancel();
      break;
    }
  }
  const out = new Uint8Array(Math.min(total, maxOutput));
  let offset = 0;
  for (const p of parts) {
    const n = Math.min(p.length, out.length - offset);
    out.set(p.subarray(0, n), offset);
    offset += n;
    if (offset >= out.length) break;
  }
  return out;
};

export const streamDeflate: Deflate = async (data) => {
  const stream = new Blob([blobBytes(data)]).stream().pipeThrough(new CompressionStream('deflate'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
};
