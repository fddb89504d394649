/**
 * `@cdktr/events/rabbitmq`: trigger workflows from a RabbitMQ queue. Needs the optional peer
 * dependency `amqplib`.
 */
export { RabbitMqListener, type RabbitMqListenerOptions, type RabbitMqListenerStats } from "./rabbitmq-listener.js";
export {
  parseTriggerMessage,
  scopedIdempotencyKey,
  type TriggerMessage,
  type ParseTriggerResult,
} from "./trigger-message.js";
export { backoffDelay, type BackoffOptions } from "@cdktr/protocol";
