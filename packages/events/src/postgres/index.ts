/**
 * `@cdktr/events/postgres`: trigger workflows from PostgreSQL `NOTIFY`. Needs the optional peer
 * dependency `pg`.
 */
export { PostgresListener, type PostgresListenerOptions, type PostgresListenerStats } from "./postgres-listener.js";
export { parseTriggerMessage, type TriggerMessage, type ParseTriggerResult } from "../rabbitmq/trigger-message.js";
