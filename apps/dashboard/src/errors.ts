/**
 * Errors of the dashboard. Local ones (the tokens file, start-up) are {@link CodedError}
 * subclasses with stable codes; what the HTTP API answers is an {@link HttpError} turned into
 * `{ "error": { "code", "message" } }` with its status.
 */
import { CodedError } from "@cdktr/protocol";

/** Stable codes of {@link TokenFileError}. */
export type TokenFileErrorCode =
  | "TOKENS_FILE_INVALID"
  | "TOKENS_FILE_UNWRITABLE"
  | "TOKEN_NAME_INVALID"
  | "TOKEN_ROLE_INVALID"
  | "TOKEN_EXISTS"
  | "TOKEN_NOT_FOUND";

/**
 * The tokens file cannot be read or written, or a token operation is refused (a name in use, an
 * unknown name, a name or role that is not allowed). The message names the file or the token.
 */
export class TokenFileError extends CodedError<TokenFileErrorCode> {}

/** The dashboard cannot start (`ALREADY_STARTED`, the HTTP port in use, a bad tokens file). */
export class DashboardStartError extends CodedError<"ALREADY_STARTED" | "LISTEN_FAILED" | "TOKENS_UNAVAILABLE"> {}

/** An error answered to a browser: an HTTP status and a stable code. */
export class HttpError extends CodedError<string> {
  readonly status: number;
  /** Extra response headers (e.g. `Allow` on 405, `Retry-After` on 429). */
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, code: string, message: string, headers: Readonly<Record<string, string>> = {}) {
    super(code, message);
    this.status = status;
    this.headers = headers;
  }
}
