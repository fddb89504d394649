/**
 * `@cdktr/listeners`: run cdktr's built-in event listeners from one YAML file.
 */
export { createListeners, type ListenersApp, type ListenersDeps, type RunningListener } from "./app.js";
export {
  loadConfig,
  parseListenersConfig,
  ListenersEnvSchema,
  ListenersFileSchema,
  type ListenersConfig,
  type ListenerSpec,
  type ResolvedListener,
  type WebhookSpec,
  type FileWatcherSpec,
  type RabbitMqSpec,
  type PostgresSpec,
} from "./config.js";
