/**
 * `@cdktr/events/webhook`: trigger workflows from HTTP webhooks (node:http, no extra dependency):
 * `POST /trigger/<workflowId>`, and routes signed the way GitHub, GitLab or any HMAC sender signs.
 */
export { WebhookListener, type WebhookListenerOptions, type WebhookAddress } from "./webhook-listener.js";
export {
  signWebhookRequest,
  verifyWebhookSignature,
  webhookSigningString,
  webhookTriggerPath,
  SIGNATURE_HEADER,
  SIGNATURE_VERSION,
  TIMESTAMP_HEADER,
  IDEMPOTENCY_KEY_HEADER,
  DEFAULT_SIGNATURE_TOLERANCE_MS,
  type SignedRequest,
  type SignatureCheck,
  type SignatureFailure,
  type VerifySignatureInput,
} from "./signature.js";
export {
  WEBHOOK_FLAVOURS,
  webhookRoutePathProblem,
  type WebhookEvent,
  type WebhookFlavour,
  type WebhookRoute,
} from "./webhook-route.js";
export {
  GITHUB_DELIVERY_HEADER,
  GITHUB_EVENT_HEADER,
  GITHUB_HMAC,
  GITHUB_SIGNATURE_HEADER,
  GITLAB_EVENT_UUID_HEADER,
  GITLAB_TOKEN_HEADER,
  hmacSignature,
  verifyGitHubSignature,
  verifyGitLabToken,
  verifyHmacSignature,
  type HmacAlgorithm,
  type HmacEncoding,
  type HmacScheme,
  type RouteSignatureCheck,
  type RouteSignatureFailure,
  type VerifyHmacInput,
} from "./route-signature.js";
