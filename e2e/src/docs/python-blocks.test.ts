/**
 * Every Python block of the documentation runs with /usr/bin/python3 (and Debian's python3-zmq)
 * against a real principal and agent: the pyzmq client of docs/protocol.md section 7 (and, with
 * the principal down, it fails fast with one clear line instead of hanging), and the examples of
 * clients/python/README.md. Fragments, if any, are compiled.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  cleanup,
  freePort,
  makeTempDir,
  type PrincipalFixture,
  removeTempDirs,
  startAgent,
  startPrincipal,
} from "@cdktr/test-utils";
import { allBlocks, type CodeBlock, isProgram, REPO_ROOT, where } from "./markdown.js";
import { basePath, type Finished, runToEnd } from "./run-process.js";

const PYTHON = "/usr/bin/python3";
const CLIENT_DIR = join(REPO_ROOT, "clients", "python");
const blocks = allBlocks().filter((b) => b.lang === "python");

const ETL_DAILY = `name: Daily ETL
params:
  date: { type: string, required: false }
  file: { type: string, required: false }
tasks:
  extract:
    name: Extract
    config: !Subprocess { cmd: echo, args: [extract] }
`;

/** A skip message when Python or pyzmq is missing; with `CI` set that is a failure instead. */
function skipReason(): string | undefined {
  const r = spawnSync(PYTHON, ["-c", "import zmq"], { encoding: "utf8" });
  if (r.status === 0) return undefined;
  const msg = `${PYTHON} with python3-zmq is needed (${(r.error?.message ?? r.stderr).trim()})`;
  if (process.env.CI !== undefined && process.env.CI !== "") throw new Error(`${msg}; CI is set: it is required`);
  return msg;
}

/** Run a block's code with python3, the client package on PYTHONPATH, and `env`. */
async function python(block: CodeBlock, env: Record<string, string>, input?: string): Promise<Finished> {
  const dir = makeTempDir("cdktr-doc-py-");
  const file = join(dir, "example.py");
  writeFileSync(file, block.code);
  return runToEnd(PYTHON, [file], {
    env: { PATH: basePath(), HOME: dir, PYTHONPATH: CLIENT_DIR, PYTHONDONTWRITEBYTECODE: "1", ...env },
    cwd: dir,
    timeoutMs: 90_000,
    ...(input === undefined ? {} : { input }),
  });
}

