/**
 * `@cdktr/events/redis`: trigger workflows from a Redis stream through a consumer group. Needs the
 * optional peer dependency `ioredis`.
 */
export {
  RedisStreamsListener,
  type RedisStreamsListenerOptions,
  type RedisStreamsListenerStats,
} from "./redis-streams-listener.js";
export { scopedIdempotencyKey } from "../rabbitmq/trigger-message.js";
export { backoffDelay, type BackoffOptions } from "@cdktr/protocol";
