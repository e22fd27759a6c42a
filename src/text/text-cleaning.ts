import { CP1252_C1, htmlUnescape } from './html-entities.js';
import { required } from '../util/checked.js';

/**
 * The text clean-up CLIP's tokenizer does before BPE (basic_clean + whitespace_clean), with the
 * parts of ftfy.fix_text (ftfy 6, default settings) that change real prompts reimplemented:
 * terminal escapes, HTML entities, UTF-8 read as Windows-1252 ("mojibake") for whole strings,
 * C1 controls, Latin ligatures, full-width characters, curly quotes, line breaks, control
 * characters and NFC. ftfy's finer mojibake heuristics (partial or mixed encodings) are not
 * reproduced: such strings pass through unchanged apart from the other fixes.
 */

/** Python's str.isspace() set, which `re`'s \s and str.strip() use (JS \s differs: it has U+FEFF, lacks U+0085 and U+001C-U+001F). */
const PY_SPACE = '\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_SPACE_RUN = new RegExp(`[${PY_SPACE}]+`, 'gu');
const PY_SPACE_CHAR = new RegExp(`^[${PY_SPACE}]$`, 'u');

/**
 * Python's str.strip(). A scan from each end rather than `[\s]+$`, which backtracks quadratically
 * on a long run of spaces followed by anything else.
 */
export function pyStrip(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && PY_SPACE_CHAR.test(text[start]!)) start++;
  while (end > start && PY_SPACE_CHAR.test(text[end - 1]!)) end--;
  return text.slice(start, end);
}

/** CLIP's whitespace_clean: runs of whitespace become one space, then strip. */
export function whitespaceClean(text: string): string {
  return pyStrip(text.replace(PY_SPACE_RUN, ' '));
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching terminal escapes is the point
const TERMINAL_ESCAPE = /\x1b\[((?:\d|;)*)([a-zA-Z])/g;
const SINGLE_QUOTES = /[\u02bc\u2018-\u201b]/g;
const DOUBLE_QUOTES = /[\u201c-\u201f]/g;
const LINE_BREAKS = /\r\n|[\r\u2028\u2029\u0085]/g;
const CONTROL_CHARS =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
  /[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc\u{1d173}-\u{1d17a}\u{e0000}-\u{e007f}]/gu;
const LIGATURES = /[\u0132\u0133\u0149\u01c4-\u01cc\u01f1-\u01f3\ufb00-\ufb06]/g;
const WIDE_OR_HALF = /[\u3000\uff01-\uffef]/g;
const C1_CONTROLS = /[\x80-\x9f]/g;

/** A character that only appears in UTF-8 text mis-decoded as Windows-1252: a lead byte followed by a continuation byte. */
const MOJIBAKE_HINT =
  /[\u00c2-\u00f4][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013\u2014\u2018-\u201a\u201c-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]/;

const CP1252_BYTE = new Map<number, number>([...CP1252_C1].map(([byte, cp]) => [cp, byte]));

/** Re-reads a whole string as UTF-8 if it looks like UTF-8 decoded as Windows-1252 and the bytes are valid UTF-8. */
export function fixMojibake(text: string): string {
  if (!MOJIBAKE_HINT.test(text)) return text;
  const bytes: number[] = [];
  for (const ch of text) {
    const cp = required(ch.codePointAt(0), 'the code point of a character');
    if (cp < 0x100) bytes.push(cp);
    else {
      const b = CP1252_BYTE.get(cp);
      if (b === undefined) return text;
      bytes.push(b);
    }
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array(bytes));
  } catch {
    return text;
  }
}

/** The ftfy.fix_text steps listed above, in ftfy's order. */
export function fixText(text: string): string {
  let t = text.replace(TERMINAL_ESCAPE, '');
  // ftfy's "auto" HTML mode: leave entities alone when the text looks like markup.
  if (!t.includes('<')) t = htmlUnescapeStrict(t);
  t = fixMojibake(t);
  t = t.replace(C1_CONTROLS, (c) => {
    const mapped = CP1252_C1.get(c.charCodeAt(0));
    return mapped === undefined ? c : String.fromCodePoint(mapped);
  });
  t = t.replace(LIGATURES, (c) => c.normalize('NFKC'));
  t = t.replace(WIDE_OR_HALF, (c) => (c === '\u3000' ? ' ' : c.normalize('NFKC')));
  t = t.replace(SINGLE_QUOTES, "'").replace(DOUBLE_QUOTES, '"');
  t = t.replace(LINE_BREAKS, '\n');
  t = t.replace(CONTROL_CHARS, '');
  return t.normalize('NFC');
}

/** ftfy's own entity pass only takes references closed by a semicolon. */
function htmlUnescapeStrict(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(/&#?[0-9A-Za-z]{1,24};/g, (ref) => {
    const out = htmlUnescape(ref);
    return out === ref ? ref : out;
  });
}

/** CLIP's basic_clean (fix_text, html.unescape twice, strip) then whitespace_clean, then lower-case. */
export function clipCleanText(text: string): string {
  const basic = pyStrip(htmlUnescape(htmlUnescape(fixText(text))));
  return whitespaceClean(basic).toLowerCase();
}
