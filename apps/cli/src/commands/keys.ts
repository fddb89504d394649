/**
 * `cdktr keys create|list|revoke`: client keys for other machines. The key pair is made here and
 * only its public half is sent (`enrollKey`); the secret half is written once, to the key file.
 * Every verb needs an operator key (docs/security.md).
 */
import { existsSync, rmSync } from "node:fs";
import { resolve } from "node:path";
import {
  KEY_ROLES,
  KeyFileSchema,
  KeyNameSchema,
  WorkflowIdSchema,
  authDisabled,
  defaultKeysDir,
  generateKeyPair,
  isCdktrError,
  writeKeyFile,
  type ClientKey,
  type KeyFile,
  type KeyRecord,
  type KeyRole,
} from "@cdktr/protocol";
import type { KeysDirEntry } from "@cdktr/principal";
import type { CommandContext } from "../context.js";
import { CliError } from "../errors.js";
import { formatInstant } from "../format/duration.js";
import { renderTable } from "../format/table.js";
import { terminalSafe } from "../format/terminal-text.js";

/** Options of `cdktr keys create`. */
export interface KeysCreateOptions {
  role: string;
  scope?: string;
  workflows?: string;
  out?: string;
}

/** Roles whose keys trigger runs, hence may be limited to some workflows. */
const TRIGGERING: readonly KeyRole[] = ["trigger", "scheduler"];

/** What the CLI says when its key may not manage keys. */
const OPERATOR_NEEDED =
  "`cdktr keys` needs an operator key: `local-operator`, which the principal makes in its keys directory on first start (run cdktr on that machine with the same HOME or CDKTR_KEYS_DIR), or CDKTR_KEY_FILE naming an operator key file";

function checkName(text: string, what: string): string {
  const r = KeyNameSchema.safeParse(text);
  if (!r.success) {
    const why = r.error.issues[0]?.message ?? "invalid";
    throw new CliError(`${what} ${JSON.stringify(text)}: ${why} (1 to 64 characters)`, 2);
  }
  return r.data;
}

/** Parse `--role` (case-insensitive). */
export function parseRole(text: string): KeyRole {
  const role = text.trim().toLowerCase();
  if (!(KEY_ROLES as readonly string[]).includes(role))
    throw new CliError(
      `unknown role ${JSON.stringify(text)}: use one of ${KEY_ROLES.join(", ")} (docs/security.md has what each may do)`,
      2,
    );
  return role as KeyRole;
}

/** Parse `--workflows a,b` into workflow ids. */
export function parseWorkflowList(text: string): string[] {
  const ids = text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (ids.length === 0)
    throw new CliError("--workflows: give at least one workflow id, e.g. --workflows etl,report", 2);
  for (const id of ids) {
    const r = WorkflowIdSchema.safeParse(id);
    if (!r.success)
      throw new CliError(`--workflows: ${JSON.stringify(id)} is not a workflow id (${r.error.issues[0]?.message})`, 2);
  }
  return [...new Set(ids)];
}

/** The operator key this CLI manages keys with, or a one-line explanation of why there is none. */
function operatorKey(ctx: CommandContext): ClientKey {
  if (authDisabled(ctx.io.env))
    throw new CliError(
      "`cdktr keys` manages the keys of a principal with authentication on, but CDKTR_AUTH=off is set here (a principal with authentication off has no keys)",
    );
  const key = ctx.key();
  if (key === null) throw new CliError(`no key found: ${OPERATOR_NEEDED}`);
  return key;
}

