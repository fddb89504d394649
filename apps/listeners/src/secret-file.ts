/**
 * A webhook's `secret_file`: read it, or create it with a fresh random secret when it does not
 * exist.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { ConfigError, errorMessage } from "@cdktr/protocol";

/** A webhook's `secret_file`, once read (or created by {@link loadConfig}). */
export interface SecretFile {
  /** Absolute path. */
  path: string;
  /** Whether this start created it (with a fresh random secret). */
  created: boolean;
}

/** Characters of a secret made for a `secret_file` (32 random bytes, base64url). */
const SECRET_BYTES = 32;

/**
 * The secret in `path`, or a fresh random one written there (mode 0600, its directory made 0700)
 * when the file does not exist. Replicas starting together agree: the file is created exclusively
 * and the loser reads the winner's.
 * @throws ConfigError naming the field and the file when it cannot be read or written, or is empty
 */
export function readOrCreateSecretFile(path: string, field: string): { secret: string; created: boolean } {
  const problem = (why: string, cause?: unknown): ConfigError =>
    new ConfigError([`${field}: ${path}: ${why}`], "invalid listeners config", cause === undefined ? {} : { cause });
  let created = false;
  if (!existsSync(path)) {
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw problem(`cannot create the secret file's directory: ${errorMessage(err)}`, err);
    }
    try {
      writeFileSync(path, `${randomBytes(SECRET_BYTES).toString("base64url")}\n`, { mode: 0o600, flag: "wx" });
      created = true;
    } catch (err) {
      if ((err as { code?: unknown }).code !== "EEXIST")
        throw problem(`cannot create the secret file: ${errorMessage(err)}`, err);
    }
  }
  let secret: string;
  try {
    secret = readFileSync(path, "utf8").trim();
  } catch (err) {
    throw problem(`cannot read the secret file: ${errorMessage(err)}`, err);
  }
  if (secret === "") throw problem("the secret file is empty (delete it to get a generated secret)");
  return { secret, created };
}
