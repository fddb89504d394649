/**
 * The persisted scan index of a workflow directory: for each file, the `stat` it was read with,
 * its content hash and its parse result, so a restart with unchanged files stats them instead of
 * reading and parsing them again. It is a cache only: anything wrong with it (missing, torn,
 * written by other code, for another directory) means a full load, never a wrong definition.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ParseWorkflowResult } from "./parse-workflow-text.js";
import { errorMessage } from "@cdktr/protocol";

/** What a file looked like when its content was read, and what that content gave. */
export interface ScanIndexEntry {
  mtimeMs: number;
  ctimeMs: number;
  size: number;
  ino: number;
  /** When the content was read (epoch ms): trusted without reading only if the file was settled then. */
  readAt: number;
  contentHash: string;
  result: ParseWorkflowResult;
}

/** The file's shape on disk. */
interface IndexFile {
  format: 1;
  /** {@link loaderCodeHash} of the code that parsed the entries. */
  code: string;
  /** The workflow directory the paths are relative to. */
  dir: string;
  entries: Record<string, ScanIndexEntry>;
}

let codeHash: string | null = null;

/**
 * SHA-256 of the loader's own code and of `@cdktr/protocol` (every non-test `.js` file of both
 * packages' builds): an index written by any other build, even one of the same version number,
 * is not used.
 */
export function loaderCodeHash(): string {
  if (codeHash === null) {
    const h = createHash("sha256");
    const own = dirname(dirname(fileURLToPath(import.meta.url)));
    const protocol = dirname(createRequire(import.meta.url).resolve("@cdktr/protocol"));
    for (const root of [own, protocol]) {
      for (const file of jsFiles(root)) h.update(file.slice(root.length)).update("\0").update(readFileSync(file));
    }
    codeHash = h.digest("hex");
  }
  return codeHash;
}

function jsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...jsFiles(p));
    else if (e.name.endsWith(".js") && !e.name.endsWith(".test.js")) out.push(p);
  }
  return out;
}

const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

function isEntry(v: unknown): v is ScanIndexEntry {
  if (v === null || typeof v !== "object") return false;
  const e = v as Record<string, unknown>;
  const r = e.result as Record<string, unknown> | null | undefined;
  return (
    isNum(e.mtimeMs) &&
    isNum(e.ctimeMs) &&
    isNum(e.size) &&
    isNum(e.ino) &&
    isNum(e.readAt) &&
    typeof e.contentHash === "string" &&
    r !== null &&
    typeof r === "object" &&
    (r.workflow === null || (typeof r.workflow === "object" && r.workflow !== undefined)) &&
    Array.isArray(r.errors) &&
    Array.isArray(r.warnings)
  );
}

/**
 * The entries of the index at `file` for `dir`; an empty map (and the reason) when there is none
 * or it cannot be used.
 */
export function readScanIndex(
  file: string,
  dir: string,
): { entries: Map<string, ScanIndexEntry>; skipped: string | null } {
  const none = (skipped: string | null) => ({ entries: new Map<string, ScanIndexEntry>(), skipped });
  let parsed: Partial<IndexFile>;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8")) as Partial<IndexFile>;
  } catch (e: unknown) {
    if ((e as { code?: unknown }).code === "ENOENT") return none(null);
    return none(`unreadable (${errorMessage(e)})`);
  }
  if (parsed.format !== 1 || parsed.code !== loaderCodeHash()) return none("written by another build of cdktr");
  if (parsed.dir !== dir) return none(`made for another workflow directory (${String(parsed.dir)})`);
  const entries = new Map<string, ScanIndexEntry>();
  for (const [rel, entry] of Object.entries(parsed.entries ?? {})) {
    if (!isEntry(entry)) return none(`malformed entry for ${rel}`);
    entries.set(rel, entry);
  }
  return { entries, skipped: null };
}

/** Write the index of `dir` to `file` (a temp file renamed over it: a reader sees the old or the new one). */
export async function writeScanIndex(
  file: string,
  dir: string,
  entries: ReadonlyMap<string, ScanIndexEntry>,
): Promise<void> {
  const body: IndexFile = { format: 1, code: loaderCodeHash(), dir, entries: Object.fromEntries(entries) };
  const tmp = `${file}.${process.pid}.tmp`;
  await mkdir(dirname(file), { recursive: true });
  try {
    await writeFile(tmp, JSON.stringify(body), { mode: 0o600 });
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
