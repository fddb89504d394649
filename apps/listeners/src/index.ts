/**
 * `@cdktr/listeners`: run cdktr's built-in event listeners from one YAML file.
 */
export { createListeners, type ListenersApp, type ListenersDeps, type RunningListener } from "./app.js";
export {
  loadConfig,
  parseListenersConfig,
  ListenersEnvSchema,
  type ListenersConfig,
  type ResolvedListener,
} from "./config.js";
export {
  ListenersFileSchema,
  type ListenerSpec,
  type WebhookSpec,
  type FileWatcherSpec,
  type RabbitMqSpec,
  type PostgresSpec,
  type RedisStreamsSpec,
  type MqttSpec,
} from "./listener-specs.js";
