import { createConnection, createServer } from "node:net";

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      if (addr === null || typeof addr === "string") {
        srv.close();
        reject(new Error("no port"));
        return;
      }
      srv.close(() => resolve(addr.port));
    });
  });
}

/** `n` distinct free ports. */
export async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

/** Whether something accepts TCP connections on 127.0.0.1:`port` within `timeoutMs`. */
export function reachable(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: "127.0.0.1", port });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

/**
 * `undefined` when the service `name` accepts connections on 127.0.0.1:`port`; otherwise a skip
 * message for the test, or, when the `CI` variable is set (CI must have the service), an error.
 */
export async function requireServer(name: string, port: number): Promise<string | undefined> {
  if (await reachable(port)) return undefined;
  const msg = `${name} is not reachable on 127.0.0.1:${port}`;
  if (process.env.CI !== undefined && process.env.CI !== "")
    throw new Error(`${msg} (CI is set: the server is required)`);
  return `${msg}: skipped (start it, or set CI to make this a failure)`;
}
