/**
 * Image reading and writing in browsers (and workers): decoding through createImageBitmap and a
 * 2-D canvas, with the same header checks, limits and errors as the Node reader. No Node imports,
 * so a bundler can take this file as it is.
 */
import { checkPixelBudget, inspectImage, mimeType } from './image-header.js';
import { decodeSingleChannelPng, encodePngWith, streamDeflate, streamInflate } from './image-png.js';
import {
  DEFAULT_MAX_BYTES,
  DEFAULT_MAX_PIXELS,
  ImageError,
  blobBytes,
  checkByteBudget,
  imageChannels,
  toRgb,
  type ByteLimitedDecodeOptions,
  type GrayImage,
  type RgbImage,
} from './image-types.js';

export type BrowserImageSource = Blob | ArrayBuffer | Uint8Array | HTMLImageElement | ImageBitmap;

/** maxBytes bounds Blob/ArrayBuffer/Uint8Array input. */
export type BrowserDecodeOptions = ByteLimitedDecodeOptions;

type Canvas2D = OffscreenCanvasRenderingContext2D | CanvasRenderingContext2D;

function makeContext(
  width: number,
  height: number,
): { canvas: OffscreenCanvas | HTMLCanvasElement; context: Canvas2D } {
  let canvas: OffscreenCanvas | HTMLCanvasElement;
  if (typeof OffscreenCanvas !== 'undefined') canvas = new OffscreenCanvas(width, height);
  else if (typeof document !== 'undefined') {
    canvas = document.createElement('canvas');
    canvas.width = width;
    canvas.height = height;
  } else throw new Error('image-browser: neither OffscreenCanvas nor document is available');
  const context = canvas.getContext('2d', { willReadFrequently: true }) as Canvas2D | null;
  if (!context) throw new Error('image-browser: could not get a 2-D canvas context');
  return { canvas, context };
}

async function bytesOf(source: Blob | ArrayBuffer | Uint8Array, maxBytes: number, name: string): Promise<Uint8Array> {
  const size = source instanceof Uint8Array || source instanceof ArrayBuffer ? source.byteLength : source.size;
  checkByteBudget(size, maxBytes, name, 'input');
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  return new Uint8Array(await source.arrayBuffer());
}

function isElement(source: BrowserImageSource): source is HTMLImageElement {
  return typeof HTMLImageElement !== 'undefined' && source instanceof HTMLImageElement;
}

function isBitmap(source: BrowserImageSource): source is ImageBitmap {
  return typeof ImageBitmap !== 'undefined' && source instanceof ImageBitmap;
}

/** Reads the pixels of anything drawable into packed RGB (alpha dropped, as on Node). */
function drawToRgb(drawable: CanvasImageSource, width: number, height: number): RgbImage {
  const { context } = makeContext(width, height);
  context.drawImage(drawable, 0, 0);
  const rgba = context.getImageData(0, 0, width, height).data;
  return { width, height, data: toRgb(rgba, width * height, 4) };
}

/**
 * Decodes PNG, JPEG or WebP (bytes or Blob), an already loaded <img>, or an ImageBitmap to RGB.
 * EXIF orientation is applied; alpha is dropped.
 */