function ok(r: Finished): string {
  assert.equal(r.timedOut, false, `still running after 90 s:\n${r.stdout}${r.stderr}`);
  assert.equal(r.code, 0, `exit ${String(r.code)}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

interface Scenario {
  file: string;
  contains: string;
  title: string;
  run(block: CodeBlock, principal: PrincipalFixture): Promise<void>;
}

const SCENARIOS: Scenario[] = [
  {
    file: "docs/protocol.md",
    contains: "def call(verb, body",
    title: "docs/protocol.md section 7: triggers etl.daily and follows its events to COMPLETED",
    async run(block, principal) {
      const out = ok(await python(block, principal.clientEnv))
        .trim()
        .split("\n");
      assert.match(out[0] ?? "", /^key: \{'name': 'local-operator', 'role': 'operator'/, "first the key hello proved");
      assert.match(out[1] ?? "", /'principalId'/, "then the ping reply");
      const runId = /^run (\S+) COMPLETED$/.exec(out.at(-1) ?? "")?.[1];
      assert.ok(runId !== undefined, `last line: run <id> COMPLETED; got\n${out.join("\n")}`);
      // subscribed before triggering: the run's own events, up to the final one, arrived
      assert.ok(out.includes(`runs|etl.daily|${runId}| COMPLETED`), `the COMPLETED event:\n${out.join("\n")}`);
      const { run } = await principal.client.getRun(runId);
      assert.equal(run.source, "python");
    },
  },
  {
    file: "clients/python/README.md",
    contains: "with Principal() as p:",
    title: "clients/python/README.md: Principal triggers etl.daily with a date and waits for COMPLETED",
    async run(block, principal) {
      const [first, status] = ok(await python(block, principal.clientEnv))
        .trim()
        .split("\n");
      const [runId, duplicate] = (first ?? "").split(" ");
      assert.equal(duplicate, "False");
      assert.equal(status, "COMPLETED");
      const { run } = await principal.client.getRun(runId ?? "");
      assert.deepEqual(run.params, { date: "2026-11-28" });
      assert.equal(run.idempotencyKey, "2026-11-28");
    },
  },
  {
    file: "clients/python/README.md",
    contains: "principal.run_workflows([",
    title:
      "clients/python/README.md: run_workflows answers each trigger in order; the unknown workflow alone is refused",
    async run(block, principal) {
      const lines = ok(await python(block, principal.clientEnv))
        .trim()
        .split("\n");
      assert.equal(lines.length, 3, lines.join("\n"));
      const [first, second, third] = lines;
      assert.match(third ?? "", /^refused: WORKFLOW_NOT_FOUND: .*etl\.nightly/);
      assert.notEqual(first, second);
      for (const [runId, date] of [
        [first, "2026-11-26"],
        [second, "2026-11-27"],
      ] as const) {
        const { run } = await principal.client.getRun(runId ?? "");
        assert.deepEqual([run.params, run.source, run.idempotencyKey], [{ date }, "backfill", `etl-${date}`]);
      }
    },
  },
  {
    file: "clients/python/README.md",
    contains: "with Principal() as p, Subscriber() as events:",
    title: "clients/python/README.md: a Subscriber follows the run it triggered to COMPLETED through its events",
    async run(block, principal) {
      const lines = ok(await python(block, principal.clientEnv))
        .trim()
        .split("\n");
      const [runId, status] = (lines.at(-1) ?? "").split(" ");
      assert.equal(status, "COMPLETED", lines.join("\n"));
      // subscribed before triggering: the final event itself arrived (printed before the last line)
      assert.equal(lines.at(-2), "COMPLETED", `the COMPLETED event:\n${lines.join("\n")}`);
      const { run } = await principal.client.getRun(runId ?? "");
      assert.equal(run.triggeredBy, "local-operator");
    },
  },
  {
    file: "clients/python/README.md",
    contains: "class NewFiles(EventListener)",
    title: "clients/python/README.md: the EventListener starts one run per file named on stdin, once per file",
    async run(block, principal) {
      const lines = ok(await python(block, principal.clientEnv, "in/a.csv\nin/b.csv\nin/a.csv\n"))
        .trim()
        .split("\n");
      const ids = lines.map((l) => l.split(" ")[1] ?? "");
      assert.equal(lines.length, 3, lines.join("\n"));
      assert.deepEqual(
        lines.map((l) => l.split(" ")[0]),
        ["in/a.csv", "in/b.csv", "in/a.csv"],
      );
      assert.equal(ids[2], ids[0], "the repeated file maps to its first run");
      assert.notEqual(ids[1], ids[0]);
      const { run } = await principal.client.getRun(ids[1] ?? "");
      assert.deepEqual(run.params, { file: "in/b.csv" });
      assert.equal(run.source, "NewFiles");
    },
  },
];

const matches = (s: Scenario, b: CodeBlock): boolean => b.file === s.file && b.code.includes(s.contains);

describe("Python blocks", { skip: skipReason() }, () => {
  let principal: PrincipalFixture;
  before(async () => {
    // Authentication on: every block runs in the principal's HOME (clientEnv) and finds its
    // local-operator key there, as on the machine where the principal runs.
    principal = await startPrincipal({ workflows: { "etl/daily.yml": ETL_DAILY } });
    await startAgent(principal);
  });
  after(async () => {
    await cleanup();
    removeTempDirs();
  });

  it("fragments compile", () => {
    for (const b of blocks.filter((x) => !isProgram(x))) {
      const r = spawnSync(PYTHON, ["-c", "import sys; compile(sys.stdin.read(), 'block', 'exec')"], {
        input: b.code,
        encoding: "utf8",
      });
      assert.equal(r.status, 0, `${where(b)}: ${r.stderr}`);
    }
  });

  it("every complete program is run by exactly one scenario below, and every scenario finds its block", () => {
    assert.ok(blocks.length >= 3, `found ${blocks.length} Python blocks`);
    for (const b of blocks.filter(isProgram)) {
      const n = SCENARIOS.filter((s) => matches(s, b)).length;
      assert.equal(n, 1, `${where(b)} is a complete program run by ${n} scenarios: add one, or mark it a fragment`);
    }
    for (const s of SCENARIOS) {
      const found = blocks.filter((b) => matches(s, b) && isProgram(b));
      assert.equal(found.length, 1, `${s.title}: ${found.length} programs in ${s.file} contain "${s.contains}"`);
    }
  });

  for (const s of SCENARIOS) {
    it(s.title, { timeout: 120_000 }, async () => {
      const block = blocks.find((b) => matches(s, b));
      assert.ok(block !== undefined, `${s.file} has the block`);
      await s.run(block, principal);
    });
  }

  describe("with the principal down", () => {
    it("docs/protocol.md section 7 fails within its 5 s timeout with one line naming the address", async () => {
      const block = blocks.find((b) => matches(SCENARIOS[0] as Scenario, b));
      assert.ok(block !== undefined);
      const port = await freePort();
      // with the local-operator key of the principal's HOME: its first send (hello) finds no peer
      const r = await python(block, {
        HOME: principal.home,
        CDKTR_PRINCIPAL_PORT: String(port),
        CDKTR_LOGS_PUBLISHING_PORT: "1",
      });
      assert.equal(r.timedOut, false, "it does not hang");
      assert.equal(r.code, 1);
      assert.ok(r.ms < 15_000, `took ${r.ms} ms`);
      assert.equal(
        r.stderr,
        `error: no principal at tcp://127.0.0.1:${port} (or it does not know this key): start one with \`cdktr start principal\`\n`,
      );
      assert.equal(r.stdout, "");
    });
  });
});
