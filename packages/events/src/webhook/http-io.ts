/**
 * HTTP plumbing of the webhook listener: reading a bounded request body, parsing its params and
 * writing JSON replies.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { ParamsSchema, errorMessage, type Params } from "@cdktr/protocol";
import { BodyTooLarge } from "../errors.js";

/** A JSON reply. */
export interface Reply {
  status: number;
  body: Record<string, unknown>;
  headers?: Record<string, string>;
}

/** A promise with its resolve and reject; a rejection nobody awaits is not reported as unhandled. */
export function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined); // nobody may be waiting
  return { promise, resolve, reject };
}

/** The first value of a request header. */
export function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The JSON body of every error reply: `{status: "error", code, message}`. */
export function errorBody(code: string, message: string): Record<string, unknown> {
  return { status: "error", code, message };
}

/** Write `reply` as JSON. */
export function send(res: ServerResponse, reply: Reply): void {
  const body = JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
    ...reply.headers,
  });
  res.end(body);
}

/** Answer 413 without reading the rest of the body, then close the connection. */
export function refuseTooLarge(req: IncomingMessage, res: ServerResponse, limit: number): void {
  // Stop reading: pause the stream (TCP flow control holds the sender back), answer, close.
  req.pause();
  res.shouldKeepAlive = false;
  send(res, {
    status: 413,
    headers: { connection: "close" },
    body: errorBody("PAYLOAD_TOO_LARGE", `request body exceeds ${limit} bytes; send a smaller JSON object of params`),
  });
  res.on("finish", () => {
    req.socket.end();
    setTimeout(() => req.socket.destroy(), 1000).unref();
  });
}

/** The whole request body. @throws BodyTooLarge (rejects) past `limit` bytes */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        reject(new BodyTooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (e: Error): void => {
      cleanup();
      reject(e);
    };
    const cleanup = (): void => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
  });
}

/** Run params from a request body: empty, or a JSON object of strings, numbers and booleans. */
export function parseParams(raw: Buffer): { ok: true; params: Params | undefined } | { ok: false; error: string } {
  const text = raw.toString("utf8").trim();
  if (text === "") return { ok: true, params: undefined };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return {
      ok: false,
      error: `body is not valid JSON (${errorMessage(e)}): send a JSON object of params, e.g. {"date": "2026-11-28"}`,
    };
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return { ok: false, error: 'body must be a JSON object of params, e.g. {"date": "2026-11-28"}' };
  }
  const parsed = ParamsSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (i) => `params.${i.path.join(".")}: param values must be strings, numbers or booleans`,
    );
    return { ok: false, error: problems.join("; ") };
  }
  return { ok: true, params: Object.keys(parsed.data).length > 0 ? parsed.data : undefined };
}
