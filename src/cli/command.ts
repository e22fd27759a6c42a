/** One `ape` sub-command: a name, a one-line summary, usage text and the code that runs it. */
export interface Command {
  name: string;
  summary: string;
  usage: string;
  /** Returns the process exit code. */
  run(argv: string[]): Promise<number>;
}

/** An error whose message is meant for the user as is (no stack trace). */
export class UsageError extends Error {
  override name = 'UsageError';
}
