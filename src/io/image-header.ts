/**
 * Format sniffing and header reading for encoded images, before any decoder sees the bytes:
 * names what an unsupported file is, finds the dimensions (so a pixel budget is enforced before
 * decoding allocates anything) and notices files that end early. Pure: runs in Node and browsers.
 */
import { DEFAULT_MAX_PIXELS, ImageError, type DecodeOptions, type ImageFormat } from './image-types.js';

export interface ImageHeader {
  format: ImageFormat;
  width: number;
  height: number;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function startsWith(bytes: Uint8Array, prefix: readonly number[], at = 0): boolean {
  if (bytes.length < at + prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[at + i] !== prefix[i]) return false;
  return true;
}

function ascii(bytes: Uint8Array, at: number, length: number): string {
  let s = '';
  for (let i = at; i < Math.min(bytes.length, at + length); i++) s += String.fromCharCode(bytes[i]!);
  return s;
}

function hexPrefix(bytes: Uint8Array, n = 8): string {
  return Array.from(bytes.subarray(0, n), (b) => b.toString(16).padStart(2, '0')).join(' ');
}

/** What a non-PNG/JPEG/WebP file looks like, for the error message. */
function describeUnsupported(bytes: Uint8Array): string {
  const head = ascii(bytes, 0, 12);
  if (head.startsWith('GIF87a') || head.startsWith('GIF89a')) return 'a GIF image';
  if (head.startsWith('BM')) return 'a BMP image';
  if (startsWith(bytes, [0x49, 0x49, 0x2a, 0x00]) || startsWith(bytes, [0x4d, 0x4d, 0x00, 0x2a])) return 'a TIFF image';
  if (startsWith(bytes, [0x00, 0x00, 0x01, 0x00])) return 'an ICO icon';
  if (ascii(bytes, 4, 4) === 'ftyp') {
    const brand = ascii(bytes, 8, 4);
    if (brand.startsWith('avi')) return 'an AVIF image';
    if (brand.startsWith('hei') || brand.startsWith('mif') || brand.startsWith('msf')) return 'a HEIF/HEIC image';
    return `an ISO media file (brand '${brand}')`;
  }
  if (startsWith(bytes, [0x00, 0x00, 0x00, 0x0c, 0x6a, 0x50, 0x20, 0x20])) return 'a JPEG 2000 image';
  if (startsWith(bytes, [0xff, 0x0a]) || startsWith(bytes, [0x00, 0x00, 0x00, 0x0c, 0x4a, 0x58, 0x4c, 0x20]))
    return 'a JPEG XL image';
  if (head.startsWith('8BPS')) return 'a Photoshop document';
  if (head.startsWith('%PDF')) return 'a PDF document';
  if (head.startsWith('RIFF')) return `a RIFF '${ascii(bytes, 8, 4)}' file (not WebP)`;
  if (startsWith(bytes, [0x1f, 0x8b])) return 'gzip data';
  if (startsWith(bytes, [0x50, 0x4b, 0x03, 0x04])) return 'a zip archive';
  const text = head.replace(/^\ufeff/, '').trimStart();
  if (text.startsWith('<')) return 'text/markup (SVG, HTML or XML?)';
  if (text.startsWith('{') || text.startsWith('[')) return 'JSON text';
  return `unknown data (first bytes ${hexPrefix(bytes)})`;
}

/** The format from the magic bytes; throws 'empty' or 'unsupported' (naming what was found). */
export function sniffImageFormat(bytes: Uint8Array, source = 'image'): ImageFormat {
  if (bytes.length === 0) throw new ImageError('empty', source, 'no bytes (empty file)');
  if (startsWith(bytes, PNG_SIGNATURE)) return 'png';
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (ascii(bytes, 0, 4) === 'RIFF' && ascii(bytes, 8, 4) === 'WEBP') return 'webp';
  // A prefix of a real signature is a cut-off file, not a foreign format.
  const isPrefixOf = (signature: readonly number[]) =>
    bytes.length < signature.length && bytes.every((b, i) => b === signature[i]);
  if (isPrefixOf(PNG_SIGNATURE) || isPrefixOf([0xff, 0xd8, 0xff])) {
    throw new ImageError('truncated', source, `only ${bytes.length} bytes; the file ends inside the signature`);
  }
  throw new ImageError(
    'unsupported',
    source,
    `unsupported image format: found ${describeUnsupported(bytes)}; expected PNG, JPEG or WebP`,
  );
}

function u16be(b: Uint8Array, i: number): number {
  return (b[i]! << 8) | b[i + 1]!;
}
function u32be(b: Uint8Array, i: number): number {
  return ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
}
function u32le(b: Uint8Array, i: number): number {
  return (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
}

function pngHeader(b: Uint8Array, source: string): [number, number] {
  if (b.length < 33)
    throw new ImageError('truncated', source, `PNG ends after ${b.length} bytes, inside its IHDR header`);
  if (u32be(b, 8) !== 13 || ascii(b, 12, 4) !== 'IHDR') {
    throw new ImageError(
      'corrupt',
      source,
      `PNG does not start with a 13-byte IHDR chunk (found '${ascii(b, 12, 4)}')`,
    );
  }
  // Walk the chunks: a missing IEND means the download or copy was cut short.
  let at = 8;
  let sawData = false;
  for (;;) {
    if (at + 12 > b.length)
      throw new ImageError('truncated', source, `PNG ends at byte ${b.length} before its IEND chunk`);
    const length = u32be(b, at);
    const type = ascii(b, at + 4, 4);
    if (!/^[A-Za-z]{4}$/.test(type))
      throw new ImageError('corrupt', source, `PNG chunk at byte ${at} has an invalid type`);
    if (length > 0x7fffffff)
      throw new ImageError('corrupt', source, `PNG chunk '${type}' at byte ${at} has invalid length ${length}`);
    if (at + 12 + length > b.length) {
      throw new ImageError(
        'truncated',
        source,
        `PNG ends at byte ${b.length}, inside chunk '${type}' (needs ${at + 12 + length})`,
      );
    }
    if (type === 'IDAT') sawData = true;
    if (type === 'IEND') break;
    at += 12 + length;
  }
  if (!sawData) throw new ImageError('corrupt', source, 'PNG has no IDAT (image data) chunk');
  return [u32be(b, 16), u32be(b, 20)];
}

function isJpegFrameMarker(m: number): boolean {
  return m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;
}

function jpegHeader(b: Uint8Array, source: string): [number, number] {
  let at = 2;
  let size: [number, number] | undefined;
  for (;;) {
    if (at >= b.length)
      throw new ImageError('truncated', source, `JPEG ends at byte ${b.length} before its image data`);
    if (b[at] !== 0xff)
      throw new ImageError('corrupt', source, `JPEG marker expected at byte ${at}, found 0x${b[at]!.toString(16)}`);
    while (at < b.length && b[at] === 0xff) at++; // fill bytes
    if (at >= b.length) throw new ImageError('truncated', source, `JPEG ends at byte ${b.length} inside a marker`);
    const marker = b[at++]!;
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue; // no length
    if (marker === 0xd9) throw new ImageError('corrupt', source, 'JPEG ends (EOI) before any image data');
    if (at + 2 > b.length)
      throw new ImageError('truncated', source, `JPEG ends at byte ${b.length} inside a segment header`);
    const length = u16be(b, at);
    if (length < 2)
      throw new ImageError(
        'corrupt',
        source,
        `JPEG segment 0xff${marker.toString(16)} at byte ${at} has invalid length ${length}`,
      );
    if (at + length > b.length)
      throw new ImageError(
        'truncated',
        source,
        `JPEG ends at byte ${b.length} inside segment 0xff${marker.toString(16)}`,
      );
    if (isJpegFrameMarker(marker)) {
      if (length < 8) throw new ImageError('corrupt', source, 'JPEG frame header is too short');
      size = [u16be(b, at + 5), u16be(b, at + 3)];
    }
    if (marker === 0xda) {
      if (!size) throw new ImageError('corrupt', source, 'JPEG scan starts before any frame header (SOF)');
      // Entropy-coded data escapes 0xff as 0xff00, so a real end-of-image marker after the first scan is
      // the only 0xffd9 there; look for it from the end (trailing bytes after EOI are tolerated).
      for (let i = b.length - 2; i >= at + length; i--) {
        if (b[i] === 0xff && b[i + 1] === 0xd9) return size;
      }
      throw new ImageError('truncated', source, `JPEG ends at byte ${b.length} without its end-of-image marker`);
    }
    at += length;
  }
}

function webpHeader(b: Uint8Array, source: string): [number, number] {
  const riffEnd = 8 + u32le(b, 4);
  if (riffEnd > b.length)
    throw new ImageError('truncated', source, `WebP ends at byte ${b.length}; its RIFF header says ${riffEnd}`);
  if (b.length < 30) throw new ImageError('truncated', source, `WebP ends after ${b.length} bytes, inside its header`);
  const chunk = ascii(b, 12, 4);
  if (chunk === 'VP8 ') {
    if (!startsWith(b, [0x9d, 0x01, 0x2a], 23))
      throw new ImageError('corrupt', source, 'WebP VP8 frame lacks its start code');
    return [(b[26]! | (b[27]! << 8)) & 0x3fff, (b[28]! | (b[29]! << 8)) & 0x3fff];
  }
  if (chunk === 'VP8L') {
    if (b[20] !== 0x2f) throw new ImageError('corrupt', source, 'WebP lossless stream lacks its signature byte');
    const bits = u32le(b, 21);
    return [(bits & 0x3fff) + 1, ((bits >>> 14) & 0x3fff) + 1];
  }
  if (chunk === 'VP8X') {
    if (b[20]! & 0x02)
      throw new ImageError('unsupported', source, 'animated WebP is not supported; expected a still image');
    const w = 1 + (b[24]! | (b[25]! << 8) | (b[26]! << 16));
    const h = 1 + (b[27]! | (b[28]! << 8) | (b[29]! << 16));
    return [w, h];
  }
  throw new ImageError('corrupt', source, `WebP has unknown first chunk '${chunk}'`);
}

/**
 * Format and dimensions from the header, with the checks every decode needs first: known format,
 * complete file, non-zero size, width*height within options.maxPixels.
 */
export function inspectImage(bytes: Uint8Array, options: DecodeOptions = {}): ImageHeader {
  const source = options.source ?? 'image';
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  const format = sniffImageFormat(bytes, source);
  const [width, height] =
    format === 'png'
      ? pngHeader(bytes, source)
      : format === 'jpeg'
        ? jpegHeader(bytes, source)
        : webpHeader(bytes, source);
  if (width === 0 || height === 0)
    throw new ImageError('empty', source, `${format.toUpperCase()} has zero size (${width}x${height})`);
  checkPixelBudget(width, height, maxPixels, source);
  return { format, width, height };
}

export function checkPixelBudget(width: number, height: number, maxPixels: number, source: string): void {
  if (width * height > maxPixels) {
    throw new ImageError(
      'too-large',
      source,
      `image is ${width}x${height} = ${width * height} pixels, more than the limit of ${maxPixels}`,
    );
  }
}

export function mimeType(format: ImageFormat): string {
  return format === 'png' ? 'image/png' : format === 'jpeg' ? 'image/jpeg' : 'image/webp';
}
