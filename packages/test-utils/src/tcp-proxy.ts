/**
 * A TCP proxy that can cut every connection and refuse new ones, then come back on the same port:
 * a database (or any server) that goes away and returns, for tests of reconnection and health.
 */
import { connect, createServer, type Server, type Socket } from "node:net";

/** Forwards `127.0.0.1:<port>` to `target`; {@link cut} drops everything, {@link start} resumes. */
export class CuttableProxy {
  #server: Server | null = null;
  readonly #sockets = new Set<Socket>();
  readonly #target: { host: string; port: number };
  /** The port it listens on (0 until the first {@link start}; the same after every restart). */
  port = 0;

  constructor(target: { host: string; port: number }) {
    this.#target = target;
  }

  /** Listen (on the port of the previous start, if any). */
  async start(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(this.#target);
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on("close", () => this.#sockets.delete(s));
        s.on("error", () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
    await new Promise<void>((resolve) => server.listen(this.port, "127.0.0.1", resolve));
    this.port = (server.address() as { port: number }).port;
    this.#server = server;
  }

  /** Reset every connection and stop listening (new connections are refused). */
  async cut(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    for (const s of this.#sockets) s.resetAndDestroy();
    if (server !== null) await new Promise((r) => server.close(r));
  }

  /** `url` with `host:port` of the target replaced by the proxy's. */
  url(url: string): string {
    return url.replace(`${this.#target.host}:${this.#target.port}`, `127.0.0.1:${this.port}`);
  }
}
