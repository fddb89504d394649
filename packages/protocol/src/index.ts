/**
 * `@cdktr/protocol`: the wire contract of cdktr (zod schemas of every record, verb and event),
 * the ZeroMQ transport (request/reply client and server, publish/subscribe), logging and
 * environment configuration helpers.
 */
export * from "./records.js";
export * from "./messages.js";
export * from "./agent-messages.js";
export * from "./errors.js";
export { registerZapDomain, type AdmitKey } from "./security/zap.js";
export * from "./topics.js";

export {
  PROTOCOL,
  DEFAULT_MAX_MESSAGE_BYTES,
  ZMQ_MAX_MESSAGE_BYTES,
  FRAME_OVERHEAD_BYTES,
  MAX_SUBSCRIPTION_BYTES,
  serverFrameLimit,
  endpointFor,
  withPort,
  newRequestId,
  formatZodIssues,
} from "./rpc/frames.js";
export { RpcClient, type RpcClientOptions, type RequestOptions, type RetryOptions } from "./rpc/rpc-client.js";
export {
  DEFAULT_MAX_IN_FLIGHT_PER_PEER,
  DEFAULT_MAX_IN_FLIGHT_PER_KEY,
  RpcServer,
  type RpcServerOptions,
} from "./rpc/rpc-server.js";
export type { Handler, Precheck, RequestContext } from "./rpc/handler.js";
export { BindError } from "./rpc/bind.js";
export { autoIdempotencyKey, PrincipalClient, type PrincipalClientOptions } from "./rpc/principal-client.js";
export { LeaderWatch, type LeaderWatchOptions, type LeaderListener } from "./rpc/leader-watch.js";
export { LeaderRpc, type LeaderRpcOptions, DEFAULT_LEADER_WAIT_MS } from "./rpc/leader-rpc.js";
export { LogClient, type LogClientOptions } from "./rpc/log-client.js";
export { Publisher, type PublisherOptions } from "./pubsub/publisher.js";
export { Subscriber, type SubscriberOptions, type Published } from "./pubsub/subscriber.js";
export {
  createLogger,
  noopLogger,
  LOG_FORMATS,
  type Logger,
  type CreateLoggerOptions,
  type LogFormat,
} from "./logging/logger.js";
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
export { z85Decode, z85Encode, isZ85 } from "./security/z85.js";
export {
  KEY_ROLES,
  KeyRoleSchema,
  KeyNameSchema,
  Z85KeySchema,
  KeyIdentitySchema,
  KeyRecordSchema,
  type KeyRole,
  type KeyIdentity,
  type KeyRecord,
} from "./security/identity.js";
export {
  PRINCIPAL_KEY_FILE,
  KeyFileSchema,
  KeyFileError,
  authDisabled,
  clientKeyOf,
  defaultKeysDir,
  findClientKey,
  generateKeyPair,
  readKeyFile,
  writeKeyFile,
  type ClientKey,
  type KeyFile,
  type KeyFileErrorCode,
  type KeyPair,
} from "./security/key-file.js";
export { helloProof, sameProof, sharedSecret, subscribeProof } from "./security/proofs.js";
export { ServerSessions, type ServerAuth, type HelloReply } from "./security/server-sessions.js";
export {
  ProvenTopicSet,
  SUBSCRIPTION_AUTH_PREFIX,
  type ProvenTopics,
  type PublisherAuth,
} from "./pubsub/subscription-gate.js";
export {
  parseEnv,
  loadDotEnv,
  parseDotEnv,
  clientEnv,
  ClientEnvSchema,
  envPort,
  envMetricsPort,
  envMetricsHost,
  envLogFormat,
  envInt,
  envBool,
  envEndpointList,
  type ClientEnv,
} from "./config/env.js";
export {
  runService,
  SERVICE_EXIT,
  type RunServiceOptions,
  type ServiceLifecycle,
} from "./service/run-service.js";
export { HealthServer, type HealthServerOptions, type MetricsRegistry } from "./service/health-server.js";
