import { isCdktrError, type Logger } from "@cdktr/protocol";
import { HttpError } from "../errors.js";
import { httpErrors } from "../http/respond.js";

/** Principal error codes answered as 503: the principal is away, busy or changing leader. */
const UNAVAILABLE = new Set([
  "NOT_LEADER",
  "TIMEOUT",
  "UNAVAILABLE",
  "CLOSED",
  "SHUTTING_DOWN",
  "RESOURCE_EXHAUSTED",
  "STORAGE_FULL",
  "STORAGE_UNAVAILABLE",
  "DEADLINE_EXCEEDED",
]);

/**
 * The HTTP answer to an error: an {@link HttpError} as it is; a principal error by its code
 * (`RUN_NOT_FOUND`/`WORKFLOW_NOT_FOUND` 404, `INVALID_PARAMS`/`BAD_REQUEST` 400,
 * `IDEMPOTENCY_CONFLICT` 409, `PERMISSION_DENIED` 403, unreachable/busy/not leading 503, the
 * dashboard's own key refused 503); anything else 500 with no detail (logged with its stack).
 */
export function toHttpError(e: unknown, logger: Logger): HttpError {
  if (e instanceof HttpError) return e;
  if (isCdktrError(e)) {
    const code = e.code;
    switch (code) {
      case "RUN_NOT_FOUND":
      case "WORKFLOW_NOT_FOUND":
        return new HttpError(404, code, e.message);
      case "INVALID_PARAMS":
      case "BAD_REQUEST":
        return new HttpError(400, code, e.message);
      case "IDEMPOTENCY_CONFLICT":
        return new HttpError(409, code, e.message);
      case "PERMISSION_DENIED":
        return new HttpError(403, code, `the principal refused: ${e.message}`);
      case "UNAUTHENTICATED":
        logger.error("the principal refused the dashboard's key", { error: e.message });
        return httpErrors.unavailable(
          "PRINCIPAL_UNAVAILABLE",
          "the principal refused the dashboard's key (check CDKTR_KEY_FILE: a key of role dashboard)",
        );
      default:
        if (UNAVAILABLE.has(code)) {
          logger.warn("principal unavailable", { code, error: e.message });
          return httpErrors.unavailable(code, `the principal is not available (${code}): try again shortly`);
        }
        logger.error("principal error", { code, error: e.message });
        return new HttpError(502, code, `the principal answered an error (${code})`);
    }
  }
  logger.error("request failed", { error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  return httpErrors.internal();
}
