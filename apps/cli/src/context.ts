import { PrincipalClient, findClientKey, type ClientKey } from "@cdktr/protocol";
import { resolvePrincipal, type PrincipalTarget } from "./connection.js";
import { colorEnabled, type CliIo } from "./io.js";
import { createStyle, type Style } from "./format/style.js";

/** What every command receives: output, styling, and a lazily opened principal connection. */
export interface CommandContext {
  readonly io: CliIo;
  readonly style: Style;
  /** The principal's address (from `--principal` or the environment). */
  target(): PrincipalTarget;
  /**
   * The key this invocation speaks with: the file named by `CDKTR_KEY_FILE`, else
   * `<CDKTR_KEYS_DIR>/local-operator.json` when it exists; null without one (plaintext, which
   * only a principal with `CDKTR_AUTH=off` answers) and with `CDKTR_AUTH=off`.
   * @throws KeyFileError when the named or local key file is unusable.
   */
  key(): ClientKey | null;
  /** The shared client (opened on first use, closed when the command ends). */
  client(): PrincipalClient;
  /**
   * Where live events are published: the principal's publish endpoint, or with several
   * principals the leader's (asked with a `ping`). Subscribers follow later moves through
   * `client().leaderWatch`.
   */
  publishEndpoint(): Promise<string>;
  /** Write a line to stdout. */
  out(line?: string): void;
  /** Write a line to stderr. */
  err(line: string): void;
  /** Close whatever was opened. */
  close(): Promise<void>;
}

/** Default per-request timeout of CLI requests. */
export const REQUEST_TIMEOUT_MS = 3000;

/** The local key the CLI looks for when `CDKTR_KEY_FILE` is not set. */
export const CLI_LOCAL_KEY = "local-operator";

/** Build a {@link CommandContext} for one invocation. */
export function createContext(io: CliIo, globals: { principal?: string | undefined }): CommandContext {
  const style = createStyle(colorEnabled(io));
  let target: PrincipalTarget | undefined;
  let client: PrincipalClient | undefined;
  let key: { value: ClientKey | null } | undefined;
  const getTarget = (): PrincipalTarget => (target ??= resolvePrincipal(globals.principal, io.env));
  const getKey = (): ClientKey | null => {
    key ??= { value: findClientKey(CLI_LOCAL_KEY, io.env) };
    return key.value;
  };
  const ctx: CommandContext = {
    io,
    style,
    target: getTarget,
    key: getKey,
    client() {
      if (client === undefined) {
        const t = getTarget();
        client = new PrincipalClient({
          endpoints: t.endpoints,
          publishPort: t.publishPort,
          timeoutMs: REQUEST_TIMEOUT_MS,
          retry: { attempts: 2, baseDelayMs: 100, maxDelayMs: 500 },
          env: io.env,
          key: getKey(),
        });
      }
      return client;
    },
    async publishEndpoint() {
      const t = getTarget();
      if (t.endpoints.length < 2) return t.publishEndpoint;
      return (await ctx.client().findLeader())?.publish ?? t.publishEndpoint;
    },
    out: (line = "") => io.stdout.write(`${line}\n`),
    err: (line) => io.stderr.write(`${line}\n`),
    async close() {
      client?.close();
      client = undefined;
    },
  };
  return ctx;
}
