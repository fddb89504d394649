import { CliError } from "./errors.js";

/**
 * `-p name=value` arguments as a params object. Values stay strings: the principal coerces them
 * to each parameter's declared type. The first `=` splits; the value may contain more.
 * @throws CliError (exit code 2) for an argument without `=` or with an empty name, or a name given twice.
 */
export function parseParamArgs(args: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const arg of args) {
    const eq = arg.indexOf("=");
    if (eq <= 0) {
      throw new CliError(`bad parameter ${JSON.stringify(arg)}: write -p name=value (e.g. -p date=2026-11-28)`, 2);
    }
    const name = arg.slice(0, eq).trim();
    if (name === "") throw new CliError(`bad parameter ${JSON.stringify(arg)}: the name before '=' is empty`, 2);
    if (Object.hasOwn(out, name))
      throw new CliError(`parameter \`${name}\` given twice: pass each -p name=value once`, 2);
    out[name] = arg.slice(eq + 1);
  }
  return out;
}
