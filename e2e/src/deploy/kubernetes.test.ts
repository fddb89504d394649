/**
 * deploy/kubernetes: the kustomize base and the PostgreSQL HA overlay, rendered by kustomize
 * (`kubectl kustomize`, or a `kustomize` binary) and checked without a cluster:
 * - against the Kubernetes API schemas: `kubernetes-models` (JSON-schema validators generated from
 *   the upstream Kubernetes OpenAPI specification: types, required fields, formats) and
 *   `kubernetes-types` (TypeScript types generated from the same specification; the TypeScript
 *   compiler's excess-property check finds a misspelt or misplaced field at any depth, which the
 *   JSON schemas, open to extra properties, let through);
 * - against what cdktr needs: each process's probes on its own /healthz and /readyz, non-root, a
 *   read-only root file system, resource requests, only known CDKTR_* settings, the key Secrets
 *   and the files `cdktr keys init` makes, services that select pods with the named ports, and
 *   the overlay's two principals on PostgreSQL with every client knowing both.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { SETTINGS } from "@cdktr/cli";
import { LOCAL_KEYS } from "@cdktr/principal";
import { makeTempDir } from "@cdktr/test-utils";

const REPO = fileURLToPath(new URL("../../../", import.meta.url));
const KUBE = join(REPO, "deploy", "kubernetes");
const require = createRequire(import.meta.url);

// A loose view of the manifests, for the cdktr checks (the schemas check the shapes).
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string }; fieldRef?: { fieldPath: string } };
}
interface Probe {
  httpGet?: { path?: string; port?: string | number };
}
interface Container {
  name: string;
  image?: string;
  args?: string[];
  command?: string[];
  env?: EnvVar[];
  ports?: { name?: string; containerPort: number }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    capabilities?: { drop?: string[] };
  };
  volumeMounts?: { name: string; mountPath: string }[];
}
interface PodSpec {
  automountServiceAccountToken?: boolean;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type?: string } };
  initContainers?: Container[];
  containers: Container[];
  volumes?: { name: string; secret?: { secretName: string }; configMap?: { name: string } }[];
}
interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: {
    replicas?: number;
    selector?: Record<string, string> | { matchLabels?: Record<string, string> };
    template?: { metadata?: { labels?: Record<string, string> }; spec: PodSpec };
    volumeClaimTemplates?: { metadata: { name: string } }[];
    ports?: { name?: string; port: number; targetPort?: string | number }[];
  };
}

/** The command that renders a kustomization, or why there is none (skip; fail under CI). */
function kustomizeCommand(t: TestContext): string[] | undefined {
  for (const cmd of [
    ["kustomize", "build"],
    ["kubectl", "kustomize"],
  ]) {
    const r = spawnSync(cmd[0] as string, cmd[0] === "kubectl" ? ["version", "--client"] : ["version"], {
      encoding: "utf8",
    });
    if (r.status === 0 && (cmd[0] === "kustomize" || /Kustomize Version: v[5-9]/.test(r.stdout))) return cmd;
  }
  const why = "neither kustomize nor a kubectl with kustomize v5 is installed (Debian's kubectl is too old)";
  if (process.env.CI !== undefined && process.env.CI !== "") assert.fail(`${why} (CI is set: not skipping)`);
  t.skip(why);
  return undefined;
}

