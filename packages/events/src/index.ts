/**
 * `@cdktr/events`: write cdktr event listeners, and the cron scheduler built on the same API.
 *
 * @example
 * import { EventListener, runListener } from "@cdktr/events";
 */
export {
  EventListener,
  LISTENER_KEY_NAME,
  sleep,
  type BatchTrigger,
  type EventListenerEvents,
  type EventListenerOptions,
  type PrincipalAddress,
  type PrincipalRequester,
  type RejectedEvent,
  type RunWorkflowOptions,
  type RunWorkflowsOptions,
  type TriggerError,
  type TriggerResult,
} from "./listener/event-listener.js";
export {
  EventMapping,
  decodeBody,
  type EventMappingResult,
  type EventMappingSpec,
  type ParamsMap,
  type ParamsMapEntry,
} from "./mapping/event-mapping.js";
export {
  resolveMessageTrigger,
  type MessageRefusal,
  type MessageTrigger,
  type MessageTriggerOptions,
} from "./mapping/message-trigger.js";
export {
  RunOutcomeListener,
  findRuleCycle,
  type ChainRule,
  type RunOutcomeListenerOptions,
  type RunOutcomeListenerStats,
} from "./chaining/run-outcome-listener.js";
export { runListener, type RunListenerOptions } from "./listener/run-listener.js";
export { TypedEmitter } from "./listener/typed-emitter.js";
export { CronSchedule, nextOccurrences, type ScheduleSpec } from "./cron/cron-schedule.js";
export { isValidTimeZone } from "./cron/time-zone.js";
export {
  CronScheduler,
  SCHEDULER_KEY_NAME,
  occurrenceKey,
  type CronSchedulerEvents,
  type CronSchedulerOptions,
} from "./scheduler/cron-scheduler.js";
export type {
  CronSchedulerStats,
  MissedOccurrence,
  ScheduledEntry,
  ScheduledWorkflow,
} from "./scheduler/scheduler-types.js";
export { ManualClock, MAX_TIMER_DELAY_MS, systemClock, type Clock, type TimerHandle } from "@cdktr/protocol";
export { InvalidScheduleError, ListenerStartError } from "./errors.js";
// Re-exported so that a listener needs no other import than `@cdktr/events`.
export { createLogger, noopLogger, type Logger } from "@cdktr/protocol";
export { MAX_BATCH_TRIGGERS } from "@cdktr/protocol";
export { readKeyFile, clientKeyOf, findClientKey, type ClientKey } from "@cdktr/protocol";
