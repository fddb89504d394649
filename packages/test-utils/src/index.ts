/**
 * `@cdktr/test-utils`: the fixture of cdktr's multi-process tests and benchmarks. Start a
 * principal (`startPrincipal`, `preparePrincipal`), agents, a scheduler, listener runners or a
 * whole stack as real processes on OS-assigned ports with temp directories; build workflow YAML
 * with one builder; query runs and logs; and clean everything up with one `cleanup()` in
 * `afterEach`. Apps are resolved at run time by package name (`@cdktr/<app>/main`): the test's
 * workspace declares the apps it starts. Re-exports `@cdktr/test-base` (spawnService, ports,
 * temp dirs, waitFor).
 */
import { fileURLToPath } from "node:url";

export {
  makeTempDir,
  removeTempDirs,
  freePort,
  freePorts,
  reachable,
  requireServer,
  waitFor,
  spawnService,
  killAllServices,
  killAllServicesSync,
  groupAlive,
  killGroups,
  processAlive,
  processGone,
  type LineListener,
  type ServiceExit,
  type ServiceHandle,
  type SpawnServiceOptions,
  type WaitForOptions,
} from "@cdktr/test-base";
export { workflowYaml, helloWorkflowYaml, writeWorkflows, type TaskSpec, type WorkflowSpec } from "./workflow-yaml.js";
export { runRecord, workflowDefinition } from "./records.js";
export {
  appMain,
  cliBin,
  runCli,
  AppNotBuiltError,
  type AppName,
  type CliResult,
  type RunCliOptions,
  type ServiceTuning,
} from "./apps.js";
export { PrincipalFixture, preparePrincipal, startPrincipal } from "./principal-fixture.js";
export {
  PrincipalFixtureError,
  type CreateKeyOptions,
  type CreatedKey,
  type PrincipalOptions,
  type PrincipalPorts,
  type PrincipalStartOptions,
} from "./principal-options.js";
export {
  startAgent,
  startScheduler,
  startDashboard,
  startListeners,
  type AgentOptions,
  type DashboardHandle,
  type AppOptions,
} from "./start-app.js";
export { startStack, type Stack, type StackOptions } from "./stack.js";
export {
  triggerRun,
  waitForRun,
  runLogs,
  workflowRuns,
  taskStates,
  type RunWithTasks,
  type WorkflowRunsOptions,
} from "./run-queries.js";
export { cleanup, closeAtCleanup } from "./cleanup.js";
export { CuttableProxy } from "./tcp-proxy.js";
export { fillDisk, mountTmpfs, tryMountTmpfs, type TmpfsMount } from "./tmpfs.js";
/**
 * A hostile agent as a node script (`fixtures/poll-flood.js`): registers `FLOOD_AGENT` with the
 * key file `FLOOD_KEY_FILE` and pipelines `FLOOD_COUNT` fetchWork polls (see the script's header).
 */
export const POLL_FLOOD_SCRIPT = fileURLToPath(new URL("./fixtures/poll-flood.js", import.meta.url));
