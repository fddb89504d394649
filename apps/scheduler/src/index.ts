/** `@cdktr/scheduler`: the cron scheduler process (see `main.ts`) and its building blocks. */
export { createScheduler, type SchedulerDeps, type SchedulerService } from "./app.js";
export { loadConfig, SchedulerEnvSchema, type SchedulerConfig } from "./config.js";
