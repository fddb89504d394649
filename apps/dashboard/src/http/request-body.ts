import type { IncomingMessage } from "node:http";
import type { z } from "zod";
import { formatZodIssues } from "@cdktr/protocol";
import { httpErrors } from "./respond.js";

/** Largest request body accepted, in bytes (64 KiB). */
export const MAX_BODY_BYTES = 64 * 1024;

/** Whether the request says its body is JSON (`application/json`, any parameters). */
export function isJsonContentType(req: IncomingMessage): boolean {
  const type = req.headers["content-type"];
  if (type === undefined) return false;
  return type.split(";")[0]?.trim().toLowerCase() === "application/json";
}

/**
 * Read the whole body (at most `limit` bytes) as UTF-8 text.
 * @throws HttpError 413 when it is larger (the connection is closed after the answer)
 */
export async function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<string> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) throw httpErrors.tooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > limit) throw httpErrors.tooLarge(limit);
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * Read and validate a JSON body; an empty body reads as `{}`.
 * @throws HttpError 413 too large, 400 not JSON (with the parser's message) or not the schema (with the field)
 */
export async function readJson<S extends z.ZodType>(req: IncomingMessage, schema: S): Promise<z.output<S>> {
  const text = await readBody(req);
  let json: unknown;
  if (text.trim() === "") json = {};
  else {
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw httpErrors.badRequest(`the request body is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw httpErrors.badRequest(`invalid request body: ${formatZodIssues(parsed.error, "body")}`);
  return parsed.data;
}

/**
 * Validate query parameters (each one's last value) with `schema`.
 * @throws HttpError 400 naming the parameter
 */
export function readQuery<S extends z.ZodType>(url: URL, schema: S): z.output<S> {
  const raw: Record<string, string> = {};
  for (const [k, v] of url.searchParams) if (v !== "") raw[k] = v;
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw httpErrors.badRequest(`invalid query: ${formatZodIssues(parsed.error, "query")}`);
  return parsed.data;
}
