/**
 * Graph helpers over `Record<taskId, { depends }>`: cycle detection with the cycle's path,
 * a deterministic topological order, and a text tree for `cdktr workflow show`.
 */
import { DagError } from "../errors.js";
import type { DagInput } from "./dag-planner.js";

/**
 * Finds one dependency cycle, in execution order: `["a", "b", "c", "a"]` (printed
 * `a -> b -> c -> a`) means `b` depends on `a`, `c` on `b` and `a` on `c`. Unknown dependencies
 * are ignored.
 * @returns the cycle's path (first id repeated at the end), or null when the graph is acyclic.
 */
export function findCycle(tasks: DagInput): string[] | null {
  const ids = Object.keys(tasks);
  const children = new Map<string, string[]>();
  for (const id of ids) children.set(id, []);
  for (const id of ids) {
    for (const dep of tasks[id]?.depends ?? []) children.get(dep)?.push(id);
  }
  const WHITE = 0,
    GREY = 1,
    BLACK = 2;
  const colour = new Map<string, number>(ids.map((id) => [id, WHITE]));
  for (const root of ids) {
    if (colour.get(root) !== WHITE) continue;
    // Iterative DFS (a 10,000-task chain must not overflow the stack).
    const path: string[] = [root];
    const iters: number[] = [0];
    colour.set(root, GREY);
    while (path.length > 0) {
      const node = path[path.length - 1] as string;
      const next = children.get(node) ?? [];
      const i = iters[iters.length - 1] as number;
      if (i < next.length) {
        iters[iters.length - 1] = i + 1;
        const child = next[i] as string;
        const c = colour.get(child);
        if (c === GREY) return [...path.slice(path.indexOf(child)), child];
        if (c === WHITE) {
          colour.set(child, GREY);
          path.push(child);
          iters.push(0);
        }
      } else {
        colour.set(node, BLACK);
        path.pop();
        iters.pop();
      }
    }
  }
  return null;
}

/**
 * A topological order (dependencies first). Ties keep the input order, so the result is
 * deterministic.
 * @throws {DagError} when the graph has a cycle or an unknown dependency.
 */
export function topoOrder(tasks: DagInput): string[] {
  const ids = Object.keys(tasks);
  const index = new Map(ids.map((id, i) => [id, i]));
  const indeg = new Map<string, number>();
  const children = new Map<string, string[]>();
  for (const id of ids) children.set(id, []);
  for (const id of ids) {
    const deps = [...new Set(tasks[id]?.depends ?? [])];
    indeg.set(id, deps.length);
    for (const dep of deps) {
      const list = children.get(dep);
      if (list === undefined) throw new DagError(`task \`${id}\` depends on unknown task \`${dep}\``);
      list.push(id);
    }
  }
  // Min-heap on input position: ties come out in input order, in O(n log n).
  const heap: number[] = [];
  const push = (i: number): void => {
    heap.push(i);
    for (let c = heap.length - 1; c > 0; ) {
      const p = (c - 1) >> 1;
      if ((heap[p] as number) <= (heap[c] as number)) break;
      [heap[p], heap[c]] = [heap[c] as number, heap[p] as number];
      c = p;
    }
  };
  const pop = (): number => {
    const top = heap[0] as number;
    const last = heap.pop() as number;
    if (heap.length > 0) {
      heap[0] = last;
      for (let p = 0; ; ) {
        const l = 2 * p + 1,
          r = l + 1;
        let m = p;
        if (l < heap.length && (heap[l] as number) < (heap[m] as number)) m = l;
        if (r < heap.length && (heap[r] as number) < (heap[m] as number)) m = r;
        if (m === p) break;
        [heap[p], heap[m]] = [heap[m] as number, heap[p] as number];
        p = m;
      }
    }
    return top;
  };
  ids.forEach((id, i) => {
    if (indeg.get(id) === 0) push(i);
  });
  const out: string[] = [];
  while (heap.length > 0) {
    const id = ids[pop()] as string;
    out.push(id);
    for (const child of children.get(id) ?? []) {
      const left = (indeg.get(child) ?? 0) - 1;
      indeg.set(child, left);
      if (left === 0) push(index.get(child) ?? 0);
    }
  }
  if (out.length !== ids.length) {
    const cycle = findCycle(tasks);
    throw new DagError(`dependency cycle: ${cycle?.join(" -> ") ?? "unknown"}`);
  }
  return out;
}

/**
 * Renders the DAG as an indented text tree from its roots, e.g.
 * ```
 * task1
 * └── task2
 *     ├── task3
 *     └── task4
 * ```
 * A task with several parents is printed under each; after its first appearance its subtree is
 * abbreviated to `name (see above)`.
 * @param label optional text per task id (default: the id).
 */
export function renderDagTree(tasks: DagInput, label: (id: string) => string = (id) => id): string {
  const order = topoOrder(tasks);
  const children = new Map<string, string[]>();
  for (const id of order) children.set(id, []);
  for (const id of order) {
    for (const dep of new Set(tasks[id]?.depends ?? [])) children.get(dep)?.push(id);
  }
  const shown = new Set<string>();
  const lines: string[] = [];
  const visit = (id: string, prefix: string, connector: string, childPrefix: string): void => {
    const kids = children.get(id) ?? [];
    if (shown.has(id) && kids.length > 0) {
      lines.push(`${prefix}${connector}${label(id)} (see above)`);
      return;
    }
    shown.add(id);
    lines.push(`${prefix}${connector}${label(id)}`);
    kids.forEach((kid, i) => {
      const last = i === kids.length - 1;
      visit(kid, prefix + childPrefix, last ? "└── " : "├── ", last ? "    " : "│   ");
    });
  };
  for (const id of order) {
    if ((tasks[id]?.depends.length ?? 0) === 0) visit(id, "", "", "");
  }
  return lines.join("\n");
}
