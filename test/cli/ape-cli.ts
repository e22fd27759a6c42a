import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository root, where the CLI tests run `ape`. */
export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** Runs the `ape` command line from source in a child process; returns its exit code and output. */
export function ape(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
