/**
 * Exact minimum-cost assignment (the Hungarian algorithm in its shortest-augmenting-path form with
 * row/column potentials, O(n^2 m) for an n x m matrix with n <= m). Rectangular matrices assign
 * every element of the shorter side once; the result matches scipy's linear_sum_assignment.
 */
export interface Assignment {
  /** Row indices, ascending. */
  rows: number[];
  /** The column assigned to rows[i]. */
  cols: number[];
  /** Sum of the chosen costs. */
  cost: number;
}

/**
 * `cost` is row-major [rows, cols]. Non-finite entries are refused: an infinite cost usually means
 * a NaN upstream (a diverged model), and silently matching around it hides the bug.
 */
export function linearSumAssignment(cost: ArrayLike<number>, rows: number, cols: number): Assignment {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 0) {
    throw new Error(`linearSumAssignment: bad shape ${rows}x${cols}`);
  }
  if (cost.length !== rows * cols) {
    throw new Error(`linearSumAssignment: ${cost.length} costs for a ${rows}x${cols} matrix`);
  }
  for (let i = 0; i < cost.length; i++) {
    if (!Number.isFinite(cost[i])) {
      throw new Error(`linearSumAssignment: cost[${Math.floor(i / cols)}, ${i % cols}] is ${cost[i]}`);
    }
  }
  if (rows === 0 || cols === 0) return { rows: [], cols: [], cost: 0 };
  const transposed = rows > cols;
  const n = transposed ? cols : rows;
  const m = transposed ? rows : cols;
  const at = transposed ? (i: number, j: number) => cost[j * cols + i]! : (i: number, j: number) => cost[i * cols + j]!;
  const colOfRow = solve(at, n, m);
  const pairs: Array<[number, number]> = [];
  for (let i = 0; i < n; i++) pairs.push(transposed ? [colOfRow[i]!, i] : [i, colOfRow[i]!]);
  pairs.sort((a, b) => a[0] - b[0]);
  let total = 0;
  for (const [r, c] of pairs) total += cost[r * cols + c]!;
  return { rows: pairs.map((p) => p[0]), cols: pairs.map((p) => p[1]), cost: total };
}

/** n <= m. Returns, for each row, its column. Indices are 1-based inside, 0 is the virtual column. */
function solve(at: (i: number, j: number) => number, n: number, m: number): Int32Array {
  const u = new Float64Array(n + 1);
  const v = new Float64Array(m + 1);
  const rowOfCol = new Int32Array(m + 1); // 0 = free
  const way = new Int32Array(m + 1);
  const minv = new Float64Array(m + 1);
  const used = new Uint8Array(m + 1);
  for (let i = 1; i <= n; i++) {
    rowOfCol[0] = i;
    let j0 = 0;
    minv.fill(Infinity);
    used.fill(0);
    do {
      used[j0] = 1;
      const i0 = rowOfCol[j0]!;
      let delta = Infinity;
      let j1 = -1;
      for (let j = 1; j <= m; j++) {
        if (used[j]) continue;
        const reduced = at(i0 - 1, j - 1) - u[i0]! - v[j]!;
        if (reduced < minv[j]!) {
          minv[j] = reduced;
          way[j] = j0;
        }
        if (minv[j]! < delta) {
          delta = minv[j]!;
          j1 = j;
        }
      }
      for (let j = 0; j <= m; j++) {
        if (used[j]) {
          u[rowOfCol[j]!]! += delta;
          v[j]! -= delta;
        } else {
          minv[j]! -= delta;
        }
      }
      j0 = j1;
    } while (rowOfCol[j0] !== 0);
    do {
      const j1 = way[j0]!;
      rowOfCol[j0] = rowOfCol[j1]!;
      j0 = j1;
    } while (j0 !== 0);
  }
  const colOfRow = new Int32Array(n);
  for (let j = 1; j <= m; j++) if (rowOfCol[j]! > 0) colOfRow[rowOfCol[j]! - 1] = j - 1;
  return colOfRow;
}
