/**
 * Our real built processes (`@cdktr/principal`, `@cdktr/agent`, `@cdktr/scheduler`,
 * `@cdktr/dashboard`) for the
 * benchmarks, started through the test fixture (`@cdktr/test-utils`): each with temp HOME, data
 * dir, db and OS-assigned ports, configured through CDKTR_* env vars; plus the figures a
 * benchmark reads (spawn and ready times, memory).
 */
import type { ClientKey, PrincipalClient } from "@cdktr/protocol";
import {
  appMain,
  preparePrincipal,
  startAgent as startFixtureAgent,
  startDashboard as startFixtureDashboard,
  startScheduler as startFixtureScheduler,
  type PrincipalFixture,
} from "@cdktr/test-utils";
import { type LogRecord, type Proc, withMemory } from "./proc.js";

/** The apps a scenario can need. */
export type AppName = "principal" | "agent" | "scheduler" | "dashboard";

/** Why the given apps cannot run yet (not built, or not resolvable), or null. */
export function missingApps(...apps: AppName[]): string | null {
  const missing = apps.filter((a) => {
    try {
      appMain(a);
      return false;
    } catch {
      return true;
    }
  });
  return missing.length === 0 ? null : `apps/${missing.join(", apps/")} dist/main.js not built`;
}

/** Lines kept per process for error messages (services log a line per run). */
const KEEP_LINES = 200;

/** A running principal with a client connected to it. */
export interface PrincipalHandle {
  fixture: PrincipalFixture;
  /** The key of the bench's own clients (`local-operator`); null with `auth: "off"`. */
  key: ClientKey | null;
  proc: Proc;
  home: string;
  workflowDir: string;
  dbPath: string;
  apiPort: number;
  logsPort: number;
  publishPort: number;
  client: PrincipalClient;
  stop(): Promise<void>;
  /**
   * Start this principal again after {@link stop}: same home (so the same keys), ports and
   * database; `nodeFlags` for this start only (e.g. to profile only the restart).
   */
  restart(opts?: { nodeFlags?: string[] }): Promise<PrincipalHandle>;
}

/** Options of {@link startPrincipal}. */
export interface PrincipalOptions {
  workflowDir: string;
  /** Reuse a db (e.g. for restart measurements). @default a fresh file in a temp dir */
  dbPath?: string;
  env?: Record<string, string>;
  nodeFlags?: string[];
  readyTimeoutMs?: number;
  onLine?: (line: string, json: LogRecord | undefined, at: number) => void;
  /** Client request timeout. @default 30000 */
  clientTimeoutMs?: number;
  /**
   * `"on"`: CURVE and keys on every socket, as users run it (the principal makes its keys; the
   * bench's clients and our other processes use them); `"off"`: `CDKTR_AUTH=off`, plaintext, to
   * measure the cost of security in the same run.
   * @default "on"
   */
  auth?: "on" | "off";
}

/** Start the principal on `workflowDir` and connect a PrincipalClient to it. */
export async function startPrincipal(opts: PrincipalOptions): Promise<PrincipalHandle> {
  const fixture = await preparePrincipal({
    workflowDir: opts.workflowDir,
    workflows: {},
    ...(opts.dbPath === undefined ? {} : { dbPath: opts.dbPath }),
    env: { CDKTR_WORKFLOW_DIR_REFRESH_FREQUENCY_S: "3600", ...opts.env },
    clientTimeoutMs: opts.clientTimeoutMs ?? 30_000,
    auth: opts.auth ?? "on",
    service: {
      keepLines: KEEP_LINES,
      readyTimeoutMs: opts.readyTimeoutMs ?? 120_000,
      ...(opts.nodeFlags === undefined ? {} : { nodeFlags: opts.nodeFlags }),
      ...(opts.onLine === undefined ? {} : { onLine: opts.onLine }),
    },
  });
  return handleOf(fixture, withMemory(await fixture.start()));
}

/** The bench's view of a started fixture principal. */
function handleOf(fixture: PrincipalFixture, proc: Proc): PrincipalHandle {
  const { api, logs, publish } = fixture.ports;
  return {
    fixture,
    key: fixture.key(),
    proc,
    home: fixture.home,
    workflowDir: fixture.workflowDir,
    dbPath: fixture.dbPath,
    apiPort: api,
    logsPort: logs,
    publishPort: publish,
    client: fixture.client,
    async stop() {
      fixture.closeClients();
      await proc.stop("SIGTERM", 15_000);
    },
    async restart(again = {}) {
      return handleOf(fixture, withMemory(await fixture.start(again)));
    },
  };
}

/** Start an agent against `principal`. */
export async function startAgent(
  principal: PrincipalHandle,
  opts: { concurrency: number; id?: string; env?: Record<string, string>; nodeFlags?: string[] },
): Promise<Proc> {
  const handle = await startFixtureAgent(principal.fixture, {
    env: {
      CDKTR_AGENT_ID: opts.id ?? "bench-agent",
      CDKTR_AGENT_MAX_CONCURRENCY: String(opts.concurrency),
      // A/B of where tasks are forked (bench/README.md, "A spawner process for the agent").
      ...(process.env.CDKTR_BENCH_AGENT_SPAWNER === undefined
        ? {}
        : { CDKTR_AGENT_SPAWNER: process.env.CDKTR_BENCH_AGENT_SPAWNER }),
      ...opts.env,
    },
    service: {
      keepLines: KEEP_LINES,
      readyTimeoutMs: 60_000,
      ...(opts.nodeFlags === undefined ? {} : { nodeFlags: opts.nodeFlags }),
    },
  });
  return withMemory(handle);
}

/** Start a scheduler against `principal`. */
export async function startScheduler(
  principal: PrincipalHandle,
  opts: {
    env?: Record<string, string>;
    nodeFlags?: string[];
    onLine?: (line: string, json: LogRecord | undefined, at: number) => void;
  },
): Promise<Proc> {
  const handle = await startFixtureScheduler(principal.fixture, {
    env: { CDKTR_SCHEDULER_REFRESH_S: "3600", ...opts.env },
    service: {
      keepLines: KEEP_LINES,
      readyTimeoutMs: 60_000,
      ...(opts.nodeFlags === undefined ? {} : { nodeFlags: opts.nodeFlags }),
      ...(opts.onLine === undefined ? {} : { onLine: opts.onLine }),
    },
  });
  return withMemory(handle);
}

/** Start a dashboard against `principal` (free port; `tokensFile` its tokens); resolves with it and its URL. */
export async function startDashboard(
  principal: PrincipalHandle,
  opts: { tokensFile: string; env?: Record<string, string> },
): Promise<{ proc: Proc; url: string }> {
  const handle = await startFixtureDashboard(principal.fixture, {
    env: { CDKTR_DASHBOARD_TOKENS_FILE: opts.tokensFile, ...opts.env },
    service: { keepLines: KEEP_LINES, readyTimeoutMs: 60_000 },
  });
  return { proc: withMemory(handle.service), url: handle.url };
}
