/**
 * `@cdktr/events/webhook`: trigger workflows from HTTP webhooks (node:http, no extra dependency).
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
