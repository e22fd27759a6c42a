/**
 * Plain image containers and the error every image reader throws. No platform imports here, so
 * the Node and the browser readers (and anything that only passes pixels around) share them.
 */

/** 8-bit RGB, interleaved, row-major: pixel (x, y) is data[(y * width + x) * 3 + c]. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** 8-bit single channel, row-major: label maps and masks whose values must stay exact. */
export interface GrayImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export type ImageFormat = 'png' | 'jpeg' | 'webp';

/** Why an image could not be read; lets callers map failures (e.g. to HTTP 400 vs 413). */
export type ImageErrorReason =
  | 'unsupported' // not PNG, JPEG or WebP (the message names what was found)
  | 'truncated' // the bytes end before the image does
  | 'corrupt' // structure or data is invalid
  | 'empty' // zero bytes, or a zero width/height
  | 'too-large' // more pixels (or bytes) than the caller allows
  | 'not-single-channel'; // a label-map reader got colour, alpha or 16-bit data

export class ImageError extends Error {
  readonly reason: ImageErrorReason;
  readonly source: string;

  constructor(reason: ImageErrorReason, source: string, detail: string) {
    super(`${source}: ${detail}`);
    this.name = 'ImageError';
    this.reason = reason;
    this.source = source;
  }
}

/** Default pixel budget for decoding: a 8000x8000 photo fits; a decompression bomb does not. */
export const DEFAULT_MAX_PIXELS = 64_000_000;

export interface DecodeOptions {
  /** Largest width*height accepted, checked on the header before any pixel is decoded. */
  maxPixels?: number;
  /** Shown in error messages (a file name, a URL, "upload"). */
  source?: string;
}

/** Default limit on the encoded bytes a reader takes in (the Node and the browser reader alike). */
export const DEFAULT_MAX_BYTES = 256 * 1024 * 1024;

export interface ByteLimitedDecodeOptions extends DecodeOptions {
  /** Largest encoded size accepted, checked before the bytes are read (default 256 MiB). */
  maxBytes?: number;
}

/** Refuses (as 'too-large') an encoded input of `size` bytes over `maxBytes`; `what` says what it is ('file', 'input'). */
export function checkByteBudget(size: number, maxBytes: number, source: string, what: string): void {
  if (size > maxBytes)
    throw new ImageError('too-large', source, `${what} is ${size} bytes, more than the limit of ${maxBytes}`);
}

/** Channel count of an RgbImage (3) or GrayImage (1), checked against its dimensions. */
export function imageChannels(image: RgbImage | GrayImage, what = 'image'): 1 | 3 {
  const { width, height, data } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new Error(`${what}: width and height must be positive integers, got ${width}x${height}`);
  }
  const pixels = width * height;
  if (data.length === pixels * 3) return 3;
  if (data.length === pixels) return 1;
  throw new Error(
    `${what}: data has ${data.length} bytes; a ${width}x${height} image needs ${pixels * 3} (RGB) or ${pixels} (single channel)`,
  );
}

/** Drops alpha / expands grey: any 1-4 channel 8-bit buffer to packed RGB. */
export function toRgb(data: Uint8Array | Uint8ClampedArray, pixels: number, channels: number): Uint8Array {
  if (channels === 3) return data instanceof Uint8Array ? data : new Uint8Array(data);
  const out = new Uint8Array(pixels * 3);
  if (channels === 1 || channels === 2) {
    for (let i = 0; i < pixels; i++) {
      const v = data[i * channels]!;
      out[i * 3] = v;
      out[i * 3 + 1] = v;
      out[i * 3 + 2] = v;
    }
  } else if (channels === 4) {
    for (let i = 0; i < pixels; i++) {
      out[i * 3] = data[i * 4]!;
      out[i * 3 + 1] = data[i * 4 + 1]!;
      out[i * 3 + 2] = data[i * 4 + 2]!;
    }
  } else {
    throw new Error(`toRgb: cannot convert ${channels}-channel data`);
  }
  return out;
}

/** The same bytes typed for Blob/Response constructors (which refuse SharedArrayBuffer views). */
export function blobBytes(data: Uint8Array): Uint8Array<ArrayBuffer> {
  return data.buffer instanceof ArrayBuffer ? (data as Uint8Array<ArrayBuffer>) : new Uint8Array(data);
}