/** Rethrow what the principal refused, with what `cdktr keys` needs. */
function explain(e: unknown): never {
  if (isCdktrError(e, "PERMISSION_DENIED")) throw new CliError(`permission denied: ${e.message}; ${OPERATOR_NEEDED}`);
  throw e;
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

/** The lines telling how to use a new key on another machine. */
function usage(ctx: CommandContext, file: KeyFile, role: KeyRole, where: string | null): string[] {
  const t = ctx.target();
  const logsPort = ctx.io.env.CDKTR_LOGS_LISTENING_PORT?.trim() || "5562";
  const host = isLoopback(t.host) ? "<this principal's address>" : t.host;
  const ports = [`CDKTR_PRINCIPAL_PORT=${t.port}`, `CDKTR_LOGS_PUBLISHING_PORT=${t.publishPort}`];
  if (file.role === "agent" || file.role === "operator") ports.push(`CDKTR_LOGS_LISTENING_PORT=${logsPort}`);
  const next: Record<KeyRole, string> = {
    agent: "cdktr start agent",
    scheduler: "cdktr start scheduler",
    trigger: `cdktr run ${file.workflows?.[0] ?? "<workflow>"} --wait   (or cdktr start listeners, or PrincipalClient/EventListener in code)`,
    reader: "cdktr runs; cdktr logs --follow",
    operator: "any cdktr command",
    dashboard: "cdktr start dashboard",
  };
  const scope = file.scope ?? file.name;
  const may = file.workflows === null || file.workflows === undefined ? "" : `, may run: ${file.workflows.join(", ")}`;
  const out = [`key \`${file.name}\` enrolled: role ${role}, scope ${scope}${may}`];
  if (where !== null)
    out.push(`key file: ${where} (mode 0600: it holds the secret key; keep it private, never commit it)`);
  out.push(
    "",
    "To use it on another machine:",
    `  1. copy the key file there (e.g. to ~/.cdktr/keys/${file.name}.json) and keep it private: chmod 600 <file>`,
    `  2. export CDKTR_KEY_FILE=~/.cdktr/keys/${file.name}.json   (the path of the copy)`,
    `  3. export CDKTR_PRINCIPAL_HOST=${host} ${ports.join(" ")}`,
    `  4. ${next[role]}`,
    "",
    `It stops working at once with \`cdktr keys revoke ${file.name}\`.`,
  );
  if (isLoopback(t.host))
    out.push(
      `(this cdktr reached the principal at ${t.display}, an address of this machine only: use one the other machine can reach; the principal must listen there, CDKTR_PRINCIPAL_HOST=0.0.0.0)`,
    );
  return out;
}

/**
 * `cdktr keys create NAME --role ROLE [--scope S] [--workflows a,b] [--out FILE]`: make a key
 * pair here, enrol its public half, write the key file (0600, never over an existing file; `-`
 * prints it on stdout) and say how to use it elsewhere.
 */
export async function keysCreateCommand(
  ctx: CommandContext,
  nameArg: string,
  opts: KeysCreateOptions,
): Promise<number> {
  const name = checkName(nameArg, "key name");
  const role = parseRole(opts.role);
  const scope = opts.scope === undefined ? undefined : checkName(opts.scope, "--scope");
  const workflows = opts.workflows === undefined ? null : parseWorkflowList(opts.workflows);
  if (workflows !== null && !TRIGGERING.includes(role))
    throw new CliError(
      `--workflows limits the runs a trigger or scheduler key may start; ${role === "agent" || role === "operator" ? "an" : "a"} ${role} key starts none`,
      2,
    );
  const toStdout = opts.out === "-";
  if (toStdout && ctx.io.isTTY)
    throw new CliError(
      "--out - prints the key file, secret key included, on stdout: redirect it to a file (`... --out - > key.json`), or give --out FILE",
      2,
    );
  let path: string | null = null;
  if (!toStdout) {
    path = opts.out === undefined ? resolve(defaultKeysDir(ctx.io.env), `${name}.json`) : resolve(ctx.io.cwd, opts.out);
    if (existsSync(path))
      throw new CliError(
        `key file ${path} exists already: pick another name, or --out FILE (a key file is never overwritten)`,
      );
  }
  const me = operatorKey(ctx);
  const file: KeyFile = {
    name,
    role,
    scope: scope ?? name,
    workflows,
    ...generateKeyPair(),
    principalPublicKey: me.principalPublicKey,
  };
  // The file first, so that no enrolled key ever lacks its secret half; removed if enrolling fails.
  if (path !== null) writeKeyFile(path, file);
  try {
    await ctx.client().request("enrollKey", {
      name,
      role,
      publicKey: file.publicKey,
      ...(scope === undefined ? {} : { scope }),
      ...(workflows === null ? {} : { workflows }),
    });
  } catch (e) {
    if (path !== null) rmSync(path, { force: true });
    explain(e);
  }
  const say = (line: string): void => (toStdout ? ctx.err(line) : ctx.out(line));
  if (toStdout) ctx.io.stdout.write(`${JSON.stringify(KeyFileSchema.parse(file), null, 2)}\n`);
  for (const line of usage(ctx, file, role, path)) say(line);
  return 0;
}

/** One table row per key (never a secret: the principal has none). */
function keyRows(keys: readonly KeyRecord[], ctx: CommandContext, mine: string | undefined): string[][] {
  return terminalSafe(keys).map((k) => [
    k.name === mine ? `${k.name} *` : k.name,
    k.role,
    k.scope,
    k.workflows === null ? "any" : k.workflows.join(","),
    formatInstant(k.createdAt),
    k.revokedAt === null ? ctx.style.green("active") : ctx.style.red(`revoked ${formatInstant(k.revokedAt)}`),
    k.publicKey,
  ]);
}

/** `cdktr keys list [--json]`: every enrolled key, revoked ones included. */
export async function keysListCommand(ctx: CommandContext, opts: { json?: boolean }): Promise<number> {
  const me = operatorKey(ctx);
  let keys: KeyRecord[];
  try {
    keys = (await ctx.client().request("listKeys", {})).keys;
  } catch (e) {
    explain(e);
  }
  if (opts.json === true) {
    ctx.out(JSON.stringify(keys, null, 2));
    return 0;
  }
  ctx.io.stdout.write(
    renderTable(
      ["NAME", "ROLE", "SCOPE", "WORKFLOWS", "CREATED", "STATUS", "PUBLIC KEY"],
      keyRows(keys, ctx, me.name),
      { header: ctx.style.dim, empty: "no keys" },
    ),
  );
  if (keys.some((k) => k.name === me.name)) ctx.err(ctx.style.dim("* the key this cdktr uses"));
  return 0;
}

/** `cdktr keys revoke NAME`: the key's requests are refused from now on, its subscriptions end. */
export async function keysRevokeCommand(ctx: CommandContext, nameArg: string): Promise<number> {
  const name = checkName(nameArg, "key name");
  const me = operatorKey(ctx);
  if (me.name === name)
    throw new CliError(
      `\`${name}\` is the key this cdktr speaks with: revoking it would lock this cdktr out; revoke it with another operator key (CDKTR_KEY_FILE)`,
      2,
    );
  let reply: { key: KeyRecord; revoked: boolean };
  try {
    reply = await ctx.client().request("revokeKey", { name });
  } catch (e) {
    explain(e);
  }
  const k = terminalSafe(reply.key);
  if (reply.revoked)
    ctx.out(
      `key \`${k.name}\` (role ${k.role}) revoked: the principal refuses its requests from now on, and its subscriptions end`,
    );
  else ctx.out(`key \`${k.name}\` was revoked already (${formatInstant(k.revokedAt)}): nothing changed`);
  return 0;
}

/**
 * `cdktr keys init [dir]`: make a deployment's key files without a principal (no principal is
 * asked): `principal.json` and the local client keys, as a principal's first start would; files
 * that exist are kept. For principals that read their keys from a read-only mount (Kubernetes
 * Secrets, docs/operations.md): the principal enrols the local keys on its first start.
 */
export async function keysInitCommand(
  ctx: CommandContext,
  dir: string | undefined,
  opts: { json?: boolean },
): Promise<number> {
  const keysDir = dir === undefined ? defaultKeysDir(ctx.io.env) : resolve(ctx.io.cwd, dir);
  // Loaded here only: the rest of the CLI does not need the principal's code.
  const { initKeysDir } = await import("@cdktr/principal");
  let entries: KeysDirEntry[];
  try {
    entries = initKeysDir(keysDir);
  } catch (e) {
    throw new CliError(e instanceof Error ? e.message : String(e), 1, { cause: e });
  }
  if (opts.json === true) {
    ctx.out(JSON.stringify({ keysDir, files: entries }, null, 2));
    return 0;
  }
  for (const e of terminalSafe(entries)) {
    ctx.out(`${e.created ? "created" : "kept   "} ${e.path} (${e.role})`);
  }
  ctx.err(
    ctx.style.dim(
      "the secret halves are in these files (mode 0600): keep them out of images and repositories; docs/operations.md shows how to load them as Kubernetes Secrets",
    ),
  );
  return 0;
}
