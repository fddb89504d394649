/** Reading the metrics and health endpoints of a cdktr process in tests. */

/** GET (or `method`) `path` on `baseUrl`: status, content type and body. */
export async function get(
  baseUrl: string,
  path: string,
  method = "GET",
): Promise<{ status: number; type: string; body: string }> {
  const res = await fetch(`${baseUrl}${path}`, { method });
  return { status: res.status, type: res.headers.get("content-type") ?? "", body: await res.text() };
}

/** The value of the sample `name{labels}` (exactly these labels) in a Prometheus text exposition; 0 when absent. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels);
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const have = new Map([...(m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (have.size === wanted.length && wanted.every(([k, v]) => have.get(k) === v)) return Number(m[3]);
  }
  return 0;
}
