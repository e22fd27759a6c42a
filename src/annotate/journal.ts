import { closeSync, existsSync, fsyncSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import type { AnnotateSettings, ImageOutcome } from './types.js';

/** What a run is: a resumed run must be the same run, or its journal would mix two answers. */
export interface RunIdentity {
  settings: AnnotateSettings;
  /** The model folder's fingerprint (model-fingerprint.ts). */
  model: string;
  /** The image paths in run order (their hash is what the journal keeps). */
  images: string[];
}

export interface JournalHeader {
  journal: 'ape-annotate/1';
  settings: AnnotateSettings;
  model: string;
  images: number;
  imagesHash: string;
}

export interface JournalEntry {
  /** The image's position in the run's list. */
  i: number;
  outcome: ImageOutcome;
}

export const JOURNAL_FILE = 'journal.jsonl';

function sameHeader(a: JournalHeader, b: JournalHeader): string | null {
  if (JSON.stringify(a.settings) !== JSON.stringify(b.settings))
    return `its prompts or threshold (${JSON.stringify(a.settings)})`;
  if (a.model !== b.model) return `its model (fingerprint ${a.model}, this one ${b.model})`;
  if (a.images !== b.images || a.imagesHash !== b.imagesHash) return `its list of images (${a.images} images)`;
  return null;
}

/**
 * The record of finished images: one JSON line per image, after a header line naming the run.
 * Lines are appended with one write each, so a killed process leaves at most one partial last
 * line, which the next open cuts off. The first line for an image wins: an image finished twice
 * (a queue job run again after its worker died) counts once.
 */
export class Journal {
  private readonly fd: number;
  readonly done = new Map<number, ImageOutcome>();
  private sinceSync = 0;

  private constructor(
    readonly path: string,
    header: JournalHeader,
  ) {
    // A journal without a whole header line was cut short as it was being created: start afresh.
    const fresh = !existsSync(path) || !this.load(header);
    if (fresh) closeSync(openSync(path, 'w'));
    this.fd = openSync(path, 'a');
    if (fresh) {
      writeSync(this.fd, `${JSON.stringify(header)}\n`);
      fsyncSync(this.fd);
    }
  }

  static open(path: string, header: JournalHeader): Journal {
    return new Journal(path, header);
  }

  /** Reads the entries of an existing journal; false when it has no header line yet. */
  private load(header: JournalHeader): boolean {
    // Line by line from the bytes: a journal of millions of images is longer than any JS string.
    const bytes = readFileSync(this.path);
    let end = 0;
    let lineNo = 0;
    for (let start = 0; start < bytes.length; ) {
      const nl = bytes.indexOf(10, start);
      // No newline: the write of the last line was cut short; it is dropped below.
      if (nl < 0) break;
      const line = bytes.toString('utf8', start, nl);
      lineNo++;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (error) {
        throw new Error(
          `${this.path}, line ${lineNo}: not valid JSON (${(error as Error).message}); the journal is damaged`,
        );
      }
      if (lineNo === 1) {
        const h = value as JournalHeader;
        if (h?.journal !== header.journal)
          throw new Error(`${this.path} is not an ape annotate journal (line 1: ${line.slice(0, 80)})`);
        const differs = sameHeader(h, header);
        if (differs)
          throw new Error(
            `${this.path} belongs to a run that differs in ${differs}; use another --out folder, or delete the journal to start over`,
          );
      } else {
        const e = value as JournalEntry;
        if (!Number.isInteger(e?.i) || e.i < 0 || e.i >= header.images || typeof e.outcome?.ok !== 'boolean') {
          throw new Error(`${this.path}, line ${lineNo}: not a journal entry of this run (${line.slice(0, 80)})`);
        }
        if (!this.done.has(e.i)) this.done.set(e.i, e.outcome);
      }
      start = nl + 1;
      end = start;
    }
    if (lineNo === 0) return false;
    if (end < bytes.length) {
      const fd = openSync(this.path, 'r+');
      ftruncateSync(fd, end);
      closeSync(fd);
    }
    return true;
  }

  /** Records an image's outcome (once: a second outcome of the same image is ignored). */
  record(i: number, outcome: ImageOutcome): boolean {
    if (this.done.has(i)) return false;
    this.done.set(i, outcome);
    const entry: JournalEntry = { i, outcome };
    writeSync(this.fd, `${JSON.stringify(entry)}\n`);
    // A killed process loses nothing the OS has; fsync now and then bounds what a power cut loses.
    if (++this.sinceSync >= 64) {
      fsyncSync(this.fd);
      this.sinceSync = 0;
    }
    return true;
  }

  close(): void {
    fsyncSync(this.fd);
    closeSync(this.fd);
  }
}
