/**
 * MQTT topic names and topic filters (MQTT 5.0, section 4.7): checked before they reach the
 * broker, so a bad one is a start-up error naming the topic, and matched locally, so a dead-letter
 * topic that the listener itself subscribes to (parked messages coming back forever) is refused.
 */

/** Longest topic the protocol can carry (a UTF-8 string with a 16-bit length). */
const MAX_TOPIC_BYTES = 65_535;
const SHARE_PREFIX = "$share/";

/**
 * What is wrong with `filter` as a subscription topic filter (wildcards `+` for one level and a
 * final `#` for any number of levels; `$share/<group>/<filter>` for a shared subscription), or
 * null when it is valid.
 */
export function topicFilterProblem(filter: string): string | null {
  const common = commonProblem(filter);
  if (common !== null) return common;
  let rest = filter;
  if (filter.startsWith(SHARE_PREFIX)) {
    const slash = filter.indexOf("/", SHARE_PREFIX.length);
    const group = slash === -1 ? "" : filter.slice(SHARE_PREFIX.length, slash);
    if (group === "" || /[+#]/.test(group))
      return "a shared subscription is $share/<group>/<filter> with a group name without `+`, `#` or `/`";
    rest = filter.slice(slash + 1);
    if (rest === "") return "a shared subscription needs a topic filter after $share/<group>/";
  }
  const levels = rest.split("/");
  for (const [i, level] of levels.entries()) {
    if (level === "#" && i !== levels.length - 1) return "`#` may only be the last level (`orders/#`)";
    if (level !== "#" && level !== "+" && /[+#]/.test(level))
      return `level ${JSON.stringify(level)} mixes a wildcard with other characters: \`+\` and \`#\` stand alone between slashes`;
  }
  return null;
}

/** What is wrong with `topic` as a topic name to publish to (no wildcards), or null when it is valid. */
export function topicNameProblem(topic: string): string | null {
  const common = commonProblem(topic);
  if (common !== null) return common;
  if (/[+#]/.test(topic)) return "a topic to publish to cannot contain the wildcards `+` or `#`";
  return null;
}

/**
 * True when the topic name `topic` matches the topic filter `filter` (a shared subscription's
 * filter is the part after `$share/<group>/`). Wildcards at the first level never match a topic
 * starting with `$` (`#` does not match `$SYS/...`).
 */
export function topicMatches(filter: string, topic: string): boolean {
  let f = filter;
  if (f.startsWith(SHARE_PREFIX)) f = f.slice(f.indexOf("/", SHARE_PREFIX.length) + 1);
  const fl = f.split("/");
  const tl = topic.split("/");
  if (topic.startsWith("$") && (fl[0] === "+" || fl[0] === "#")) return false;
  for (const [i, level] of fl.entries()) {
    if (level === "#") return true;
    const t = tl[i];
    if (t === undefined) return false;
    if (level !== "+" && level !== t) return false;
  }
  return fl.length === tl.length;
}

function commonProblem(topic: string): string | null {
  if (topic === "") return "a topic cannot be empty";
  if (topic.includes("\u0000")) return "a topic cannot contain the NUL character";
  if (Buffer.byteLength(topic, "utf8") > MAX_TOPIC_BYTES) return `a topic is at most ${MAX_TOPIC_BYTES} bytes of UTF-8`;
  return null;
}
