/**
 * `@cdktr/events/mqtt`: trigger workflows from MQTT topics (QoS 1, persistent session). Needs the
 * optional peer dependency `mqtt` (MQTT.js 5).
 */
export {
  MqttListener,
  type MqttListenerOptions,
  type MqttListenerStats,
  type MqttTlsOptions,
} from "./mqtt-listener.js";
export { topicFilterProblem, topicMatches, topicNameProblem } from "./topic-filter.js";
export { scopedIdempotencyKey } from "../rabbitmq/trigger-message.js";
export { backoffDelay, type BackoffOptions } from "@cdktr/protocol";
