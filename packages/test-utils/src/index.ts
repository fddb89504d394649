export { makeTempDir, removeTempDirs } from "./temp-dir.js";
export { freePort, freePorts } from "./ports.js";
export { waitFor } from "./wait-for.js";
export { spawnService, killAllServices, type ServiceHandle, type SpawnServiceOptions } from "./spawn-service.js";
