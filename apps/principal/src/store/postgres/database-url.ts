/** The PostgreSQL URL as it may be shown (no `pg` import: loaded with the SQLite store too). */

/** `url` with its password replaced by `***`, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== "") u.password = "***";
    return u.toString();
  } catch {
    return "postgres://(unparsable URL)";
  }
}