function render(cmd: string[], dir: string): Manifest[] {
  const r = spawnSync(cmd[0] as string, [...cmd.slice(1), dir], { encoding: "utf8" });
  assert.equal(r.status, 0, `${cmd.join(" ")} ${dir}:\n${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => {
    assert.deepEqual(d.errors, [], `${dir}: the rendered YAML parses`);
    return d.toJS() as Manifest;
  });
}

const where = (m: Manifest): string => `${m.kind}/${m.metadata.name}`;

/** The module of `kubernetes-models` for an apiVersion and kind (`apps/v1` -> `apps/v1/Deployment`). */
function modelModule(m: Manifest): string {
  const [group, version] = m.apiVersion.includes("/") ? m.apiVersion.split("/") : ["", m.apiVersion];
  return group === "" ? `kubernetes-models/${version}/${m.kind}` : `kubernetes-models/${group}/${version}/${m.kind}`;
}

/** Every schema error of a manifest, per `kubernetes-models` (empty when it is valid). */
async function schemaErrors(m: Manifest): Promise<string[]> {
  let Model: new (data: unknown) => { validate(): void };
  try {
    const mod = (await import(modelModule(m))) as Record<string, new (data: unknown) => { validate(): void }>;
    Model = mod[m.kind] as new (data: unknown) => { validate(): void };
  } catch (e) {
    return [`${where(m)}: no schema for apiVersion ${m.apiVersion} kind ${m.kind} (${String(e)})`];
  }
  try {
    new Model(m).validate();
    return [];
  } catch (e) {
    return [`${where(m)}: ${e instanceof Error ? e.message : String(e)}`];
  }
}

/** The `kubernetes-types` module and type of a manifest (`apps/v1` -> `kubernetes-types/apps/v1`, Deployment). */
function typesModule(m: Manifest): string {
  const [group, version] = m.apiVersion.includes("/") ? m.apiVersion.split("/") : ["core", m.apiVersion];
  // API groups are named by their first label in kubernetes-types (policy, apps, networking...).
  return `kubernetes-types/${(group as string).split(".")[0]}/${version}`;
}

/**
 * Type-check manifests as object literals of their `kubernetes-types` type with the repository's
 * TypeScript: returns the compiler's errors (an unknown field is "Object literal may only specify
 * known properties").
 */
function typeErrors(manifests: Manifest[]): string[] {
  const dir = makeTempDir("cdktr-k8s-types-");
  const typesDir = dirname(require.resolve("kubernetes-types/package.json"));
  const lines: string[] = [];
  manifests.forEach((m, i) => {
    lines.push(`import type { ${m.kind} as T${i} } from "${typesModule(m)}";`);
    lines.push(`export const m${i}: T${i} = ${JSON.stringify(m, null, 1)};`);
  });
  writeFileSync(join(dir, "manifests.ts"), `${lines.join("\n")}\n`);
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        module: "nodenext",
        moduleResolution: "nodenext",
        types: [],
        paths: { "kubernetes-types/*": [`${typesDir}/*`] },
      },
      files: ["manifests.ts"],
    }),
  );
  const tsc = join(REPO, "node_modules", ".bin", "tsc");
  const r = spawnSync(tsc, ["-p", dir], { encoding: "utf8" });
  if (r.status === 0) return [];
  const out = `${r.stdout}${r.stderr}`.trim();
  assert.match(out, /error TS/, `tsc failed without a type error:\n${out}`);
  return out.split("\n").filter((l) => l.includes("error TS"));
}

function podSpecs(manifests: Manifest[]): { owner: Manifest; spec: PodSpec }[] {
  return manifests.flatMap((m) => (m.spec?.template === undefined ? [] : [{ owner: m, spec: m.spec.template.spec }]));
}

const envOf = (c: Container, name: string): EnvVar | undefined => c.env?.find((e) => e.name === name);

/** Every setting a process reads: the settings list of `cdktr init`, and the rows of docs/operations.md. */
const KNOWN_SETTINGS = new Set([
  ...SETTINGS.flatMap((g) => g.settings.map((s) => s.name)),
  ...[...readFileSync(join(REPO, "docs", "operations.md"), "utf8").matchAll(/^\| `(CDKTR_[A-Z0-9_]+)`/gm)].map(
    (m) => m[1],
  ),
]);

/** What both renderings must satisfy. */
async function checkCommon(manifests: Manifest[]): Promise<void> {
  const errors = (await Promise.all(manifests.map(schemaErrors))).flat();
  assert.deepEqual(errors, [], "valid against the Kubernetes API schemas (kubernetes-models)");
  assert.deepEqual(typeErrors(manifests), [], "no unknown or mistyped field (kubernetes-types)");

  for (const m of manifests) {
    if (m.kind !== "Namespace") assert.equal(m.metadata.namespace, "cdktr", `${where(m)}: in the cdktr namespace`);
    assert.equal(m.metadata.labels?.["app.kubernetes.io/part-of"], "cdktr", `${where(m)}: labelled part-of cdktr`);
  }
  const pods = podSpecs(manifests);
  assert.deepEqual(pods.map((p) => p.owner.metadata.name).sort(), [
    "agent",
    "dashboard",
    "listeners",
    "principal",
    "scheduler",
  ]);
  const secrets = new Set<string>();
  for (const { owner, spec } of pods) {
    const name = owner.metadata.name;
    assert.equal(spec.automountServiceAccountToken, false, `${name}: no API token (cdktr does not call Kubernetes)`);
    assert.equal(spec.securityContext?.runAsNonRoot, true, `${name}: non-root`);
    assert.equal(spec.securityContext?.runAsUser, 1000, `${name}: the image's node user`);
    assert.equal(spec.securityContext?.seccompProfile?.type, "RuntimeDefault", `${name}: seccomp`);
    for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
      const at = `${name}/${c.name}`;
      assert.equal(c.image, "cdktr:local", `${at}: the cdktr image`);
      assert.equal(c.securityContext?.allowPrivilegeEscalation, false, `${at}: no privilege escalation`);
      assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${at}: read-only root file system`);
      assert.deepEqual(c.securityContext?.capabilities?.drop, ["ALL"], `${at}: no capabilities`);
      assert.ok(
        c.resources?.requests?.cpu !== undefined && c.resources.requests.memory !== undefined,
        `${at}: requests`,
      );
      assert.ok(c.resources?.limits?.memory !== undefined, `${at}: a memory limit`);
      for (const e of c.env ?? []) {
        if (e.name.startsWith("CDKTR_"))
          assert.ok(KNOWN_SETTINGS.has(e.name), `${at}: ${e.name} is not a cdktr setting`);
      }
    }
    assert.equal(spec.containers.length, 1, `${name}: one container`);
    const c = spec.containers[0] as Container;
    assert.deepEqual(c.args, ["start", name], `${name}: cdktr start ${name}`);
    // Probes: the process's own health server, on its named metrics port, reachable on the pod IP.
    assert.equal(envOf(c, "CDKTR_METRICS_PORT")?.value, "9464", `${name}: metrics port`);
    assert.equal(envOf(c, "CDKTR_METRICS_HOST")?.value, "0.0.0.0", `${name}: probes reach the pod's address`);
    assert.ok(
      c.ports?.some((p) => p.name === "metrics" && p.containerPort === 9464),
      `${name}: metrics port named`,
    );
    assert.deepEqual(c.livenessProbe?.httpGet, { path: "/healthz", port: "metrics" }, `${name}: liveness`);
    assert.deepEqual(c.readinessProbe?.httpGet, { path: "/readyz", port: "metrics" }, `${name}: readiness`);
    assert.equal(envOf(c, "CDKTR_LOG_FORMAT")?.value, "json", `${name}: JSON logs for the cluster's collector`);
    // Keys: a Secret copied with mode 0600 into a memory-backed volume by an init container.
    const init = spec.initContainers?.[0];
    assert.ok(init !== undefined && init.command?.[0] === "install", `${name}: an init container copies the keys`);
    assert.deepEqual(init.command?.slice(1, 5), ["-m", "0600", "-t", "/keys"], `${name}: key files get mode 0600`);
    for (const v of spec.volumes ?? []) if (v.secret !== undefined) secrets.add(v.secret.secretName);
    if (name === "principal") {
      assert.equal(envOf(c, "CDKTR_KEYS_DIR")?.value, "/keys");
      assert.equal(envOf(c, "CDKTR_PRINCIPAL_HOST")?.value, "0.0.0.0");
      // Exactly the files `cdktr keys init` makes (the principal enrols the local ones).
      assert.deepEqual(
        init.command?.slice(5),
        ["/secret/principal.json", ...LOCAL_KEYS.map((k) => `/secret/${k.name}.json`)],
        "the principal's init container copies every file of `cdktr keys init`",
      );
    } else {
      assert.equal(envOf(c, "CDKTR_KEY_FILE")?.value, "/keys/key.json", `${name}: its key`);
      assert.equal(envOf(c, "CDKTR_PRINCIPAL_HOST")?.value, "principal", `${name}: reaches the principal by name`);
      assert.deepEqual(init.command?.slice(5), ["/secret/key.json"]);
    }
  }
  assert.deepEqual([...secrets].sort(), [
    "cdktr-agent-key",
    "cdktr-dashboard-key",
    "cdktr-dashboard-tokens",
    "cdktr-listeners-key",
    "cdktr-principal-keys",
    "cdktr-scheduler-key",
    "cdktr-webhook",
  ]);
  // The operator makes these Secrets (and the workflows ConfigMap): docs/operations.md says how.
  const docs = readFileSync(join(REPO, "docs", "operations.md"), "utf8");
  for (const s of [...secrets, "cdktr-workflows"])
    assert.match(docs, new RegExp(`\\b${s}\\b`), `docs/operations.md: ${s}`);

  // Services select pods, and their named target ports exist on those pods.
  for (const svc of manifests.filter((m) => m.kind === "Service")) {
    const selector = svc.spec?.selector as Record<string, string>;
    const matched = pods.filter(({ owner }) =>
      Object.entries(selector).every(([k, v]) => owner.spec?.template?.metadata?.labels?.[k] === v),
    );
    assert.equal(matched.length, 1, `${where(svc)} selects one workload`);
    const ports = new Set((matched[0]?.spec.containers[0]?.ports ?? []).map((p) => p.name));
    for (const p of svc.spec?.ports ?? []) assert.ok(ports.has(String(p.targetPort)), `${where(svc)}: ${p.targetPort}`);
  }
}

test("deploy/kubernetes/base renders, is valid against the Kubernetes schemas, and runs every process as cdktr needs", async (t) => {
  const cmd = kustomizeCommand(t);
  if (cmd === undefined) return;
  const manifests = render(cmd, join(KUBE, "base"));
  await checkCommon(manifests);
  const principal = manifests.find((m) => m.kind === "StatefulSet" && m.metadata.name === "principal");
  assert.ok(principal?.spec?.template !== undefined);
  assert.equal(principal.spec.replicas, 1, "one principal on SQLite");
  // SQLite on a persistent volume, mounted where CDKTR_DB_PATH points.
  assert.deepEqual(
    principal.spec.volumeClaimTemplates?.map((v) => v.metadata.name),
    ["data"],
  );
  const c = principal.spec.template.spec.containers[0] as Container;
  assert.equal(envOf(c, "CDKTR_DB_PATH")?.value, "/data/cdktr.db");
  assert.ok(c.volumeMounts?.some((v) => v.name === "data" && v.mountPath === "/data"));
  assert.equal(envOf(c, "CDKTR_DATABASE_URL"), undefined);
  const agent = manifests.find((m) => m.kind === "Deployment" && m.metadata.name === "agent");
  assert.ok((agent?.spec?.replicas ?? 0) >= 1, "agents: a scalable Deployment");
  // The webhook's replay cache outlives a pod: a replaced listener still refuses a replay.
  const listeners = manifests.find((m) => m.kind === "Deployment" && m.metadata.name === "listeners");
  const state = listeners?.spec?.template?.spec.volumes?.find((v) => v.name === "state") as
    | { persistentVolumeClaim?: { claimName: string } }
    | undefined;
  assert.equal(state?.persistentVolumeClaim?.claimName, "listeners-state");
  assert.ok(manifests.some((m) => m.kind === "PersistentVolumeClaim" && m.metadata.name === "listeners-state"));
});

test("the postgres-ha overlay: two principals on PostgreSQL, every client knows both", async (t) => {
  const cmd = kustomizeCommand(t);
  if (cmd === undefined) return;
  const manifests = render(cmd, join(KUBE, "overlays", "postgres-ha"));
  await checkCommon(manifests);
  const principal = manifests.find((m) => m.kind === "StatefulSet" && m.metadata.name === "principal");
  assert.ok(principal?.spec?.template !== undefined);
  assert.equal(principal.spec.replicas, 2);
  assert.equal(principal.spec.volumeClaimTemplates, undefined, "no SQLite volume");
  const c = principal.spec.template.spec.containers[0] as Container;
  assert.deepEqual(envOf(c, "CDKTR_DATABASE_URL")?.valueFrom?.secretKeyRef, { name: "cdktr-database", key: "url" });
  // $(POD_NAME) expands only from a variable defined earlier in the list.
  const names = (c.env ?? []).map((e) => e.name);
  assert.equal(envOf(c, "CDKTR_ADVERTISE_HOST")?.value, "$(POD_NAME).principal");
  assert.ok(names.indexOf("POD_NAME") >= 0 && names.indexOf("POD_NAME") < names.indexOf("CDKTR_ADVERTISE_HOST"));
  const endpoints = Array.from({ length: 2 }, (_, i) => `principal-${i}.principal:5561`).join(",");
  for (const { owner, spec } of podSpecs(manifests)) {
    if (owner.metadata.name === "principal") continue;
    assert.equal(
      envOf(spec.containers[0] as Container, "CDKTR_PRINCIPAL_ENDPOINTS")?.value,
      endpoints,
      owner.metadata.name,
    );
  }
  const service = manifests.find((m) => m.kind === "Service" && m.metadata.name === "principal") as
    | (Manifest & { spec: { clusterIP?: string; publishNotReadyAddresses?: boolean } })
    | undefined;
  assert.equal(service?.spec.clusterIP, "None", "headless: principal-N.principal names");
  assert.equal(service?.spec.publishNotReadyAddresses, true, "a standby (not ready) still resolves");
  const pdb = manifests.find((m) => m.kind === "PodDisruptionBudget");
  assert.ok(pdb !== undefined, "a drain leaves one principal");
});

test("the schema checks fail on a mistyped value, a misspelt field and a missing required field", async (t) => {
  const cmd = kustomizeCommand(t);
  if (cmd === undefined) return;
  const agent = render(cmd, join(KUBE, "base")).find((m) => m.kind === "Deployment" && m.metadata.name === "agent");
  assert.ok(agent?.spec?.template !== undefined);
  const copy = (): Manifest & { spec: Record<string, unknown> } => structuredClone(agent) as never;

  const mistyped = copy();
  (mistyped.spec as Record<string, unknown>).replicas = "two";
  assert.match((await schemaErrors(mistyped)).join("\n"), /replicas must be integer/);

  const missing = copy();
  delete missing.spec.selector;
  assert.match((await schemaErrors(missing)).join("\n"), /must have required property '?selector'?/);

  // JSON schemas of Kubernetes allow unknown properties; the type check does not.
  const misspelt = copy() as Manifest;
  const container = misspelt.spec?.template?.spec.containers[0] as Container & Record<string, unknown>;
  container.readinesProbe = container.readinessProbe;
  delete container.readinessProbe;
  assert.deepEqual(await schemaErrors(misspelt), [], "the JSON schema alone lets a misspelt field through");
  assert.match(typeErrors([misspelt]).join("\n"), /'"?readinesProbe"?' does not exist in type 'Container'/);
});
