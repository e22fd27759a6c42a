/**
 * Image reading and writing on Node, through sharp (libvips). Decoding follows what detectron2's
 * read_image does with PIL: EXIF orientation applied, alpha dropped (not composited), greyscale
 * expanded to RGB. Every input is sniffed and its header checked first (format, completeness,
 * pixel budget), so bad files fail with a message that names the problem.
 */
import { extname } from 'node:path';
import { inflateSync, deflateSync, constants as zlibConstants } from 'node:zlib';
import sharp from 'sharp';
import { writeFileAtomically } from './atomic-write.js';
import { BoundedReadError, readRegularFile } from './bounded-file.js';
import { inspectImage } from './image-header.js';
import { decodeSingleChannelPng, encodePngWith, type Inflate } from './image-png.js';
import {
  DEFAULT_MAX_BYTES,
  DEFAULT_MAX_PIXELS,
  ImageError,
  imageChannels,
  toRgb,
  type ByteLimitedDecodeOptions,
  type DecodeOptions,
  type GrayImage,
  type RgbImage,
} from './image-types.js';

/** maxBytes bounds the file, checked before reading it. */
export type ReadImageOptions = ByteLimitedDecodeOptions;

/** Decodes PNG, JPEG or WebP bytes to 8-bit RGB. */
export async function decodeImage(bytes: Uint8Array, options: DecodeOptions = {}): Promise<RgbImage> {
  const source = options.source ?? 'image';
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  const header = inspectImage(bytes, { source, maxPixels });
  let result: { data: Buffer; info: sharp.OutputInfo };
  try {
    result = await sharp(bytes, { limitInputPixels: maxPixels, failOn: 'truncated', autoOrient: true })
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (error) {
    const message = (error as Error).message;
    const reason = /end of|premature|truncat/i.test(message) ? 'truncated' : 'corrupt';
    throw new ImageError(
      reason,
      source,
      `${header.format.toUpperCase()} ${header.width}x${header.height} could not be decoded: ${message}`,
    );
  }
  const { width, height, channels } = result.info;
  const view = new Uint8Array(result.data.buffer, result.data.byteOffset, result.data.byteLength);
  const ownsBuffer = view.byteOffset === 0 && view.byteLength === view.buffer.byteLength;
  const data = channels === 3 ? (ownsBuffer ? view : view.slice()) : toRgb(view, width * height, channels);
  return { width, height, data };
}

async function readBounded(path: string, maxBytes: number): Promise<Uint8Array> {
  try {
    return await readRegularFile(path, maxBytes);
  } catch (error) {
    if (!(error instanceof BoundedReadError) || error.reason === 'missing') throw error;
    throw new ImageError(error.reason === 'too-large' ? 'too-large' : 'unsupported', path, error.detail);
  }
}

export async function readImage(path: string, options: ReadImageOptions = {}): Promise<RgbImage> {
  const bytes = await readBounded(path, options.maxBytes ?? DEFAULT_MAX_BYTES);
  return decodeImage(bytes, { ...options, source: options.source ?? path });
}

const nodeInflate: Inflate = async (data, maxOutput) =>
  // Z_SYNC_FLUSH: hand back what a cut-off stream holds; the caller reports the shortfall precisely.
  new Uint8Array(
    inflateSync(data, { maxOutputLength: Math.max(1, maxOutput), finishFlush: zlibConstants.Z_SYNC_FLUSH }),
  );

/**
 * Reads a label map: an 8-bit greyscale PNG (values as stored) or a palette PNG (the indices, as
 * PIL's 'P' mode gives them). Colour, alpha and 16-bit PNGs are refused, saying which they are.
 */
export async function readGrayPng(
  pathOrBytes: string | Uint8Array,
  options: ReadImageOptions = {},
): Promise<GrayImage> {
  const isPath = typeof pathOrBytes === 'string';
  const bytes = isPath ? await readBounded(pathOrBytes, options.maxBytes ?? DEFAULT_MAX_BYTES) : pathOrBytes;
  const source = options.source ?? (isPath ? pathOrBytes : 'image');
  const { width, height, data } = await decodeSingleChannelPng(bytes, nodeInflate, {
    maxPixels: options.maxPixels,
    source,
  });
  return { width, height, data };
}

function rawInput(image: RgbImage | GrayImage): sharp.Sharp {
  const channels = imageChannels(image, 'encode');
  const s = sharp(image.data, { raw: { width: image.width, height: image.height, channels } });
  // Without this sharp writes one-channel input as an RGB file.
  return channels === 1 ? s.toColourspace('b-w') : s;
}

/** Lossless, pixel-exact: greyscale PNG for a GrayImage, RGB PNG for an RgbImage. */
export async function encodePng(image: RgbImage | GrayImage): Promise<Uint8Array> {
  return new Uint8Array(await rawInput(image).png({ compressionLevel: 6 }).toBuffer());
}

export async function encodeJpeg(image: RgbImage | GrayImage, options: { quality?: number } = {}): Promise<Uint8Array> {
  return new Uint8Array(
    await rawInput(image)
      .jpeg({ quality: options.quality ?? 90 })
      .toBuffer(),
  );
}

export async function encodeWebp(
  image: RgbImage | GrayImage,
  options: { quality?: number; lossless?: boolean } = {},
): Promise<Uint8Array> {
  return new Uint8Array(
    await rawInput(image)
      .webp({ quality: options.quality ?? 90, lossless: options.lossless ?? false })
      .toBuffer(),
  );
}

/** PNG via the project's own encoder (exact, no libvips involved); same output format as encodePng. */
export async function encodePngPortable(image: RgbImage | GrayImage): Promise<Uint8Array> {
  return encodePngWith(image, async (data) => new Uint8Array(deflateSync(data)));
}

/**
 * Writes by extension (.png, .jpg/.jpeg, .webp), atomically: a temporary file next to the
 * target is renamed over it, so readers never see a half-written image.
 */
export async function writeImage(
  path: string,
  image: RgbImage | GrayImage,
  options: { quality?: number } = {},
): Promise<void> {
  const ext = extname(path).toLowerCase();
  let bytes: Uint8Array;
  if (ext === '.png') bytes = await encodePng(image);
  else if (ext === '.jpg' || ext === '.jpeg') bytes = await encodeJpeg(image, options);
  else if (ext === '.webp') bytes = await encodeWebp(image, options);
  else throw new Error(`writeImage: ${path}: unknown extension '${ext}'; use .png, .jpg, .jpeg or .webp`);
  await writeFileAtomically(path, (handle) => handle.writeFile(bytes));
}