export async function decodeImage(source: BrowserImageSource, options: BrowserDecodeOptions = {}): Promise<RgbImage> {
  const name = options.source ?? 'image';
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (isElement(source)) {
    if (!source.complete || source.naturalWidth === 0) {
      throw new ImageError('corrupt', name, 'the <img> element has not loaded or its image is broken');
    }
    checkPixelBudget(source.naturalWidth, source.naturalHeight, maxPixels, name);
    const bitmap = await createImageBitmap(source);
    try {
      return drawToRgb(bitmap, bitmap.width, bitmap.height);
    } finally {
      bitmap.close();
    }
  }
  if (isBitmap(source)) {
    if (source.width === 0 || source.height === 0) throw new ImageError('empty', name, 'ImageBitmap has zero size');
    checkPixelBudget(source.width, source.height, maxPixels, name);
    return drawToRgb(source, source.width, source.height);
  }
  const bytes = await bytesOf(source, options.maxBytes ?? DEFAULT_MAX_BYTES, name);
  const header = inspectImage(bytes, { source: name, maxPixels });
  if (typeof createImageBitmap === 'undefined') {
    throw new Error(`${name}: createImageBitmap is not available here; on Node use decodeImage from image-node`);
  }
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(new Blob([blobBytes(bytes)], { type: mimeType(header.format) }), {
      imageOrientation: 'from-image',
      premultiplyAlpha: 'none',
      colorSpaceConversion: 'none',
    });
  } catch (error) {
    throw new ImageError(
      'corrupt',
      name,
      `${header.format.toUpperCase()} ${header.width}x${header.height} could not be decoded: ${(error as Error).message}`,
    );
  }
  try {
    return drawToRgb(bitmap, bitmap.width, bitmap.height);
  } finally {
    bitmap.close();
  }
}

/** Label map from an 8-bit greyscale or palette PNG, exact values (same rules as on Node). */
export async function readGrayPng(
  source: Blob | ArrayBuffer | Uint8Array,
  options: BrowserDecodeOptions = {},
): Promise<GrayImage> {
  const name = options.source ?? 'image';
  const bytes = await bytesOf(source, options.maxBytes ?? DEFAULT_MAX_BYTES, name);
  const { width, height, data } = await decodeSingleChannelPng(bytes, streamInflate, {
    maxPixels: options.maxPixels,
    source: name,
  });
  return { width, height, data };
}

/**
 * Pixel-exact PNG (greyscale for a GrayImage, RGB for an RgbImage). Written by the project's own
 * encoder over CompressionStream rather than canvas.toBlob: a canvas cannot store one channel,
 * and its colour management may alter values.
 */
export async function encodePng(image: RgbImage | GrayImage): Promise<Uint8Array> {
  return encodePngWith(image, streamDeflate);
}

/** RGBA ImageData for putImageData / display. */
export function toImageData(image: RgbImage | GrayImage): ImageData {
  const channels = imageChannels(image, 'toImageData');
  const pixels = image.width * image.height;
  const rgba = new Uint8ClampedArray(pixels * 4);
  for (let i = 0; i < pixels; i++) {
    for (let c = 0; c < 3; c++) rgba[i * 4 + c] = image.data[channels === 3 ? i * 3 + c : i]!;
    rgba[i * 4 + 3] = 255;
  }
  return new ImageData(rgba, image.width, image.height);
}

/** JPEG or WebP through the canvas encoder (lossy formats have no exactness to keep). */
export async function encodeLossy(
  image: RgbImage | GrayImage,
  type: 'image/jpeg' | 'image/webp',
  options: { quality?: number } = {},
): Promise<Uint8Array> {
  const { canvas, context } = makeContext(image.width, image.height);
  context.putImageData(toImageData(image), 0, 0);
  // 1-100 like the Node encoders; the canvas wants 0-1.
  const quality = (options.quality ?? 90) / 100;
  const blob =
    'convertToBlob' in canvas
      ? await canvas.convertToBlob({ type, quality })
      : await new Promise<Blob>((resolve, reject) =>
          (canvas as HTMLCanvasElement).toBlob(
            (b) => (b ? resolve(b) : reject(new Error(`canvas could not encode ${type}`))),
            type,
            quality,
          ),
        );
  if (blob.type !== type) throw new Error(`this browser cannot encode ${type} (got ${blob.type || 'nothing'})`);
  return new Uint8Array(await blob.arrayBuffer());
}

export async function encodeJpeg(image: RgbImage | GrayImage, options: { quality?: number } = {}): Promise<Uint8Array> {
  return encodeLossy(image, 'image/jpeg', options);
}

export async function encodeWebp(image: RgbImage | GrayImage, options: { quality?: number } = {}): Promise<Uint8Array> {
  return encodeLossy(image, 'image/webp', options);
}
