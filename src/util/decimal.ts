/** A plain decimal number ('0.3', '.5', '1e-2'); `Number()` alone also takes '0x1', '0b1', 'Infinity'. */
const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/** The number a decimal text (surrounding whitespace ignored) spells, or NaN for anything else. */
export function parseDecimal(text: string): number {
  const t = text.trim();
  return DECIMAL.test(t) ? Number(t) : NaN;
}
