/**
 * docker-compose.yml must not rot although no Docker engine runs here: (a) `docker-compose
 * config -q` validates it; (b) each service's command and environment are run as local
 * processes (the built `cdktr` bin; service host names -> 127.0.0.1, ports -> free ports,
 * volumes -> a temp dir, also where a mounted config file names a path in one) and the stack
 * runs a workflow end to end, with the keys the principal makes in the shared keys volume, the
 * webhook's generated secret, and the README's command that gives the host's CLI a key.
 */
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { parse } from "yaml";
import { signWebhookRequest, webhookTriggerPath } from "@cdktr/events/webhook";
import { readKeyFile } from "@cdktr/protocol";
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

test("docker-compose config -q accepts the HA override (PostgreSQL, two principals) on top of docker-compose.yml", (t) => {
  if (!hasCommand("docker-compose")) {
    if (process.env.CI) assert.fail("docker-compose is not installed but CI is set: .ci/run must install it");
    t.skip("docker-compose not installed (apt-get install docker-compose); CI runs this check");
    return;
  }
  const r = spawnSync(
    "docker-compose",
    ["-f", COMPOSE_PATH, "-f", join(REPO, "deploy", "docker-compose.ha.yml"), "config"],
    { cwd: REPO, encoding: "utf8" },
  );
  assert.equal(r.status, 0, `docker-compose config failed:\n${r.stderr}`);
  const merged = parse(r.stdout) as ComposeFile;
  const s = merged.services;
  for (const name of ["principal", "principal-2"]) {
    assert.match(String(s[name]?.environment?.CDKTR_DATABASE_URL), /^postgres:\/\/cdktr@postgres:5432\/cdktr$/, name);
    assert.equal(s[name]?.environment?.CDKTR_ADVERTISE_HOST, name, `${name} advertises its service name`);
  }
  assert.ok(
    s["principal-2"]?.volumes?.some((v) => String(v).startsWith("cdktr-keys:/keys")),
    "one shared key pair",
  );
  assert.equal(s["principal-2"]?.depends_on?.principal?.condition, "service_healthy", "principal-2 waits for the keys");
  for (const name of ["agent", "scheduler", "listeners"])
    assert.equal(s[name]?.environment?.CDKTR_PRINCIPAL_ENDPOINTS, "principal:5561,principal-2:5561", name);
});

