/**
 * Invalid configuration: `problems` holds one readable line per bad setting
 * (`CDKTR_PRINCIPAL_PORT: expected an integer from 1 to 65535, got "abc"`), and the message lists
 * them all.
 */
export class ConfigError extends Error {
  readonly code = "CONFIG_INVALID";
  readonly problems: string[];

  constructor(problems: string[], heading = "invalid configuration") {
    super(`${heading}:\n${problems.map((p) => `  ${p}`).join("\n")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}
