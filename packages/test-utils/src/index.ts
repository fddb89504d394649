/** `@cdktr/test-utils`: test helpers of cdktr (re-exports `@cdktr/test-base`). */
export {
  makeTempDir,
  removeTempDirs,
  freePort,
  freePorts,
  waitFor,
  spawnService,
  killAllServices,
  killAllServicesSync,
  groupAlive,
  killGroups,
  processAlive,
  type LineListener,
  type ServiceExit,
  type ServiceHandle,
  type SpawnServiceOptions,
  type WaitForOptions,
} from "@cdktr/test-base";
