/**
 * The webhook suites' HTTP client: node:http, so chunked or oversize bodies and raw headers are
 * under control, and the reply parsed as JSON.
 */
import { request } from "node:http";

/** A webhook reply. */
export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
}

/** POST with node:http (so chunked/oversize bodies and raw headers are under control). */
export function post(
  url: string,
  body: string | Buffer | null,
  headers: Record<string, string> = {},
  opts: { chunked?: boolean } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: `${u.pathname}${u.search}`,
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          try {
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: JSON.parse(text) as Record<string, unknown>,
            });
          } catch {
            reject(new Error(`reply is not JSON: ${text}`));
          }
        });
      },
    );
    req.setTimeout(8000, () => req.destroy(new Error("no reply within 8 s")));
    req.on("error", reject);
    if (body === null) req.end();
    else if (opts.chunked === true) {
      const buf = Buffer.from(body);
      for (let i = 0; i < buf.length; i += 4096) req.write(buf.subarray(i, i + 4096));
      req.end();
    } else {
      req.setHeader("content-length", Buffer.byteLength(body));
      req.end(body);
    }
  });
}
