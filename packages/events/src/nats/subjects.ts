/**
 * NATS subject and name syntax, checked before anything is sent to a server: subjects are
 * `.`-separated tokens where `*` matches one token and a final `>` one or more; stream and consumer
 * names are single tokens.
 */

/** Longest stream or durable consumer name accepted (the server's own limit is on the whole API subject). */
const MAX_NAME = 255;

/**
 * Why `subject` is not a valid subject (`wildcards`: whether `*` and `>` are allowed), or null when
 * it is.
 */
export function natsSubjectProblem(subject: string, wildcards: boolean): string | null {
  if (subject === "") return "empty subject";
  if (/\s/.test(subject)) return "a subject cannot contain whitespace";
  const tokens = subject.split(".");
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] ?? "";
    if (t === "") return "empty token (a leading, trailing or double `.`)";
    if (t === "*" || t === ">") {
      if (!wildcards) return "no wildcards (`*`, `>`) here: name one subject";
      if (t === ">" && i !== tokens.length - 1) return "`>` must be the last token";
      continue;
    }
    if (t.includes("*") || t.includes(">")) return "a wildcard (`*`, `>`) must be a whole token";
  }
  return null;
}

/** Why `name` is not a valid stream or consumer name, or null when it is. */
export function natsNameProblem(name: string): string | null {
  if (name === "") return "empty name";
  if (name.length > MAX_NAME) return `longer than ${MAX_NAME} characters`;
  if (/[\s.*>/\\]/.test(name)) return "a name cannot contain whitespace, `.`, `*`, `>`, `/` or `\\`";
  return null;
}

/**
 * Whether the subject filter `filter` (with `*` and `>` wildcards) matches the literal subject
 * `subject`, as a NATS subscription or a JetStream filter would: `orders.*` matches `orders.new`,
 * `orders.>` matches `orders.eu.new`, neither matches `orders`.
 */
export function natsSubjectMatches(filter: string, subject: string): boolean {
  const f = filter.split(".");
  const s = subject.split(".");
  for (let i = 0; i < f.length; i++) {
    const t = f[i];
    if (t === ">") return s.length > i;
    if (i >= s.length) return false;
    if (t !== "*" && t !== s[i]) return false;
  }
  return f.length === s.length;
}
