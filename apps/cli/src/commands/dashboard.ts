/**
 * `cdktr dashboard token create|list|revoke`: the dashboard's sign-in tokens. They edit the
 * tokens file directly (`CDKTR_DASHBOARD_TOKENS_FILE`, else
 * `<CDKTR_KEYS_DIR or ~/.cdktr/keys>/dashboard-tokens.json`): no principal needed, and a running
 * dashboard picks the change up within a second.
 */
import { createToken, defaultTokensFile, listTokens, revokeToken, TokenFileError } from "@cdktr/dashboard";
import type { CommandContext } from "../context.js";
import { CliError } from "../errors.js";
import { renderTable } from "../format/table.js";

/** Options of `cdktr dashboard token create`. */
export interface DashboardTokenCreateOptions {
  role: string;
  json?: boolean;
}

/** A token error as a CLI error: bad names, roles and names in use are usage errors (exit 2). */
function asCliError(e: unknown): never {
  if (e instanceof TokenFileError) {
    const usage = e.code === "TOKEN_NAME_INVALID" || e.code === "TOKEN_ROLE_INVALID" || e.code === "TOKEN_EXISTS";
    throw new CliError(e.message, usage ? 2 : 1);
  }
  throw e;
}

/** `cdktr dashboard token create NAME --role reader|operator`: the token on stdout, once. */
export function dashboardTokenCreateCommand(
  ctx: CommandContext,
  name: string,
  opts: DashboardTokenCreateOptions,
): number {
  const file = defaultTokensFile(ctx.io.env);
  let made: ReturnType<typeof createToken>;
  try {
    made = createToken(file, name, opts.role);
  } catch (e) {
    asCliError(e);
  }
  if (opts.json === true) ctx.out(JSON.stringify({ ...made.info, token: made.token, file }, null, 2));
  else ctx.out(made.token);
  ctx.err(
    `dashboard token \`${made.info.name}\` (${made.info.role}) saved in ${file}; it cannot be shown again: ` +
      "keep it now, and sign in with it on the dashboard's sign-in page",
  );
  return 0;
}

/** `cdktr dashboard token list`: names, roles and dates; never a token or its hash. */
export function dashboardTokenListCommand(ctx: CommandContext, opts: { json?: boolean }): number {
  const file = defaultTokensFile(ctx.io.env);
  let tokens: ReturnType<typeof listTokens>;
  try {
    tokens = listTokens(file);
  } catch (e) {
    asCliError(e);
  }
  if (opts.json === true) {
    ctx.out(JSON.stringify(tokens, null, 2));
    return 0;
  }
  ctx.io.stdout.write(
    renderTable(
      ["NAME", "ROLE", "CREATED", "STATUS"],
      tokens.map((t) => [t.name, t.role, t.createdAt, t.revokedAt === null ? "active" : `revoked ${t.revokedAt}`]),
      { header: ctx.style.dim, empty: `no dashboard tokens in ${file}` },
    ),
  );
  return 0;
}

/** `cdktr dashboard token revoke NAME`: sign-ins with it fail, its sessions end at their next request. */
export function dashboardTokenRevokeCommand(ctx: CommandContext, name: string): number {
  const file = defaultTokensFile(ctx.io.env);
  let info: ReturnType<typeof revokeToken>;
  try {
    info = revokeToken(file, name);
  } catch (e) {
    asCliError(e);
  }
  ctx.out(`dashboard token \`${info.name}\` revoked (${info.revokedAt ?? ""})`);
  return 0;
}
