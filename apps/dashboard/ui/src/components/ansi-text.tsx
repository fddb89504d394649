import type { CSSProperties, ReactNode } from "react";
import { type AnsiSpan, ansiPlainText, parseAnsi } from "../../../src/shared/ansi";
import { splitMatches } from "../../../src/shared/log-buffer";

const cache = new Map<string, AnsiSpan[]>();

/** Parsed spans of a line, memoised (bounded) since the log tail re-renders often. */
export function ansiSpans(text: string): AnsiSpan[] {
  let spans = cache.get(text);
  if (spans === undefined) {
    spans = parseAnsi(text);
    if (cache.size >= 5000) cache.clear();
    cache.set(text, spans);
  }
  return spans;
}

/** The text a search matches: the line as shown (escapes removed, controls made visible). */
export function ansiVisibleText(text: string): string {
  return ansiPlainText(parseAnsi(text));
}

function styleOf(span: AnsiSpan): CSSProperties | undefined {
  const s = span.style;
  if (s.fg === undefined && s.bg === undefined && !s.bold && !s.italic && !s.underline) return undefined;
  const css: CSSProperties = {};
  if (s.fg !== undefined) css.color = s.fg;
  if (s.bg !== undefined) css.backgroundColor = s.bg;
  if (s.bold) css.fontWeight = "bold";
  if (s.italic) css.fontStyle = "italic";
  if (s.underline) css.textDecoration = "underline";
  return css;
}

/** Renders a log line with its ANSI styles as React text (never as HTML), highlighting `search`. */
export function AnsiText({ text, search }: { text: string; search: string }) {
  const spans = ansiSpans(text);
  const out: ReactNode[] = [];
  spans.forEach((span, i) => {
    const parts = splitMatches(span.text, search);
    const content =
      parts.length === 1 && parts[0]?.match === false
        ? span.text
        : parts.map((p, j) => (p.match ? <mark key={j}>{p.text}</mark> : p.text));
    out.push(
      <span
        key={i}
        style={styleOf(span)}
        className={span.escaped === true ? "ctl" : undefined}
        title={span.escaped === true ? "control character" : undefined}
      >
        {content}
      </span>,
    );
  });
  return <>{out}</>;
}
