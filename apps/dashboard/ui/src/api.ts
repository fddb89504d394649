// The one HTTP client of the UI: JSON in and out, same-origin credentials, API errors as ApiError.

/** An error answered by the API (`{ error: { code, message } }`) or a network failure. */
export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

type UnauthorizedHandler = () => void;
let onUnauthorized: UnauthorizedHandler = () => {};

/** Called on every 401 answer (the app re-reads the session and may go to /signin). */
export function setUnauthorizedHandler(handler: UnauthorizedHandler): void {
  onUnauthorized = handler;
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET") {
    init.headers = { Accept: "application/json", "Content-Type": "application/json" };
    if (body !== undefined) init.body = JSON.stringify(body);
  }
  let res: Response;
  try {
    res = await fetch(path, init);
  } catch (e: unknown) {
    throw new ApiError(
      0,
      "NETWORK",
      `The dashboard server did not answer (${e instanceof Error ? e.message : String(e)})`,
    );
  }
  if (res.status === 204) return undefined as T;
  let data: unknown;
  const text = await res.text();
  try {
    data = text === "" ? undefined : JSON.parse(text);
  } catch {
    data = undefined;
  }
  if (!res.ok) {
    if (res.status === 401 && path !== "/api/session") onUnauthorized();
    const err = (data as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    const code = typeof err?.code === "string" ? err.code : `HTTP_${res.status}`;
    const message = typeof err?.message === "string" ? err.message : `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, code, message);
  }
  return data as T;
}

/** GET a JSON document. */
export function apiGet<T>(path: string): Promise<T> {
  return request<T>("GET", path);
}

/** POST a JSON body (writes carry Content-Type: application/json). */
export function apiPost<T>(path: string, body: unknown): Promise<T> {
  return request<T>("POST", path, body);
}

/** DELETE (with Content-Type: application/json, no body). */
export function apiDelete(path: string): Promise<void> {
  return request<void>("DELETE", path);
}

/** `code: message` of any error, for display. */
export function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.code.startsWith("HTTP_") ? e.message : `${e.code}: ${e.message}`;
  if (e instanceof Error) return e.message;
  return String(e);
}

/** True for errors that retrying will not fix (4xx). */
export function isClientError(e: unknown): boolean {
  return e instanceof ApiError && e.status >= 400 && e.status < 500;
}

/** Builds `/path?k=v` from the defined, non-empty values. */
export function withQuery(path: string, query: Record<string, string | number | undefined | null>): string {
  const sp = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") sp.set(k, String(v));
  const s = sp.toString();
  return s === "" ? path : `${path}?${s}`;
}

/** A random UUID, also outside secure contexts (plain http on a non-loopback host). */
export function newIdempotencyKey(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x40;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
