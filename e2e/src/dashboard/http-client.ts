/**
 * A raw HTTP client for the dashboard tests: any method, header (Origin, Host, Cookie) and
 * request target (`/../x`, `%2e%2e`), which `fetch` would normalise or refuse; and a reader of
 * server-sent events.
 */
import { request, type IncomingHttpHeaders, type IncomingMessage } from "node:http";

/** One answer. */
export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** The body parsed as JSON, or undefined. */
  json: unknown;
}

/** Options of {@link call}. */
export interface CallOptions {
  method?: string;
  headers?: Record<string, string>;
  /** A JSON body (sets `Content-Type: application/json` unless headers say otherwise). */
  json?: unknown;
  /** A raw body. */
  body?: string | Buffer;
}

/** Send one request to `base` (e.g. `http://127.0.0.1:5564`) for `target` (sent as it is). */
export function call(base: string, target: string, opts: CallOptions = {}): Promise<HttpAnswer> {
  const u = new URL(base);
  const headers: Record<string, string> = { ...opts.headers };
  let body: string | Buffer | undefined = opts.body;
  if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    if (!Object.keys(headers).some((h) => h.toLowerCase() === "content-type"))
      headers["Content-Type"] = "application/json";
  }
  return new Promise((resolve, reject) => {
    const req = request(
      { host: u.hostname, port: u.port, method: opts.method ?? "GET", path: target, headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** The `cdktr_session=...` pair of a `Set-Cookie` answer, for the `Cookie` header. */
export function cookieOf(a: HttpAnswer): string {
  const set = a.headers["set-cookie"]?.[0];
  if (set === undefined) throw new Error(`no Set-Cookie in the answer (status ${a.status}: ${a.text})`);
  return set.split(";")[0] ?? "";
}

/** One server-sent event. */
export interface SseEvent {
  event: string;
  data: unknown;
}

/** An open event stream: its events so far, waiting for one, and closing it. */
export interface SseStream {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly events: SseEvent[];
  /** Comment lines received (`ping`, `connected`). */
  readonly comments: string[];
  /** Resolves with the first event (already received or coming) matching `pred`. */
  next(pred: (e: SseEvent) => boolean, timeoutMs?: number): Promise<SseEvent>;
  /** Resolves when the server ends the stream. */
  readonly ended: Promise<void>;
  close(): void;
}

/** Open `target` as an event stream (resolves once the answer's headers arrived). */
export function openSse(base: string, target: string, headers: Record<string, string> = {}): Promise<SseStream> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: target,
        headers: { Accept: "text/event-stream", ...headers },
        agent: false,
      },
      (res: IncomingMessage) => {
        const events: SseEvent[] = [];
        const comments: string[] = [];
        const waiters: { pred: (e: SseEvent) => boolean; done: (e: SseEvent) => void }[] = [];
        let buf = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buf += chunk;
          for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            let event = "message";
            let data = "";
            for (const line of block.split("\n")) {
              if (line.startsWith(":")) comments.push(line.slice(1).trim());
              else if (line.startsWith("event: ")) event = line.slice(7);
              else if (line.startsWith("data: ")) data += line.slice(6);
            }
            if (data === "" && event === "message") continue;
            const e: SseEvent = { event, data: data === "" ? null : JSON.parse(data) };
            events.push(e);
            for (const w of [...waiters]) {
              if (w.pred(e)) {
                waiters.splice(waiters.indexOf(w), 1);
                w.done(e);
              }
            }
          }
        });
        const ended = new Promise<void>((r) => {
          res.on("end", () => r());
          res.on("close", () => r());
          res.on("error", () => r());
        });
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          events,
          comments,
          ended,
          next(pred, timeoutMs = 20_000) {
            const seen = events.find(pred);
            if (seen !== undefined) return Promise.resolve(seen);
            return new Promise((ok, fail) => {
              const timer = setTimeout(
                () =>
                  fail(
                    new Error(
                      `no matching event within ${timeoutMs} ms; got ${JSON.stringify(events.map((e) => e.event))}`,
                    ),
                  ),
                timeoutMs,
              );
              waiters.push({
                pred,
                done: (e) => {
                  clearTimeout(timer);
                  ok(e);
                },
              });
            });
          },
          close() {
            req.destroy();
          },
        });
      },
    );
    req.on("error", reject);
    req.end();
  });
}
