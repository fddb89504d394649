/**
 * `@cdktr/dashboard`: the web dashboard process (see `main.ts`), its configuration, and the
 * sign-in tokens file that `cdktr dashboard token ...` edits.
 */
export { createDashboard, DASHBOARD_KEY_NAME, type DashboardDeps, type DashboardService } from "./app.js";
export {
  DEFAULT_DASHBOARD_PORT,
  DashboardEnvSchema,
  isLoopbackHost,
  loadConfig,
  type DashboardConfig,
} from "./config.js";
export { DashboardStartError, HttpError, TokenFileError, type TokenFileErrorCode } from "./errors.js";
export {
  TOKEN_PATTERN,
  TOKEN_PREFIX,
  TOKEN_ROLES,
  TOKENS_FILE_NAME,
  TokenNameSchema,
  TokenRecordSchema,
  TokenRoleSchema,
  TokensDocumentSchema,
  createToken,
  defaultTokensFile,
  hashToken,
  listTokens,
  readTokensFile,
  revokeToken,
  type TokenInfo,
  type TokenRecord,
  type TokenRole,
  type TokensDocument,
} from "./tokens/token-file.js";
export { TokenRegistry, type TokenRegistryOptions } from "./tokens/token-registry.js";
export { SESSION_COOKIE } from "./auth/session-store.js";
export { CONTENT_SECURITY_POLICY } from "./http/respond.js";
export { DASHBOARD_SOURCE } from "./api/api-routes.js";
