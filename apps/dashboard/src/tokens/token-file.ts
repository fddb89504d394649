/**
 * The dashboard's sign-in tokens file: `{ "version": 1, "tokens": [{ name, role, hash, createdAt,
 * revokedAt }] }`, only the SHA-256 of each token, written atomically (temp file, fsync, rename)
 * with mode 0600 in a directory made 0700. `cdktr dashboard token ...` edits it; the server
 * re-reads it when it changes ({@link TokenRegistry}).
 */
import { createHash, randomBytes } from "node:crypto";
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { z } from "zod";
import { defaultKeysDir, errorMessage, formatZodIssues } from "@cdktr/protocol";
import { TokenFileError } from "../errors.js";

/** File name of the tokens file in the keys directory. */
export const TOKENS_FILE_NAME = "dashboard-tokens.json";
/** Prefix of every dashboard token. */
export const TOKEN_PREFIX = "cdktr_dash_";
/** A token: the prefix and 43 base64url characters (32 random bytes). */
export const TOKEN_PATTERN = /^cdktr_dash_[A-Za-z0-9_-]{43}$/;

/** Roles of a dashboard token: `reader` sees everything, `operator` also triggers, re-runs and cancels. */
export const TOKEN_ROLES = ["reader", "operator"] as const;
/** A dashboard token's role. */
export const TokenRoleSchema = z.enum(TOKEN_ROLES);
/** Type of {@link TokenRoleSchema}. */
export type TokenRole = z.infer<typeof TokenRoleSchema>;

/** A token's name: lowercase letters, digits and `._@-`, 1 to 64 characters, first a letter or digit. */
export const TokenNameSchema = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9._@-]{0,63}$/,
    "use 1 to 64 lowercase letters, digits, '.', '_', '@' or '-', starting with a letter or digit",
  );

/** One token's record (the token itself is never stored: its hash is). */
export const TokenRecordSchema = z
  .object({
    name: TokenNameSchema,
    role: TokenRoleSchema,
    /** `sha256:<64 hex>` of the whole token string. */
    hash: z.string().regex(/^sha256:[0-9a-f]{64}$/),
    createdAt: z.iso.datetime({ offset: true }),
    revokedAt: z.iso.datetime({ offset: true }).nullable(),
  })
  .strict();
/** Type of {@link TokenRecordSchema}. */
export type TokenRecord = z.infer<typeof TokenRecordSchema>;

/** The whole file. */
export const TokensDocumentSchema = z
  .object({ version: z.literal(1), tokens: z.array(TokenRecordSchema) })
  .strict()
  .refine((d) => new Set(d.tokens.map((t) => t.name)).size === d.tokens.length, {
    error: "two tokens have the same name",
    path: ["tokens"],
  });
/** Type of {@link TokensDocumentSchema}. */
export type TokensDocument = z.infer<typeof TokensDocumentSchema>;

/** What `list` shows of a token: never its hash. */
export interface TokenInfo {
  name: string;
  role: TokenRole;
  createdAt: string;
  revokedAt: string | null;
}

/**
 * The tokens file of an environment: `CDKTR_DASHBOARD_TOKENS_FILE` (`~` expanded, relative to the
 * working directory), else `<CDKTR_KEYS_DIR or ~/.cdktr/keys>/dashboard-tokens.json`.
 */
export function defaultTokensFile(env: Readonly<Record<string, string | undefined>> = process.env): string {
  const set = env.CDKTR_DASHBOARD_TOKENS_FILE?.trim();
  if (set === undefined || set === "") return join(defaultKeysDir(env), TOKENS_FILE_NAME);
  const home = env.HOME ?? process.env.HOME ?? "/";
  if (set === "~" || set.startsWith("~/")) return join(home, set.slice(1));
  return isAbsolute(set) ? set : resolve(set);
}

/** `sha256:<hex>` of a token string. */
export function hashToken(token: string): string {
  return `sha256:${createHash("sha256").update(token, "utf8").digest("hex")}`;
}

/** A fresh token: `cdktr_dash_` and 32 random bytes in base64url. */
export function newToken(): string {
  return `${TOKEN_PREFIX}${randomBytes(32).toString("base64url")}`;
}

/**
 * Read the tokens file; a missing file is an empty one.
 * @throws TokenFileError `TOKENS_FILE_INVALID` (unreadable, not JSON, or not the schema, with the field)
 */
