/**
 * The contract of a principal fixture: its options, its ports, the options of one start and of a
 * key it makes, and the error it throws when it is used the wrong way.
 */
import { CodedError, type ClientKey } from "@cdktr/protocol";
import type { ServiceTuning } from "./apps.js";

/** The principal's three ports. */
export interface PrincipalPorts {
  api: number;
  logs: number;
  publish: number;
}

/** Options of {@link preparePrincipal} and {@link startPrincipal}. */
export interface PrincipalOptions {
  /**
   * Workflow files written before the start: file name (may contain `/`) -> YAML.
   * @default { "hello.yml": helloWorkflowYaml() }, or none with `copyWorkflowsFrom`
   */
  workflows?: Readonly<Record<string, string>>;
  /** Copy this directory (e.g. examples/workflows) into the workflow directory first. */
  copyWorkflowsFrom?: string;
  /** Use this existing directory as the workflow directory. @default `<home>/workflows` */
  workflowDir?: string;
  /** Database file (reuse one to measure a restart). @default `<home>/data/cdktr.db` */
  dbPath?: string;
  /** Settings of the process (`CDKTR_*`), over the fixture's. */
  env?: Readonly<Record<string, string>>;
  /**
   * `"os"`: port 0, the OS picks and the `ready` line tells; `"reserved"`: free ports picked now,
   * for tests that point agents, schedulers or listeners at the principal before it runs.
   * @default "os"
   */
  ports?: "os" | "reserved";
  /** Request timeout of {@link PrincipalFixture.client}. @default 5000 */
  clientTimeoutMs?: number;
  /** Process options (node flags, line listener, ready timeout, lines kept). */
  service?: ServiceTuning;
  /**
   * `"on"`: the principal makes its keys in `<home>/.cdktr/keys` on first start (with `ports:
   * "reserved"` the fixture writes them up front instead, so that processes started before the
   * principal find theirs) and the fixture's clients use `local-operator`; `"off"`: `CDKTR_AUTH=off`
   * for the principal and every process and client of the fixture (plaintext).
   * @default "on"
   */
  auth?: "on" | "off";
}

/** Options of {@link PrincipalFixture.createKey}. */
export interface CreateKeyOptions {
  /** Idempotency scope. @default the name */
  scope?: string;
  /** Workflows the key may trigger. @default any */
  workflows?: string[];
  /** Enrol it with the principal (which must be running). @default true */
  enroll?: boolean;
}

/** A client key made by {@link PrincipalFixture.createKey}: its key file and the key itself. */
export interface CreatedKey {
  /** The key file (0600), for `CDKTR_KEY_FILE`. */
  path: string;
  key: ClientKey;
}

/** Options of one {@link PrincipalFixture.start}. */
export interface PrincipalStartOptions {
  /** Settings for this start only (e.g. an invalid value), over the fixture's. */
  env?: Readonly<Record<string, string>>;
  /** Return at once instead of waiting for `ready` (a start expected to fail). @default true */
  waitReady?: boolean;
  /** Node flags for this start only (e.g. `--cpu-prof`, which NODE_OPTIONS refuses), over the fixture's. */
  nodeFlags?: readonly string[];
}

/** The principal cannot be used that way (not started yet, started twice). */
export class PrincipalFixtureError extends CodedError<"PORTS_UNKNOWN" | "ALREADY_RUNNING" | "NO_KEY"> {}
