import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isWorkflowFile } from "@cdktr/workflow";
import { makeTempDir, waitFor } from "@cdktr/test-utils";
import { DirectoryWatcher, type DirectoryChange } from "./directory-watcher.js";

/** A watcher on a fresh tree (`team/a.yml`, `b.yml`), and the changes it reported. */
function watched(opts: { maxDirectories?: number } = {}): {
  root: string;
  w: DirectoryWatcher;
  changes: DirectoryChange[];
  errors: string[];
} {
  const root = makeTempDir("dir-watch-");
  mkdirSync(join(root, "team"));
  writeFileSync(join(root, "team", "a.yml"), "a");
  writeFileSync(join(root, "b.yml"), "b");
  const changes: DirectoryChange[] = [];
  const errors: string[] = [];
  const w = new DirectoryWatcher({
    root,
    isFile: isWorkflowFile,
    onChange: (c) => changes.push(c),
    onError: (e, dir) => errors.push(`${dir}: ${String(e)}`),
    ...opts,
  });
  w.start();
  return { root, w, changes, errors };
}

const files = (changes: DirectoryChange[]): string[] => changes.flatMap((c) => (c.kind === "file" ? [c.path] : []));
const trees = (changes: DirectoryChange[]): number => changes.filter((c) => c.kind === "tree").length;

describe("DirectoryWatcher (real fs.watch)", () => {
  it("one watch per folder; an edit, a new file and a removal in any folder name the file", async () => {
    const { root, w, changes } = watched();
    try {
      assert.equal(w.size, 2);
      writeFileSync(join(root, "team", "a.yml"), "a2");
      await waitFor(() => files(changes).includes(join(root, "team", "a.yml")), { timeoutMs: 5000, what: "edit" });
      writeFileSync(join(root, "c.yaml"), "c");
      await waitFor(() => files(changes).includes(join(root, "c.yaml")), { timeoutMs: 5000, what: "new file" });
      rmSync(join(root, "b.yml"));
      await waitFor(() => files(changes).filter((p) => p === join(root, "b.yml")).length > 0, {
        timeoutMs: 5000,
        what: "removal",
      });
      assert.equal(trees(changes), 0, JSON.stringify(changes));
    } finally {
      w.close();
    }
  });

  it("other files and hidden names are ignored; an editor's save (temp file, rename) names the file", async () => {
    const { root, w, changes } = watched();
    try {
      writeFileSync(join(root, "README.md"), "x");
      writeFileSync(join(root, ".b.yml.swp"), "x");
      mkdirSync(join(root, ".git"));
      writeFileSync(join(root, ".git", "x.yml"), "x");
      writeFileSync(join(root, "team", ".a.yml.tmp"), "a3");
      renameSync(join(root, "team", ".a.yml.tmp"), join(root, "team", "a.yml"));
      await waitFor(() => files(changes).includes(join(root, "team", "a.yml")), { timeoutMs: 5000, what: "save" });
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual([...new Set(files(changes))], [join(root, "team", "a.yml")]);
      assert.equal(trees(changes), 0);
      assert.equal(w.size, 2, "hidden folders are not watched");
    } finally {
      w.close();
    }
  });

  it("a new folder is a tree change and is watched at once; a removed one is forgotten", async () => {
    const { root, w, changes } = watched();
    try {
      mkdirSync(join(root, "new", "deeper"), { recursive: true });
      await waitFor(() => trees(changes) > 0 && w.size === 4, { timeoutMs: 5000, what: "new folders watched" });
      writeFileSync(join(root, "new", "deeper", "x.yml"), "x");
      await waitFor(() => files(changes).includes(join(root, "new", "deeper", "x.yml")), {
        timeoutMs: 5000,
        what: "a file in the new folder",
      });
      const before = trees(changes);
      rmSync(join(root, "team"), { recursive: true });
      await waitFor(() => trees(changes) > before && w.size === 3, { timeoutMs: 5000, what: "removed folder" });
    } finally {
      w.close();
    }
  });

  it("symbolic links to folders are not followed (as the loader); the folder bound is kept and reported once", async () => {
    const elsewhere = makeTempDir("dir-watch-target-");
    const { root, w } = watched();
    try {
      symlinkSync(elsewhere, join(root, "linked"));
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(w.size, 2);
    } finally {
      w.close();
    }
    const bounded = watched({ maxDirectories: 2 });
    try {
      mkdirSync(join(bounded.root, "more"));
      mkdirSync(join(bounded.root, "more2"));
      await waitFor(() => bounded.errors.length > 0, { timeoutMs: 5000, what: "the bound reported" });
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(bounded.w.size, 2);
      assert.equal(bounded.errors.length, 1, bounded.errors.join("\n"));
    } finally {
      bounded.w.close();
    }
  });

  it("a root that cannot be watched throws at start", () => {
    const w = new DirectoryWatcher({
      root: join(makeTempDir("dir-watch-missing-"), "nope"),
      isFile: isWorkflowFile,
      onChange: () => {},
      onError: () => {},
    });
    assert.throws(() => w.start(), /ENOENT/);
  });
});
