/**
 * `@cdktr/principal`: the cdktr principal (API, workflow store, durable run queue, logs).
 * `cdktr start principal` uses {@link createPrincipal} and {@link loadConfig}.
 */
export {
  createPrincipal,
  PRINCIPAL_VERSION,
  type Principal,
  type PrincipalDeps,
  type PrincipalEndpoints,
  type PrincipalReadyInfo,
} from "./app.js";
export { initKeysDir, LOCAL_KEYS, type KeysDirEntry } from "./auth/local-keys.js";
export { PrincipalStartError, SchemaVersionError, type PrincipalStartErrorCode } from "./errors.js";
export { loadConfig, expandHome, PrincipalEnvSchema, type PrincipalConfig } from "./config.js";
export type {
  Store,
  ActiveRun,
  CreateRunInput,
  CreateRunResult,
  RunUpdateResult,
  TaskUpdateResult,
  CrashResult,
  CancelResult,
  InsertLogsResult,
  PruneResult,
  RetentionPolicy,
  TableCounts,
} from "./store/store.js";
export { SqliteStore, type SqliteStoreOptions } from "./store/sqlite/sqlite-store.js";
export { MIGRATIONS } from "./store/sqlite/migrations.js";
export { UlidGenerator } from "./ids.js";
