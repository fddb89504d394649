/**
 * Key files: one JSON file per key in the keys directory (`CDKTR_KEYS_DIR`, default
 * `~/.cdktr/keys/`, directory 0700, files 0600). A client's file holds its pair and the
 * principal's public key it pins; the principal's file (`principal.json`) holds the deployment's
 * pair. Secret keys live in these files only: never in the store, never on the wire, never logged.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeSync,
} from "node:fs";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { curveKeyPair } from "zeromq";
import { z } from "zod";
import { CodedError, errorMessage } from "../errors.js";
import { formatZodIssues } from "../rpc/frames.js";
import { KeyNameSchema, KeyRoleSchema, Z85KeySchema } from "./identity.js";
import { WorkflowIdSchema } from "../records.js";

/** The principal's own key file in the keys directory. */
export const PRINCIPAL_KEY_FILE = "principal.json";

/** A key file: `name`, `role`, `scope`, `publicKey`, `secretKey`, `principalPublicKey` (Z85). */
export const KeyFileSchema = z
  .object({
    name: KeyNameSchema,
    role: z.union([KeyRoleSchema, z.literal("principal")]),
    scope: KeyNameSchema.optional(),
    workflows: z.array(WorkflowIdSchema).nullable().optional(),
    publicKey: Z85KeySchema,
    secretKey: Z85KeySchema,
    principalPublicKey: Z85KeySchema,
  })
  .strict();
/** Type of {@link KeyFileSchema}. */
export type KeyFile = z.infer<typeof KeyFileSchema>;

/** What a client needs to speak to the principal: its pair and the principal's public key. */
export interface ClientKey {
  name: string;
  publicKey: string;
  secretKey: string;
  /** Pinned: a server without the matching secret key cannot complete the handshake. */
  principalPublicKey: string;
}

/** A CURVE key pair in Z85. */
export interface KeyPair {
  publicKey: string;
  secretKey: string;
}

/** Codes of {@link KeyFileError}. */
export type KeyFileErrorCode = "KEY_FILE_MISSING" | "KEY_FILE_INVALID" | "KEY_FILE_UNSAFE" | "KEY_FILE_EXISTS";

/** A key file that cannot be used (missing, malformed, readable by others) or not overwritten. */
export class KeyFileError extends CodedError<KeyFileErrorCode> {}

/** A fresh CURVE key pair (libsodium's random source, through ZeroMQ). */
export function generateKeyPair(): KeyPair {
  return curveKeyPair();
}

/** `CDKTR_KEYS_DIR` (with `~` expanded), else `~/.cdktr/keys`. */
export function defaultKeysDir(env: Readonly<Record<string, string | undefined>> = process.env): string {
  const home = env.HOME ?? homedir();
  const dir = env.CDKTR_KEYS_DIR;
  if (dir === undefined || dir === "") return join(home, ".cdktr", "keys");
  if (dir === "~" || dir.startsWith("~/")) return join(home, dir.slice(1));
  return isAbsolute(dir) ? dir : resolve(dir);
}

/**
 * Read and check a key file.
 * @throws KeyFileError `KEY_FILE_MISSING`, `KEY_FILE_INVALID` (not JSON or not the schema, with
 *   the field), `KEY_FILE_UNSAFE` (group or others may read it: `chmod 600`).
 */
export function readKeyFile(path: string): KeyFile {
  let text: string;
  try {
    const st = statSync(path);
    if ((st.mode & 0o077) !== 0 && process.platform !== "win32") {
      throw new KeyFileError(
        "KEY_FILE_UNSAFE",
        `key file ${path} may be read by other users (mode ${(st.mode & 0o777).toString(8)}): run \`chmod 600 ${path}\``,
        { context: { path } },
      );
    }
    text = readFileSync(path, "utf8");
  } catch (e) {
    if (e instanceof KeyFileError) throw e;
    const missing = (e as { code?: unknown }).code === "ENOENT";
    throw new KeyFileError(
      missing ? "KEY_FILE_MISSING" : "KEY_FILE_INVALID",
      missing
        ? `key file ${path} does not exist: create one with \`cdktr keys create\` or fix CDKTR_KEY_FILE`
        : `cannot read key file ${path}: ${errorMessage(e)}`,
      { cause: e, context: { path } },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new KeyFileError("KEY_FILE_INVALID", `key file ${path} is not JSON: ${errorMessage(e)}`, {
      cause: e,
      context: { path },
    });
  }
  const parsed = KeyFileSchema.safeParse(json);
  if (!parsed.success) {
    throw new KeyFileError("KEY_FILE_INVALID", `key file ${path}: ${formatZodIssues(parsed.error, "key")}`, {
      context: { path },
    });
  }
  return parsed.data;
}

/**
 * Write a key file atomically with mode 0600, creating its directory with mode 0700.
 * @throws KeyFileError `KEY_FILE_EXISTS` unless `overwrite`.
 */
export function writeKeyFile(path: string, key: KeyFile, options: { overwrite?: boolean } = {}): void {
  if (!options.overwrite && existsSync(path)) {
    throw new KeyFileError("KEY_FILE_EXISTS", `key file ${path} exists already: pick another name or path`, {
      context: { path },
    });
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, "w", 0o600);
  try {
    writeSync(fd, `${JSON.stringify(KeyFileSchema.parse(key), null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** The client's view of a key file. */
export function clientKeyOf(file: KeyFile): ClientKey {
  return {
    name: file.name,
    publicKey: file.publicKey,
    secretKey: file.secretKey,
    principalPublicKey: file.principalPublicKey,
  };
}

/** Whether the environment turns authentication off (`CDKTR_AUTH=off`). */
export function authDisabled(env: Readonly<Record<string, string | undefined>> = process.env): boolean {
  return env.CDKTR_AUTH?.trim().toLowerCase() === "off";
}

/**
 * The key a client on this machine uses, with no setting in the common case: `CDKTR_KEY_FILE`
 * when set; else `<keys dir>/<localName>.json` when it exists (the principal creates the
 * `local-*` keys on first start); else null (plaintext: only a principal with `CDKTR_AUTH=off`
 * answers). `CDKTR_AUTH=off` also means null.
 * @throws KeyFileError when the file named by `CDKTR_KEY_FILE`, or the local file, is unusable.
 */
export function findClientKey(
  localName: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): ClientKey | null {
  if (authDisabled(env)) return null;
  const named = env.CDKTR_KEY_FILE;
  if (named !== undefined && named !== "") return clientKeyOf(readKeyFile(named));
  const local = join(defaultKeysDir(env), `${localName}.json`);
  if (!existsSync(local)) return null;
  return clientKeyOf(readKeyFile(local));
}
