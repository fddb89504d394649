/**
 * The ZeroMQ authentication handler (ZAP, RFC 27) of this process: libzmq asks it about every
 * CURVE handshake on a socket with a `zapDomain`, and it admits only the public keys the domain's
 * owner admits. Peers it refuses get no connection, hence no reply and no message at all.
 *
 * One handler serves every secure socket of the process (ZAP is one inproc endpoint per ZeroMQ
 * context); each socket registers its own domain. Secure sockets also set `zapEnforceDomain`, so
 * a missing handler fails closed.
 */
import { Router } from "zeromq";
import type { Logger } from "../logging/logger.js";
import { noopLogger } from "../logging/logger.js";
import { z85Encode } from "./z85.js";

/** Decides whether a CURVE public key (Z85) may connect; `address` is the peer's IP. */
export type AdmitKey = (publicKey: string, address: string) => boolean;

const ZAP_ENDPOINT = "inproc://zeromq.zap.01";

let handler: { socket: Router; ready: Promise<void> } | null = null;
const domains = new Map<string, AdmitKey>();
let nextDomain = 1;
let log: Logger = noopLogger;

async function serve(socket: Router): Promise<void> {
  for (;;) {
    let request: Buffer[];
    try {
      request = await socket.receive();
    } catch {
      return; // closed
    }
    // [routing id, empty, version, request id, domain, address, identity, mechanism, ...credentials]
    const [peer, empty, version, requestId, domain, address, , mechanism, credential] = request;
    let status = "400";
    let text = "refused";
    const admit = domains.get(domain?.toString() ?? "");
    if (version?.toString() !== "1.0") {
      status = "500";
      text = "unsupported ZAP version";
    } else if (admit !== undefined && mechanism?.toString() === "CURVE" && credential?.length === 32) {
      const key = z85Encode(credential);
      try {
        if (admit(key, address?.toString() ?? "")) {
          status = "200";
          text = "OK";
        }
      } catch (e) {
        log.error("zap: admission check failed; refusing", { error: e });
      }
      if (status !== "200") log.debug("zap: key refused", { address: address?.toString(), publicKey: key });
    }
    try {
      await socket.send([peer ?? "", empty ?? "", "1.0", requestId ?? "", status, text, "", ""]);
    } catch {
      return;
    }
  }
}

/**
 * Bind the handler. A handler closed a moment ago (the last secure socket went away) may still
 * hold the inproc endpoint while libzmq finishes closing it: retry for a short while.
 */
async function bindWhenFree(socket: Router): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await socket.bind(ZAP_ENDPOINT);
      return;
    } catch (e) {
      if ((e as { code?: unknown }).code !== "EADDRINUSE" || attempt >= 100) throw e;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/**
 * Register `admit` for a fresh ZAP domain (starting the process's handler if needed) and return
 * the domain to set on the socket, with a function that unregisters it.
 */
export async function registerZapDomain(
  admit: AdmitKey,
  logger?: Logger,
): Promise<{ domain: string; release(): void }> {
  if (logger !== undefined) log = logger;
  // The domain is registered first, so that a concurrent release() never closes the handler
  // this registration is about to use.
  const domain = `cdktr-${process.pid}-${nextDomain++}`;
  domains.set(domain, admit);
  const release = (): void => {
    domains.delete(domain);
    // The last secure socket is gone: close the handler so that it keeps no process alive.
    if (domains.size === 0 && handler !== null) {
      handler.socket.close();
      handler = null;
    }
  };
  if (handler === null) {
    const socket = new Router({ linger: 0 });
    const ready = bindWhenFree(socket).then(() => {
      void serve(socket);
    });
    handler = { socket, ready };
  }
  try {
    await handler.ready;
  } catch (e) {
    release();
    throw e;
  }
  return { domain, release };
}
