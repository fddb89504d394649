import type { Socket } from "zeromq";

/**
 * Bind `socket` to `endpoint`; on failure rethrow an Error that names the endpoint and says what
 * to do, keeping libzmq's `code` (e.g. `EADDRINUSE`) and the original error as `cause`.
 */
export async function bindOrExplain(socket: Socket, endpoint: string): Promise<void> {
  try {
    await socket.bind(endpoint);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    const hint =
      code === "EADDRINUSE"
        ? "the port is in use: is another cdktr principal running? Stop it or choose another port"
        : code === "EADDRNOTAVAIL"
          ? "no such local address: bind 127.0.0.1 or an address of this machine"
          : "check the host and port";
    const err = new Error(`cannot bind ${endpoint}: ${e instanceof Error ? e.message : String(e)}; ${hint}`, {
      cause: e,
    });
    Object.assign(err, { code });
    throw err;
  }
}