export function readTokensFile(path: string): TokensDocument {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as { code?: unknown }).code === "ENOENT") return { version: 1, tokens: [] };
    throw new TokenFileError("TOKENS_FILE_INVALID", `cannot read the tokens file ${path}: ${errorMessage(e)}`, {
      cause: e,
      context: { path },
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new TokenFileError("TOKENS_FILE_INVALID", `the tokens file ${path} is not JSON: ${errorMessage(e)}`, {
      cause: e,
      context: { path },
    });
  }
  const parsed = TokensDocumentSchema.safeParse(json);
  if (!parsed.success) {
    throw new TokenFileError(
      "TOKENS_FILE_INVALID",
      `the tokens file ${path}: ${formatZodIssues(parsed.error, "file")}`,
      {
        context: { path },
      },
    );
  }
  return parsed.data;
}

/**
 * Write the tokens file atomically (a temp file beside it, fsync, rename) with mode 0600, making
 * its directory (0700) when missing.
 * @throws TokenFileError `TOKENS_FILE_UNWRITABLE`
 */
export function writeTokensFile(path: string, doc: TokensDocument): void {
  const checked = TokensDocumentSchema.parse(doc);
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const fd = openSync(tmp, "wx", 0o600);
    try {
      writeSync(fd, `${JSON.stringify(checked, null, 2)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // not created, or renamed already
    }
    throw new TokenFileError("TOKENS_FILE_UNWRITABLE", `cannot write the tokens file ${path}: ${errorMessage(e)}`, {
      cause: e,
      context: { path },
    });
  }
}

function checkName(name: string): void {
  const r = TokenNameSchema.safeParse(name);
  if (!r.success)
    throw new TokenFileError(
      "TOKEN_NAME_INVALID",
      `invalid token name ${JSON.stringify(name)}: ${r.error.issues[0]?.message ?? "bad name"}`,
      {
        context: { name },
      },
    );
}

function info(t: TokenRecord): TokenInfo {
  return { name: t.name, role: t.role, createdAt: t.createdAt, revokedAt: t.revokedAt };
}

/**
 * Make a token named `name` with `role` and store its hash. A revoked token's name may be used
 * again: the new token replaces its record.
 * @returns the token (shown once: it is not stored) and what `list` shows of it
 * @throws TokenFileError `TOKEN_NAME_INVALID`, `TOKEN_ROLE_INVALID`, `TOKEN_EXISTS` (a live token
 *   has that name: revoke it first), `TOKENS_FILE_INVALID`, `TOKENS_FILE_UNWRITABLE`
 */
export function createToken(
  path: string,
  name: string,
  role: string,
  now: Date = new Date(),
): { token: string; info: TokenInfo } {
  checkName(name);
  const r = TokenRoleSchema.safeParse(role);
  if (!r.success)
    throw new TokenFileError("TOKEN_ROLE_INVALID", `invalid role ${JSON.stringify(role)}: use reader or operator`, {
      context: { role },
    });
  const doc = readTokensFile(path);
  const existing = doc.tokens.find((t) => t.name === name);
  if (existing !== undefined && existing.revokedAt === null)
    throw new TokenFileError(
      "TOKEN_EXISTS",
      `a token named ${name} exists already: revoke it first (\`cdktr dashboard token revoke ${name}\`) or pick another name`,
      { context: { name } },
    );
  const token = newToken();
  const record: TokenRecord = {
    name,
    role: r.data,
    hash: hashToken(token),
    createdAt: now.toISOString(),
    revokedAt: null,
  };
  writeTokensFile(path, { version: 1, tokens: [...doc.tokens.filter((t) => t.name !== name), record] });
  return { token, info: info(record) };
}

/**
 * The tokens of the file, without their hashes, in creation order.
 * @throws TokenFileError `TOKENS_FILE_INVALID`
 */
export function listTokens(path: string): TokenInfo[] {
  return readTokensFile(path).tokens.map(info);
}

/**
 * Revoke the token `name`: the server refuses it, and ends its sessions at their next request.
 * Revoking a revoked token keeps its first revocation time.
 * @throws TokenFileError `TOKEN_NOT_FOUND`, `TOKEN_NAME_INVALID`, `TOKENS_FILE_INVALID`, `TOKENS_FILE_UNWRITABLE`
 */
export function revokeToken(path: string, name: string, now: Date = new Date()): TokenInfo {
  checkName(name);
  const doc = readTokensFile(path);
  const existing = doc.tokens.find((t) => t.name === name);
  if (existing === undefined)
    throw new TokenFileError("TOKEN_NOT_FOUND", `no token named ${name} in ${path}`, { context: { name, path } });
  if (existing.revokedAt !== null) return info(existing);
  const revoked: TokenRecord = { ...existing, revokedAt: now.toISOString() };
  writeTokensFile(path, { version: 1, tokens: doc.tokens.map((t) => (t.name === name ? revoked : t)) });
  return info(revoked);
}
