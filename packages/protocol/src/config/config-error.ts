import { CodedError } from "../errors.js";

/**
 * Invalid configuration (code `CONFIG_INVALID`): `problems` holds one readable line per bad
 * setting (`CDKTR_PRINCIPAL_PORT: expected an integer from 1 to 65535, got "abc"`), and the
 * message lists them all under `heading`.
 */
export class ConfigError extends CodedError<"CONFIG_INVALID"> {
  /** One line per bad setting, each naming the setting (or `file:line:column` and field). */
  readonly problems: string[];

  constructor(problems: string[], heading = "invalid configuration", options: { cause?: unknown } = {}) {
    super("CONFIG_INVALID", `${heading}:\n${problems.map((p) => `  ${p}`).join("\n")}`, options);
    this.problems = problems;
  }
}
