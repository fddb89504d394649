/**
 * The built browser app (`dist/public`): files with their content types, immutable caching for
 * the hashed `/assets/*`, `no-cache` for `index.html`, and the single-page-app fallback (any GET
 * that is not an existing file answers `index.html`). Paths are decoded, refused with a NUL byte,
 * and resolved inside the directory: nothing outside it is ever read.
 */
import { existsSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { extname, resolve, sep } from "node:path";

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".ico": "image/x-icon",
  ".woff": "font/woff",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
  ".wasm": "application/wasm",
};

/** Largest file served (the built app's files are far smaller). */
const MAX_FILE_BYTES = 32 * 1024 * 1024;

function text(res: ServerResponse, status: number, body: string, head: boolean): void {
  res.writeHead(status, {
    "Content-Type": "text/plain; charset=utf-8",
    "Content-Length": Buffer.byteLength(body),
    "Cache-Control": "no-store",
  });
  res.end(head ? undefined : body);
}

/** Serves one directory of static files (see the file's comment). */
export class StaticFiles {
  readonly #root: string;

  /** @param root the directory (e.g. `dist/public`) */
  constructor(root: string) {
    this.#root = resolve(root);
  }

  /** Whether the built app's `index.html` is there. */
  hasIndex(): boolean {
    return existsSync(resolve(this.#root, "index.html"));
  }

  /** The directory served. */
  get root(): string {
    return this.#root;
  }

  /**
   * Where `pathname` (as in the request line, percent-encoded) is inside the directory; null when
   * it cannot be decoded, holds a NUL byte or a backslash, or resolves outside the directory.
   */
  resolvePath(pathname: string): string | null {
    let decoded: string;
    try {
      decoded = decodeURIComponent(pathname);
    } catch {
      return null;
    }
    if (decoded.includes("\0") || decoded.includes("\\")) return null;
    const full = resolve(this.#root, `.${decoded.startsWith("/") ? decoded : `/${decoded}`}`);
    if (full !== this.#root && !full.startsWith(this.#root + sep)) return null;
    return full;
  }

  /** Answer a GET or HEAD for `pathname` (the request's raw path, query removed). */
  async serve(req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void> {
    const head = req.method === "HEAD";
    const full = this.resolvePath(pathname);
    if (full === null) {
      text(res, 400, "bad path\n", head);
      return;
    }
    const file = await this.#file(full);
    if (file !== null) {
      const immutable = pathname.startsWith("/assets/");
      this.#send(res, file, extname(full), immutable ? "public, max-age=31536000, immutable" : "no-cache", head);
      return;
    }
    const index = await this.#file(resolve(this.#root, "index.html"));
    if (index === null) {
      text(
        res,
        503,
        "the dashboard's browser app is not built: run `npm run build` (it writes apps/dashboard/dist/public)\n",
        head,
      );
      return;
    }
    this.#send(res, index, ".html", "no-cache", head);
  }

  async #file(path: string): Promise<Buffer | null> {
    try {
      const st = await stat(path);
      if (!st.isFile() || st.size > MAX_FILE_BYTES) return null;
      return await readFile(path);
    } catch {
      return null;
    }
  }

  #send(res: ServerResponse, body: Buffer, ext: string, cache: string, head: boolean): void {
    res.writeHead(200, {
      "Content-Type": CONTENT_TYPES[ext.toLowerCase()] ?? "application/octet-stream",
      "Content-Length": body.length,
      "Cache-Control": cache,
    });
    res.end(head ? undefined : body);
  }
}
