/**
 * `@cdktr/events/webhook`: trigger workflows from HTTP webhooks (node:http, no extra dependency).
 */
export { WebhookListener, type WebhookListenerOptions, type WebhookAddress } from "./webhook-listener.js";
export {
  signWebhookBody,
  verifyWebhookSignature,
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  DEFAULT_SIGNATURE_TOLERANCE_MS,
  type SignatureCheck,
  type SignatureFailure,
  type VerifySignatureInput,
} from "./signature.js";
