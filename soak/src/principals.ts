/**
 * The soak's principals: one on a SQLite file (the default), or one or more on a PostgreSQL
 * schema of their own (`--store postgres --principals N`), sharing the workflow directory, the key
 * pair and the database, with one leader among them. Clients get every API endpoint
 * (`CDKTR_PRINCIPAL_ENDPOINTS`) and follow the leader.
 */
import pg from "pg";
import { PrincipalClient, errorMessage, type ClientKey } from "@cdktr/protocol";
import { preparePrincipal, type PrincipalFixture, type ServiceTuning } from "@cdktr/test-utils";
import { SoakError } from "./errors.js";
import { sleep } from "./supervised.js";

/** The database the soak's PostgreSQL schema lives in. */
export const SOAK_DATABASE_URL = process.env.CDKTR_SOAK_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** Options of {@link PrincipalSet.prepare}. */
export interface PrincipalSetOptions {
  store: "sqlite" | "postgres";
  /** How many principals (more than one needs PostgreSQL). */
  count: number;
  /** Settings of every principal. */
  env: Readonly<Record<string, string>>;
  /** Process options of principal `i`. */
  tuning: (name: string) => ServiceTuning;
}

/** The soak's principals; the first one's fixture owns the home, keys and workflows. */
export class PrincipalSet {
  /** Clients made by {@link connect} for several principals (closed by {@link dispose}). */
  private readonly clients: PrincipalClient[] = [];

  private constructor(
    /** The fixtures; `[0]` writes the workflows and holds the keys. */
    readonly fixtures: readonly PrincipalFixture[],
    private readonly schema: string | null,
  ) {}

  /** Make the fixtures (reserved ports) and, for PostgreSQL, a fresh schema. */
  static async prepare(options: PrincipalSetOptions): Promise<PrincipalSet> {
    if (options.count < 1 || (options.count > 1 && options.store !== "postgres"))
      throw new SoakError("BAD_OPTION", "several principals need --store postgres (they share one database)");
    let schema: string | null = null;
    let env = { ...options.env };
    if (options.store === "postgres") {
      schema = `cdktr_soak_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
      await adminQuery(`CREATE SCHEMA ${schema}`);
      env = {
        ...env,
        CDKTR_DATABASE_URL: `${SOAK_DATABASE_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}`,
      };
    }
    const first = await preparePrincipal({
      ports: "reserved",
      workflows: {},
      clientTimeoutMs: 5000,
      env,
      service: options.tuning("principal"),
    });
    const fixtures = [first];
    for (let i = 2; i <= options.count; i++) {
      fixtures.push(
        await preparePrincipal({
          ports: "reserved",
          workflows: {},
          workflowDir: first.workflowDir,
          clientTimeoutMs: 5000,
          // One key pair for all: the first fixture wrote it (reserved ports) in its keys directory.
          env: { ...env, CDKTR_KEYS_DIR: first.keysDir },
          service: options.tuning(`principal-${i}`),
        }),
      );
    }
    return new PrincipalSet(fixtures, schema);
  }

  /** The first fixture (home, keys, workflows, webhook secret files). */
  get first(): PrincipalFixture {
    return this.fixtures[0] as PrincipalFixture;
  }

  /** Settings that point a client process at every principal (added to the first one's clientEnv). */
  get clientEnv(): Record<string, string> {
    if (this.fixtures.length === 1) return {};
    return { CDKTR_PRINCIPAL_ENDPOINTS: this.apiEndpoints.map((e) => e.replace("tcp://", "")).join(",") };
  }

  /** `tcp://` API endpoints of every principal. */
  get apiEndpoints(): string[] {
    return this.fixtures.map((f) => f.endpoints.api);
  }

  /** A client of whichever principal leads (closed by the caller), with `key` (default `local-operator`). */
  connect(options: { timeoutMs: number; key?: ClientKey | null }): PrincipalClient {
    const key = options.key !== undefined ? options.key : this.first.key();
    if (this.fixtures.length === 1) return this.first.connect({ timeoutMs: options.timeoutMs, key });
    const c = new PrincipalClient({ endpoints: this.apiEndpoints, timeoutMs: options.timeoutMs, env: {}, key });
    this.clients.push(c);
    return c;
  }

  /**
   * Index of the principal whose `ping` says it leads, asking each directly (a lone principal on
   * SQLite always leads); null when none does.
   */
  async leader(timeoutMs = 500): Promise<number | null> {
    if (this.fixtures.length === 1) return 0;
    for (let i = 0; i < this.fixtures.length; i++) {
      const f = this.fixtures[i] as PrincipalFixture;
      if (f.service === null || f.service.child.exitCode !== null || f.service.child.signalCode !== null) continue;
      const c = new PrincipalClient({
        endpoint: f.endpoints.api,
        timeoutMs,
        env: {},
        key: this.first.key(),
        followLeader: false,
      });
      try {
        const reply = await c.ping({ retry: false });
        if (reply.role === undefined || reply.role === "leader") return i;
      } catch {
        // Down or busy: not the leader as far as we can tell.
      } finally {
        c.close();
      }
    }
    return null;
  }

  /** Wait until some principal other than `not` leads; resolves with its index, or null after `timeoutMs`. */
  async awaitLeader(timeoutMs: number, not: number | null = null): Promise<number | null> {
    const giveUpAt = Date.now() + timeoutMs;
    for (;;) {
      const i = await this.leader();
      if (i !== null && i !== not) return i;
      if (Date.now() > giveUpAt) return null;
      await sleep(50);
    }
  }

  /** Close the clients and drop the PostgreSQL schema (processes must be stopped first). */
  async dispose(): Promise<void> {
    for (const c of this.clients.splice(0)) c.close();
    if (this.schema !== null) await adminQuery(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`);
  }
}

async function adminQuery(sql: string): Promise<void> {
  const admin = new pg.Client({ connectionString: SOAK_DATABASE_URL });
  try {
    await admin.connect();
    await admin.query(sql);
  } catch (e) {
    throw new SoakError(
      "START_FAILED",
      `cannot prepare the soak's schema on PostgreSQL at ${SOAK_DATABASE_URL} (set CDKTR_SOAK_DATABASE_URL): ${errorMessage(e)}`,
      { cause: e },
    );
  } finally {
    await admin.end().catch(() => undefined);
  }
}
