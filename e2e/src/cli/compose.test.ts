/**
 * docker-compose.yml must not rot although no Docker engine runs here: (a) `docker-compose
 * config -q` validates it; (b) each service's command and environment are run as local
 * processes (the built `cdktr` bin; service host names -> 127.0.0.1, ports -> free ports,
 * volumes -> a temp dir) and the stack runs a workflow end to end.
 */
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { parse } from "yaml";
import {
  cleanup,
  cliBin,
  freePorts,
  makeTempDir,
  runCli,
  spawnService,
  waitFor,
  type ServiceHandle,
} from "@cdktr/test-utils";
import { assertRunOutput, REPO, lines } from "./helpers.js";

interface ComposeService {
  build?: unknown;
  image?: string;
  command?: string[];
  container_name?: string;
  environment?: Record<string, string | number>;
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition?: string }>;
  healthcheck?: { test?: string[] };
  restart?: string;
}
interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

const COMPOSE_PATH = join(REPO, "docker-compose.yml");
const compose = parse(readFileSync(COMPOSE_PATH, "utf8")) as ComposeFile;

afterEach(cleanup);

function hasCommand(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

test("docker-compose config -q accepts docker-compose.yml", (t) => {
  if (!hasCommand("docker-compose")) {
    if (process.env.CI) assert.fail("docker-compose is not installed but CI is set: .ci/run must install it");
    t.skip("docker-compose not installed (apt-get install docker-compose); CI runs this check");
    return;
  }
  const r = spawnSync("docker-compose", ["-f", COMPOSE_PATH, "config", "-q"], { cwd: REPO, encoding: "utf8" });
  assert.equal(r.status, 0, `docker-compose config -q failed:\n${r.stderr}`);
});

test("compose services: cdktr start <app>, healthchecks, depends_on, scalable agent", () => {
  const s = compose.services;
  assert.deepEqual(Object.keys(s).sort(), ["agent", "listeners", "principal", "scheduler"]);
  for (const [name, svc] of Object.entries(s)) {
    assert.deepEqual(svc.command, ["start", name], `${name}: command`);
    assert.deepEqual(svc.healthcheck?.test, ["CMD", "cdktr", "ping"], `${name}: healthcheck`);
    assert.ok(svc.restart !== undefined, `${name}: restart policy`);
    if (name !== "principal") {
      assert.equal(svc.depends_on?.principal?.condition, "service_healthy", `${name}: waits for a healthy principal`);
      assert.equal(svc.environment?.CDKTR_PRINCIPAL_HOST, "principal", `${name}: reaches the principal by name`);
    }
  }
  assert.equal(s.principal?.environment?.CDKTR_PRINCIPAL_HOST, "0.0.0.0");
  assert.equal(s.agent?.container_name, undefined, "agent: no container_name (scalable)");
  assert.equal(s.agent?.ports, undefined, "agent: no fixed host ports (scalable)");
  const dockerfile = readFileSync(join(REPO, "Dockerfile"), "utf8");
  assert.match(dockerfile, /^FROM node:20-bookworm-slim AS build$/m);
  assert.match(dockerfile, /^ENTRYPOINT \["cdktr"\]$/m);
  assert.match(dockerfile, /^USER node$/m);
  assert.match(dockerfile, /npm prune --omit=dev/);
});

test("the compose services run a workflow end to end as local processes", async () => {
  const tmp = makeTempDir("cdktr-compose-");
  const [api, logs, publish, webhook] = await freePorts(4);
  const portEnv = {
    CDKTR_PRINCIPAL_PORT: String(api),
    CDKTR_LOGS_LISTENING_PORT: String(logs),
    CDKTR_LOGS_PUBLISHING_PORT: String(publish),
  };
  const serviceNames = new Set(Object.keys(compose.services));

  /** The service's environment with container paths, host names and ports mapped to local ones. */
  const localEnv = (name: string, replica = 0): Record<string, string> => {
    const svc = compose.services[name];
    assert.ok(svc !== undefined);
    const mounts: [string, string][] = [];
    for (const v of svc.volumes ?? []) {
      const [source = "", target = ""] = v.split(":");
      let local: string;
      if (source.startsWith(".") || isAbsolute(source)) {
        local = resolve(REPO, source);
        if (target.endsWith(".yml")) {
          // A listeners config: its webhook binds a free port on loopback here.
          const text = readFileSync(local, "utf8")
            .replace(/^(\s*)host: 0\.0\.0\.0$/m, "$1host: 127.0.0.1")
            .replace(/^(\s*)port: 8080$/m, `$1port: ${webhook}`);
          local = join(tmp, `${name}-${target.split("/").pop() ?? "config.yml"}`);
          writeFileSync(local, text);
        }
      } else {
        local = join(tmp, "volumes", source);
        mkdirSync(local, { recursive: true });
      }
      mounts.push([target, local]);
    }
    mounts.sort((a, b) => b[0].length - a[0].length);
    const home = join(tmp, `home-${name}-${replica}`);
    mkdirSync(home, { recursive: true });
    const env: Record<string, string> = { HOME: home, ...portEnv };
    for (const [k, raw] of Object.entries(svc.environment ?? {})) {
      let v = String(raw);
      if (k === "CDKTR_PRINCIPAL_HOST" && (serviceNames.has(v) || v === "0.0.0.0")) v = "127.0.0.1";
      for (const [target, local] of mounts) {
        if (v === target || v.startsWith(`${target}/`)) {
          v = local + v.slice(target.length);
          break;
        }
      }
      env[k] = v;
    }
    return env;
  };

  const start = (name: string, replica = 0): Promise<ServiceHandle> => {
    const svc = compose.services[name];
    assert.ok(svc?.command !== undefined);
    return spawnService({
      script: cliBin(),
      args: svc.command,
      env: localEnv(name, replica),
      cwd: tmp,
      name: `${name}#${replica}`,
      readyTimeoutMs: 30_000,
    });
  };

  // The principal first (everything else depends on it being healthy).
  const principal = await start("principal");
  const health = compose.services.principal?.healthcheck?.test?.slice(1) ?? [];
  assert.equal(health[0], "cdktr");
  const ping = await runCli(health.slice(1), { env: localEnv("agent") });
  assert.equal(ping.code, 0, `healthcheck ${health.join(" ")}: ${ping.stderr}`);

  // Then the others, with two agent replicas (as `--scale agent=2`).
  const others = await Promise.all([start("agent", 0), start("agent", 1), start("scheduler"), start("listeners")]);
  const clientEnv = localEnv("agent");
  const agents = JSON.parse((await runCli(["agents", "--json"], { env: clientEnv })).stdout) as { status: string }[];
  assert.equal(agents.filter((a) => a.status === "ACTIVE").length, 2, "both agent replicas registered");

  const run = await runCli(["run", "hello", "--wait"], { env: clientEnv });
  assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
  const runId = lines(run.stdout)[0] ?? "";
  await assertRunOutput(runId, clientEnv);

  // The webhook listener triggers runs through the same API; the run completes on an agent.
  const res = await fetch(`http://127.0.0.1:${webhook}/trigger/hello`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  });
  assert.equal(res.status, 202, await res.clone().text());
  const hook = (await res.json()) as { runId: string };
  const hookRun = await waitFor(
    async () => {
      const r = await runCli(["runs", "show", hook.runId, "--json"], { env: clientEnv });
      const body = JSON.parse(r.stdout) as { run: { status: string; source: string } };
      return body.run.status === "COMPLETED" ? body.run : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 300, what: "the webhook's run to complete" },
  );
  assert.notEqual(hookRun.source, "cli");

  for (const h of [...others, principal]) {
    const r = await h.stop("SIGTERM", 40_000);
    assert.equal(r.code, 0, `${h.name} exits 0 on SIGTERM:\n${h.lines.slice(-10).join("\n")}`);
  }
});
