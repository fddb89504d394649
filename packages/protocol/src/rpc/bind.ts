import type { Socket } from "zeromq";
import { CodedError, errorMessage } from "../errors.js";

/**
 * A socket could not bind its endpoint. `code` is libzmq's (`EADDRINUSE`, `EADDRNOTAVAIL`, ...),
 * or `BIND_FAILED` when it gave none; the message names the endpoint and says what to do.
 */
export class BindError extends CodedError<string> {}

/**
 * Bind `socket` to `endpoint`; on failure throw a {@link BindError} that names the endpoint and
 * says what to do, keeping libzmq's `code` (e.g. `EADDRINUSE`) and the original error as `cause`.
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
    throw new BindError(
      typeof code === "string" ? code : "BIND_FAILED",
      `cannot bind ${endpoint}: ${errorMessage(e)}; ${hint}`,
      { cause: e, context: { endpoint } },
    );
  }
}
