/**
 * The docs cannot drift from the code: docs/operations.md lists every setting each app's config
 * schema reads (with its real default), docs/cli.md every command and option of `cdktr --help`,
 * and `cdktr init`'s .env only settings that exist.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { z } from "zod";
import { bufferIo, runCli, SETTINGS } from "../index.js";
import { REPO } from "./helpers.js";

const operations = readFileSync(join(REPO, "docs", "operations.md"), "utf8");
const cliDoc = readFileSync(join(REPO, "docs", "cli.md"), "utf8");

/** The text of the `## <title>` section of a markdown page. */
function section(doc: string, title: string): string {
  const start = doc.indexOf(`\n## ${title}\n`);
  assert.notEqual(start, -1, `section "## ${title}" exists`);
  const end = doc.indexOf("\n## ", start + 1);
  return doc.slice(start, end === -1 ? undefined : end);
}

/** The table row of a setting: `| \`NAME\` | default | meaning |`. */
function row(text: string, name: string): string[] | undefined {
  for (const line of text.split("\n")) {
    const cells = line.split("|").map((c) => c.trim());
    if (cells[1] === `\`${name}\``) return cells.slice(1, -1);
  }
  return undefined;
}

async function schemas(): Promise<[string, z.ZodObject][]> {
  const [principal, agent, scheduler, listeners, dashboard] = await Promise.all([
    import("@cdktr/principal"),
    import("@cdktr/agent"),
    import("@cdktr/scheduler"),
    import("@cdktr/listeners"),
    import("@cdktr/dashboard"),
  ]);
  return [
    ["Principal", principal.PrincipalEnvSchema],
    ["Agent", agent.AgentEnvSchema],
    ["Scheduler", scheduler.SchedulerEnvSchema],
    ["Listeners", listeners.ListenersEnvSchema],
    ["Dashboard", dashboard.DashboardEnvSchema],
  ];
}

test("docs/operations.md lists every CDKTR_* setting of every app with its default", async () => {
  for (const [app, schema] of await schemas()) {
    const text = section(operations, app);
    const defaults = schema.parse({});
    const keys = Object.keys(schema.shape);
    assert.ok(keys.length > 0, `${app}: schema has keys`);
    for (const key of keys) {
      const cells = row(text, key);
      assert.ok(cells !== undefined, `${app}: docs/operations.md has a row for ${key}`);
      const documented = cells[1] ?? "";
      const actual = defaults[key];
      if (actual === undefined) assert.match(documented, /^unset/, `${app}: ${key} has no default`);
      else
        assert.ok(
          documented.includes(`\`${shown(actual)}\``),
          `${app}: ${key} default is \`${shown(actual)}\`, docs say ${documented}`,
        );
    }
    // and nothing documented for the app that it does not read
    for (const line of text.split("\n")) {
      const m = /^\| `(CDKTR_[A-Z0-9_]+)` \|/.exec(line);
      if (m?.[1] !== undefined)
        assert.ok(keys.includes(m[1]), `${app}: docs list ${m[1]}, which the app does not read`);
    }
  }
});

test("cdktr init's .env names every setting of every app, with its real default", async () => {
  const all = new Map<string, unknown>();
  for (const [, schema] of await schemas()) {
    const defaults = schema.parse({});
    for (const key of Object.keys(schema.shape)) all.set(key, defaults[key]);
  }
  for (const group of SETTINGS) {
    for (const s of group.settings) {
      assert.ok(all.has(s.name), `${s.name} is read by some app`);
      const actual = all.get(s.name);
      assert.equal(s.default, actual === undefined ? "" : shown(actual), `${s.name} default`);
    }
  }
  const listed = new Set(SETTINGS.flatMap((g) => g.settings.map((s) => s.name)));
  for (const key of all.keys()) assert.ok(listed.has(key), `cdktr init's .env lists ${key}`);
});

async function help(args: string[]): Promise<string> {
  const io = bufferIo();
  const code = await runCli([...args, "--help"], io);
  assert.equal(code, 0, `${args.join(" ")} --help: ${io.err()}`);
  return io.out();
}

function commandsOf(helpText: string): string[] {
  const block = helpText.split("\nCommands:\n")[1]?.split("\n\n")[0] ?? "";
  return block
    .split("\n")
    .map((l) => /^\s{2}([a-z][\w-]*)/.exec(l)?.[1])
    .filter((x): x is string => x !== undefined);
}

test("docs/cli.md describes every command and option of `cdktr --help`", async () => {
  const top = commandsOf(await help([]));
  assert.ok(top.length >= 12, `commands found: ${top.join(", ")}`);
  const paths: string[][] = [];
  for (const name of top) {
    paths.push([name]);
    if (name === "help") continue;
    for (const subName of commandsOf(await help([name]))) if (subName !== "help") paths.push([name, subName]);
  }
  for (const path of paths) {
    const title = `\`cdktr ${path.join(" ")}\``;
    const text = section(cliDoc, title);
    if (path[0] === "help") continue;
    const h = await help(path);
    const options = [...(h.split("\nOptions:\n")[1] ?? "").matchAll(/--[a-z][a-z-]*/g)]
      .map((m) => m[0])
      .filter((o) => o !== "--help");
    for (const opt of new Set(options)) assert.ok(text.includes(opt), `docs/cli.md section ${title} mentions ${opt}`);
  }
});

/** A default value as the docs print it. */
function shown(v: unknown): string {
  return typeof v === "string" || typeof v === "number" || typeof v === "boolean" ? String(v) : JSON.stringify(v);
}