test("compose services: cdktr start <app>, healthchecks, depends_on, scalable agent", () => {
  const s = compose.services;
  assert.deepEqual(Object.keys(s).sort(), ["agent", "dashboard", "listeners", "principal", "scheduler"]);
  for (const [name, svc] of Object.entries(s)) {
    assert.deepEqual(svc.command, ["start", name], `${name}: command`);
    // Each process's healthcheck asks that process (its metrics port), never the principal.
    assert.deepEqual(
      svc.healthcheck?.test,
      ["CMD", "cdktr", "health", ...(name === "principal" ? ["--ready"] : [])],
      `${name}: healthcheck`,
    );
    assert.ok(svc.restart !== undefined, `${name}: restart policy`);
    if (name !== "principal") {
      assert.equal(svc.depends_on?.principal?.condition, "service_healthy", `${name}: waits for a healthy principal`);
      assert.equal(svc.environment?.CDKTR_PRINCIPAL_HOST, "principal", `${name}: reaches the principal by name`);
    }
  }
  assert.equal(s.principal?.environment?.CDKTR_PRINCIPAL_HOST, "0.0.0.0");
  // Keys: made by the principal in a named volume, mounted read-only by the others, each with its key.
  assert.equal(s.principal?.environment?.CDKTR_AUTH, undefined, "authentication stays on (required on 0.0.0.0)");
  assert.equal(s.principal?.environment?.CDKTR_KEYS_DIR, "/keys");
  assert.ok(s.principal?.volumes?.includes("cdktr-keys:/keys"), "principal: the keys volume, writable");
  assert.ok(compose.volumes !== undefined && "cdktr-keys" in compose.volumes, "cdktr-keys is a named volume");
  const keyOf: Record<string, string> = {
    agent: "local-agent",
    scheduler: "local-scheduler",
    listeners: "local-listeners",
    dashboard: "local-dashboard",
  };
  for (const [name, key] of Object.entries(keyOf)) {
    assert.ok(s[name]?.volumes?.includes("cdktr-keys:/keys:ro"), `${name}: the keys volume, read-only`);
    assert.equal(s[name]?.environment?.CDKTR_KEY_FILE, `/keys/${key}.json`, `${name}: its own key`);
  }
  // The dashboard binds 0.0.0.0 in its container (so every read needs a sign-in there) but is
  // published on the host's loopback only; its tokens live in its own volume.
  assert.equal(s.dashboard?.environment?.CDKTR_DASHBOARD_HOST, "0.0.0.0");
  // biome-ignore lint/suspicious/noTemplateCurlyInString: compose's own ${VAR:-default} syntax
  assert.deepEqual(s.dashboard?.ports, ["127.0.0.1:${CDKTR_HOST_DASHBOARD_PORT:-5564}:5564"]);
  assert.equal(s.dashboard?.environment?.CDKTR_DASHBOARD_TOKENS_FILE, "/state/dashboard-tokens.json");
  assert.ok(s.dashboard?.volumes?.includes("cdktr-dashboard:/state"), "dashboard: tokens on its own volume");
  assert.equal(s.agent?.container_name, undefined, "agent: no container_name (scalable)");
  assert.equal(s.agent?.ports, undefined, "agent: no fixed host ports (scalable)");
  const dockerfile = readFileSync(join(REPO, "Dockerfile"), "utf8");
  assert.doesNotMatch(dockerfile, /^# syntax=/m, "no BuildKit front-end to pull (offline builds)");
  assert.match(dockerfile, /^FROM node:26-bookworm-slim AS build$/m, "the Active LTS");
  assert.match(dockerfile, /^FROM node:26-bookworm-slim$/m);
  assert.match(dockerfile, /^ENTRYPOINT \["cdktr"\]$/m);
  assert.match(dockerfile, /^USER node$/m);
  assert.match(dockerfile, /npm prune --omit=dev/);
  assert.match(dockerfile, /^ENV CDKTR_METRICS_PORT=9464$/m, "every container serves /healthz on 9464");
  assert.match(dockerfile, /^HEALTHCHECK .* CMD \["cdktr", "health"\]$/m);
  assert.doesNotMatch(dockerfile, /keys create|principal\.json|local-operator/, "no key is made at build time");
  assert.match(dockerfile, /chown -R node:node [^\n]*\/keys/, "the keys volume is the node user's");
  assert.match(
    readFileSync(join(REPO, ".dockerignore"), "utf8"),
    /^\*\*\/\.cdktr$/m,
    "key directories stay out of the build context",
  );
});

test("the compose services run a workflow end to end as local processes", async () => {
  const tmp = makeTempDir("cdktr-compose-");
  const [api, logs, publish, webhook, dashboardPort] = await freePorts(5);
  // The image sets CDKTR_METRICS_PORT=9464 in every container; here each process gets its own.
  const metricsPorts = new Map<string, number>();
  const metricsPortOf = async (instance: string): Promise<number> => {
    const known = metricsPorts.get(instance);
    if (known !== undefined) return known;
    const [port = 0] = await freePorts(1);
    metricsPorts.set(instance, port);
    return port;
  };
  const portEnv = {
    CDKTR_PRINCIPAL_PORT: String(api),
    CDKTR_LOGS_LISTENING_PORT: String(logs),
    CDKTR_LOGS_PUBLISHING_PORT: String(publish),
  };
  const serviceNames = new Set(Object.keys(compose.services));

  /** Map a container path to the local directory of the mount it is in. */
  const mapPath = (mounts: readonly [string, string][], v: string): string => {
    for (const [target, local] of mounts) {
      if (v === target || v.startsWith(`${target}/`)) return local + v.slice(target.length);
    }
    return v;
  };

  /** The service's environment with container paths, host names and ports mapped to local ones. */
  const localEnv = async (name: string, replica = 0): Promise<Record<string, string>> => {
    const svc = compose.services[name];
    assert.ok(svc !== undefined);
    const mounts: [string, string][] = [];
    const configs: [string, string][] = [];
    for (const v of svc.volumes ?? []) {
      const [source = "", target = ""] = v.split(":");
      let local: string;
      if (source.startsWith(".") || isAbsolute(source)) {
        local = resolve(REPO, source);
        if (target.endsWith(".yml")) {
          configs.push([local, target]);
          local = join(tmp, `${name}-${target.split("/").pop() ?? "config.yml"}`);
        }
      } else {
        local = join(tmp, "volumes", source);
        mkdirSync(local, { recursive: true });
      }
      mounts.push([target, local]);
    }
    mounts.sort((a, b) => b[0].length - a[0].length);
    for (const [source, target] of configs) {
      // A listeners config: its webhook binds a free port on loopback here, and the paths it
      // names in the container's volumes are those volumes' local directories.
      const text = readFileSync(source, "utf8")
        .replace(/^(\s*)host: 0\.0\.0\.0$/m, "$1host: 127.0.0.1")
        .replace(/^(\s*)port: 8080$/m, `$1port: ${webhook}`)
        .replace(/^(\s*\w+: )(\/\S+)$/gm, (_all, field: string, path: string) => field + mapPath(mounts, path));
      writeFileSync(mapPath(mounts, target), text);
    }
    const home = join(tmp, `home-${name}-${replica}`);
    mkdirSync(home, { recursive: true });
    const env: Record<string, string> = {
      HOME: home,
      ...portEnv,
      CDKTR_METRICS_PORT: String(await metricsPortOf(`${name}#${replica}`)),
    };
    for (const [k, raw] of Object.entries(svc.environment ?? {})) {
      let v = String(raw);
      if (k === "CDKTR_PRINCIPAL_HOST" && (serviceNames.has(v) || v === "0.0.0.0")) v = "127.0.0.1";
      // The dashboard's container interface is this machine's loopback here, on a free port.
      if (k === "CDKTR_DASHBOARD_HOST" && v === "0.0.0.0") {
        v = "127.0.0.1";
        env.CDKTR_DASHBOARD_PORT = String(dashboardPort);
      }
      env[k] = mapPath(mounts, v);
    }
    return env;
  };

  const start = async (name: string, replica = 0): Promise<ServiceHandle> => {
    const svc = compose.services[name];
    assert.ok(svc?.command !== undefined);
    return spawnService({
      script: cliBin(),
      args: svc.command,
      env: await localEnv(name, replica),
      cwd: tmp,
      name: `${name}#${replica}`,
      readyTimeoutMs: 30_000,
    });
  };

  // The principal first (everything else depends on it being healthy): it makes the keys.
  const principal = await start("principal");
  const keysVolume = join(tmp, "volumes", "cdktr-keys");
  assert.deepEqual(readdirSync(keysVolume).sort(), [
    "local-agent.json",
    "local-dashboard.json",
    "local-listeners.json",
    "local-operator.json",
    "local-scheduler.json",
    "principal.json",
  ]);
  const principalKey = readKeyFile(join(keysVolume, "principal.json")).publicKey;
  /** Run a service's healthcheck command with its environment, as Docker does in its container. */
  const healthcheck = async (name: string, replica = 0) => {
    const test = compose.services[name]?.healthcheck?.test?.slice(1) ?? [];
    assert.equal(test[0], "cdktr");
    const r = await runCli(test.slice(1), { env: await localEnv(name, replica) });
    return { ...r, command: test.join(" ") };
  };
  const principalHealth = await healthcheck("principal");
  assert.equal(
    principalHealth.code,
    0,
    `principal's healthcheck ${principalHealth.command}: ${principalHealth.stdout}`,
  );

  // Then the others, with two agent replicas (as `--scale agent=2`) sharing the agent key.
  const others = await Promise.all([
    start("agent", 0),
    start("agent", 1),
    start("scheduler"),
    start("listeners"),
    start("dashboard"),
  ]);
  assert.deepEqual(
    others.slice(0, 2).map((a) => a.ready.key),
    ["local-agent", "local-agent"],
  );
  for (const [name, replica] of [
    ["agent", 0],
    ["agent", 1],
    ["scheduler", 0],
    ["listeners", 0],
    ["dashboard", 0],
  ] as const) {
    const h = await healthcheck(name, replica);
    assert.equal(h.code, 0, `${name}#${replica}'s healthcheck ${h.command}: ${h.stdout}${h.stderr}`);
  }
  // `docker compose exec principal cdktr ...`: the operator key of the keys volume.
  const clientEnv = await localEnv("principal");
  const agents = JSON.parse((await runCli(["agents", "--json"], { env: clientEnv })).stdout) as { status: string }[];
  assert.equal(agents.filter((a) => a.status === "ACTIVE").length, 2, "both agent replicas registered");

  const run = await runCli(["run", "hello", "--wait"], { env: clientEnv });
  assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
  const runId = lines(run.stdout)[0] ?? "";
  await assertRunOutput(runId, clientEnv);

  // The dashboard: the token command of the compose file's header (`docker compose exec dashboard
  // ...`, its environment: the tokens file in its volume), then a sign-in and the run it shows.
  const tokenCommand = /docker compose exec dashboard cdktr (dashboard token create .+)$/m.exec(
    readFileSync(COMPOSE_PATH, "utf8"),
  );
  assert.ok(tokenCommand?.[1] !== undefined, "docker-compose.yml shows how to make a dashboard token");
  const dashEnv = await localEnv("dashboard");
  const made0 = await runCli(tokenCommand[1].trim().split(/\s+/), { env: dashEnv });
  assert.equal(made0.code, 0, made0.stderr);
  const dashUrl = `http://127.0.0.1:${dashboardPort}`;
  assert.equal((await fetch(`${dashUrl}/api/session`)).status, 200);
  const signIn = await waitFor(async () => {
    const r = await fetch(`${dashUrl}/api/session`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: made0.stdout.trim() }),
    });
    return r.status === 200 ? r : undefined;
  });
  const cookie = (signIn.headers.get("set-cookie") ?? "").split(";")[0] ?? "";
  const shown = (await (await fetch(`${dashUrl}/api/runs`, { headers: { cookie } })).json()) as {
    runs: { runId: string }[];
  };
  assert.ok(
    shown.runs.some((r) => r.runId === runId),
    "the dashboard shows the run",
  );

  // The webhook listener triggers runs through the same API; the run completes on an agent.
  // Its secret was generated on its first start in its state volume, and it requires it.
  const secretFile = join(tmp, "volumes", "cdktr-listeners", "webhook.secret");
  assert.equal(statSync(secretFile).mode & 0o777, 0o600);
  const secret = readFileSync(secretFile, "utf8").trim();
  assert.ok(secret.length >= 32, "a generated secret");
  const route = webhookTriggerPath("hello");
  const unsigned = await fetch(`http://127.0.0.1:${webhook}${route}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  });
  assert.equal(unsigned.status, 401, "unsigned requests are refused");
  const ts = Math.floor(Date.now() / 1000);
  const res = await fetch(`http://127.0.0.1:${webhook}${route}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-cdktr-timestamp": String(ts),
      "x-cdktr-signature": signWebhookRequest(secret, ts, { method: "POST", path: route, body: "{}" }),
    },
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

  // README's one command for the host's CLI: a new operator key printed by the principal's
  // container, kept in a 0600 file on the host, used from another HOME with CDKTR_KEY_FILE.
  const readme = readFileSync(join(REPO, "README.md"), "utf8");
  const command = /docker compose exec -T principal cdktr (keys create [^>)]+?) > (\S+)\)/.exec(readme);
  assert.ok(command?.[1] !== undefined, "README shows the command giving the host's CLI a key");
  const made = await runCli(command[1].trim().split(/\s+/), { env: clientEnv });
  assert.equal(made.code, 0, made.stderr);
  const hostHome = makeTempDir("cdktr-host-");
  const hostKey = join(hostHome, "host-cli.json");
  writeFileSync(hostKey, made.stdout, { mode: 0o600 });
  assert.equal(readKeyFile(hostKey).principalPublicKey, principalKey, "it pins the compose principal's key");
  const host = { HOME: hostHome, ...portEnv, CDKTR_KEY_FILE: hostKey };
  const hostRuns = await runCli(["runs", "--json"], { env: host });
  assert.equal(hostRuns.code, 0, hostRuns.stderr);
  assert.ok((JSON.parse(hostRuns.stdout) as { runId: string }[]).some((r) => r.runId === runId));
  assert.ok(!existsSync(join(keysVolume, "host-cli.json")), "--out - writes nothing in the keys volume");

  for (const h of [...others, principal]) {
    const r = await h.stop("SIGTERM", 40_000);
    assert.equal(r.code, 0, `${h.name} exits 0 on SIGTERM:\n${h.lines.slice(-10).join("\n")}`);
  }
  // A stopped process fails its healthcheck (a hung or dead one is "unhealthy", whatever the principal says).
  const dead = await healthcheck("agent");
  assert.equal(dead.code, 1, dead.stdout);
  assert.match(dead.stdout, /unhealthy \(refused/);
});
