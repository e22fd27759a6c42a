/**
 * APE's history bank of negative prompts: a FIFO of sentence embeddings from earlier samples,
 * appended to later batches as extra prompts that no object matches, so the model learns to
 * reject phrases that do not apply. Entries equal (by text) to a current prompt are left out.
 */
export interface BankEntry {
  text: string;
  embedding: Float32Array;
}

export interface NegativeBankState {
  capacity: number;
  texts: string[];
  /** All embeddings back to back, `dim` each. */
  embeddings: Float32Array;
  dim: number;
}

export class NegativeBank {
  private entries: BankEntry[] = [];

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 0)
      throw new Error(`NegativeBank: capacity must be a non-negative integer, got ${capacity}`);
  }

  get size(): number {
    return this.entries.length;
  }

  /** Up to `count` most recent entries whose text is not in `exclude`, newest first. */
  negatives(exclude: ReadonlySet<string>, count = this.capacity): BankEntry[] {
    const out: BankEntry[] = [];
    const seen = new Set<string>();
    for (let i = this.entries.length - 1; i >= 0 && out.length < count; i--) {
      const e = this.entries[i]!;
      if (exclude.has(e.text) || seen.has(e.text)) continue;
      seen.add(e.text);
      out.push(e);
    }
    return out;
  }

  /** Adds entries (oldest first out when full); an embedding must match the bank's width. */
  push(entries: readonly BankEntry[]): void {
    if (this.capacity === 0) return;
    for (const e of entries) {
      const dim = this.entries[0]?.embedding.length;
      if (dim !== undefined && e.embedding.length !== dim)
        throw new Error(`NegativeBank: embedding of ${e.embedding.length} values, the bank holds ${dim}`);
      this.entries.push({ text: e.text, embedding: Float32Array.from(e.embedding) });
    }
    if (this.entries.length > this.capacity) this.entries.splice(0, this.entries.length - this.capacity);
  }

  getState(): NegativeBankState {
    const dim = this.entries[0]?.embedding.length ?? 0;
    const embeddings = new Float32Array(this.entries.length * dim);
    this.entries.forEach((e, i) => embeddings.set(e.embedding, i * dim));
    return { capacity: this.capacity, texts: this.entries.map((e) => e.text), embeddings, dim };
  }

  setState(state: NegativeBankState): void {
    if (state.embeddings.length !== state.texts.length * state.dim)
      throw new Error('NegativeBank: saved state has mismatched texts and embeddings');
    this.entries = state.texts.map((text, i) => ({
      text,
      embedding: state.embeddings.slice(i * state.dim, (i + 1) * state.dim),
    }));
    if (this.entries.length > this.capacity) this.entries.splice(0, this.entries.length - this.capacity);
  }
}
