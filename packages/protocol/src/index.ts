/**
 * `@cdktr/protocol`: the wire contract of cdktr (zod schemas of every record, verb and event),
 * the ZeroMQ transport (request/reply client and server, publish/subscribe), logging and
 * environment configuration helpers.
 */
export * from "./records.js";
export * from "./messages.js";
export * from "./errors.js";
export * from "./topics.js";

export {
  PROTOCOL,
  DEFAULT_MAX_MESSAGE_BYTES,
  ZMQ_MAX_MESSAGE_BYTES,
  endpointFor,
  newRequestId,
  formatZodIssues,
} from "./rpc/frames.js";
export { RpcClient, type RpcClientOptions, type RequestOptions, type RetryOptions } from "./rpc/rpc-client.js";
export { RpcServer, type RpcServerOptions, type RequestContext, type Handler } from "./rpc/rpc-server.js";
export { BindError } from "./rpc/bind.js";
export { PrincipalClient, type PrincipalClientOptions } from "./rpc/principal-client.js";
export { LogClient, type LogClientOptions } from "./rpc/log-client.js";
export { Publisher, type PublisherOptions } from "./pubsub/publisher.js";
export { Subscriber, type SubscriberOptions, type Published } from "./pubsub/subscriber.js";
export { createLogger, noopLogger, type Logger, type CreateLoggerOptions } from "./logging/logger.js";
export { ConfigError } from "./config/config-error.js";
export {
  ManualClock,
  MAX_TIMER_DELAY_MS,
  isoTime,
  systemClock,
  type Clock,
  type TimerHandle,
} from "./time/clock.js";
export { backoffDelay, type BackoffOptions } from "./util/backoff.js";
export { DURATION_HINT, parseDurationText, parseDurationWithUnit } from "./util/duration.js";
export { packageVersion } from "./util/package-version.js";
export {
  parseEnv,
  loadDotEnv,
  parseDotEnv,
  clientEnv,
  ClientEnvSchema,
  envPort,
  envInt,
  envBool,
  type ClientEnv,
} from "./config/env.js";
export {
  runService,
  SERVICE_EXIT,
  type RunServiceOptions,
  type ServiceLifecycle,
} from "./service/run-service.js";
