/** One inconsistency found in a dataset: where (file, record, field) and what. */
export interface CheckIssue {
  file: string;
  /** E.g. "image id 3", "annotation id 17". */
  record: string;
  field: string;
  message: string;
}

export function formatIssue(issue: CheckIssue): string {
  return `${issue.file}: ${issue.record}: ${issue.field}: ${issue.message}`;
}

/** Thrown by IssueList.add once the limit is reached, to stop a check early. */
export class TooManyIssues extends Error {
  constructor(limit: number) {
    super(`stopped after ${limit} issues`);
  }
}

/** Collects issues up to a limit; past it, add() throws TooManyIssues. */
export class IssueList {
  readonly issues: CheckIssue[] = [];

  constructor(private readonly limit: number) {}

  add(file: string, record: string, field: string, message: string): void {
    this.issues.push({ file, record, field, message });
    if (this.issues.length >= this.limit) throw new TooManyIssues(this.limit);
  }
}
