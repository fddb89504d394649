/**
 * The soak's own errors.
 */
import { CodedError } from "@cdktr/protocol";

/** The soak could not run at all (a process never started, a bad option). */
export class SoakError extends CodedError<"START_FAILED" | "BAD_OPTION"> {}
