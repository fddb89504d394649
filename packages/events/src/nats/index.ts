/**
 * `@cdktr/events/nats`: trigger workflows from a NATS JetStream stream (a durable pull consumer).
 * Needs the optional peer dependencies `@nats-io/transport-node` and `@nats-io/jetstream`.
 */
export { NatsListener, type NatsListenerOptions, type NatsListenerStats } from "./nats-listener.js";
export { natsNameProblem, natsSubjectMatches, natsSubjectProblem } from "./subjects.js";
export { backoffDelay, type BackoffOptions } from "@cdktr/protocol";
