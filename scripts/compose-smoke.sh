#!/usr/bin/env bash
# The compose stack, built and run for real: what a new user does with README.md's commands.
#
#   scripts/compose-smoke.sh     # needs a running Docker engine, compose, and `npm run build` done
#
# Builds the image (docker-compose.yml), starts the stack under its own project name, waits for
# every container's healthcheck, then from the host: gives the host's CLI a key, runs `hello`
# (exit 0) and `fail` (exit 1) with live events, triggers `hello` through the signed webhook,
# scales the agents to 3 and sees 3, restarts the principal and finds the earlier runs, and tears
# everything down with its volumes (`down -v`), also when a step fails. Works with `docker compose`
# (v2) and Debian's `docker-compose` (v1). Prints the time of each step.
#
# Host ports (loopback): CDKTR_SMOKE_API_PORT (default 15561), CDKTR_SMOKE_PUBLISH_PORT (15563),
# CDKTR_SMOKE_WEBHOOK_PORT (18080), CDKTR_SMOKE_DASHBOARD_PORT (15564), so a local stack on the
# defaults is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

project=cdktr-smoke
# docker-compose.yml reads these for its published ports.
export CDKTR_HOST_API_PORT=${CDKTR_SMOKE_API_PORT:-15561}
export CDKTR_HOST_PUBLISH_PORT=${CDKTR_SMOKE_PUBLISH_PORT:-15563}
export CDKTR_HOST_WEBHOOK_PORT=${CDKTR_SMOKE_WEBHOOK_PORT:-18080}
export CDKTR_HOST_DASHBOARD_PORT=${CDKTR_SMOKE_DASHBOARD_PORT:-15564}

if docker compose version >/dev/null 2>&1; then compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then compose=(docker-compose)
else echo "compose-smoke: neither 'docker compose' nor 'docker-compose' is installed" >&2; exit 2; fi
docker info >/dev/null 2>&1 || { echo "compose-smoke: the Docker engine does not answer (start dockerd)" >&2; exit 2; }
cli="$repo/apps/cli/bin/cdktr.js"
[ -f "$repo/apps/cli/dist/main.js" ] || { echo "compose-smoke: run 'npm run build' first (the host's cdktr)" >&2; exit 2; }

dc() { "${compose[@]}" -p "$project" -f docker-compose.yml "$@"; }
work=$(mktemp -d /tmp/cdktr-smoke.XXXXXX)
started=$(date +%s)
step_started=$started
step() {
  local now; now=$(date +%s)
  [ -z "${step_name:-}" ] || printf 'compose-smoke: %-44s %4ss\n' "$step_name" "$((now - step_started))"
  step_name=$1
  step_started=$now
}
fail() {
  echo "compose-smoke: FAILED at '$step_name': $*" >&2
  exit 1
}
teardown() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "compose-smoke: container states and last log lines:" >&2
    dc ps >&2 || true
    dc logs --no-color --tail 40 >&2 || true
  fi
  dc down -v --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$work"
  echo "compose-smoke: $([ "$rc" -eq 0 ] && echo passed || echo failed) in $(($(date +%s) - started))s (${compose[*]})"
}
trap teardown EXIT

# The host's CLI, talking to the published ports with its own key.
host_cdktr() {
  CDKTR_PRINCIPAL_HOST=127.0.0.1 CDKTR_PRINCIPAL_PORT="$CDKTR_HOST_API_PORT" \
    CDKTR_LOGS_PUBLISHING_PORT="$CDKTR_HOST_PUBLISH_PORT" CDKTR_KEY_FILE="$work/host-cli.json" \
    HOME="$work" NO_COLOR=1 node "$cli" "$@"
}

# Wait until every container of the project is healthy (one with no healthcheck: running).
wait_healthy() {
  local want=$1 deadline=$(($(date +%s) + ${2:-180})) ids states
  while :; do
    ids=$(dc ps -q)
    states=$( [ -z "$ids" ] || docker inspect --format '{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' $ids)
    if [ "$(grep -c -E ' (healthy|running)$' <<<"$states")" -eq "$want" ] && ! grep -q -v -E ' (healthy|running)$' <<<"$states"; then
      return 0
    fi
    [ "$(date +%s)" -lt "$deadline" ] || fail "containers not healthy in time: $(tr '\n' ' ' <<<"$states")"
    sleep 2
  done
}

wait_for() { # wait_for <seconds> <description> <command...>: until the command succeeds
  local deadline=$(($(date +%s) + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "$what"
    sleep 1
  done
}

step "build the image"
dc down -v --remove-orphans >/dev/null 2>&1 || true
dc build >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log" >&2; fail "image build failed"; }
echo "compose-smoke: image cdktr:local is $(docker image inspect cdktr:local --format '{{.Size}}') bytes, Node $(docker run --rm --entrypoint node cdktr:local -v)"

step "start the stack and wait for health"
dc up -d >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; fail "up failed"; }
wait_healthy 5

step "a key for the host's CLI"
(umask 077; dc exec -T principal cdktr keys create host-cli --role operator --out - >"$work/host-cli.json") ||
  fail "keys create in the principal's container"
host_cdktr ping || fail "the host's cdktr cannot reach the principal"

step "hello from the host (exit 0, live events)"
host_cdktr run hello --follow >"$work/hello.out" 2>&1 || { cat "$work/hello.out" >&2; fail "hello did not exit 0"; }
cat "$work/hello.out"
hello_run=$(head -n 1 "$work/hello.out")
# Live events: the QUEUED state and each task's RUNNING come from the publish port (polling sees
# the end states only), the tasks' output arrives while the run goes on.
for want in QUEUED RUNNING COMPLETED hello goodbye; do
  grep -q -w "$want" "$work/hello.out" || fail "no '$want' in the output of 'cdktr run hello --follow'"
done
grep -q "polling" "$work/hello.out" && fail "the host's CLI fell back to polling"

step "fail from the host (exit 1)"
set +e
host_cdktr run fail --wait >"$work/fail.out" 2>&1
fail_rc=$?
set -e
cat "$work/fail.out"
[ "$fail_rc" -eq 1 ] || fail "'cdktr run fail --wait' exited $fail_rc, expected 1"
grep -q -w FAILED "$work/fail.out" || fail "no FAILED in the output of 'cdktr run fail --wait'"

step "hello through the signed webhook"
dc exec -T listeners cat /state/webhook.secret >"$work/webhook.secret" || fail "no webhook secret in the listeners' volume"
hook_run=$(node --input-type=module - "$CDKTR_HOST_WEBHOOK_PORT" "$work/webhook.secret" <<'EOF'
import { readFileSync } from "node:fs";
import { signWebhookRequest, webhookTriggerPath } from "@cdktr/events/webhook";
const [port, secretFile] = process.argv.slice(2);
const secret = readFileSync(secretFile, "utf8").trim();
const path = webhookTriggerPath("hello");
const url = `http://127.0.0.1:${port}${path}`;
const unsigned = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
if (unsigned.status !== 401) throw new Error(`an unsigned request got ${unsigned.status}, expected 401`);
const ts = Math.floor(Date.now() / 1000);
const res = await fetch(url, {
  method: "POST",
  headers: {
    "content-type": "application/json",
    "x-cdktr-timestamp": String(ts),
    "x-cdktr-signature": signWebhookRequest(secret, ts, { method: "POST", path, body: "{}" }),
  },
  body: "{}",
});
if (res.status !== 202) throw new Error(`the signed request got ${res.status}: ${await res.text()}`);
process.stdout.write((await res.json()).runId);
EOF
) || fail "webhook trigger"
# json_check '<js expression of v>': the JSON on stdin passes the check.
json_check() { node -e 'let s="";process.stdin.on("data",(d)=>(s+=d)).on("end",()=>{const v=JSON.parse(s);process.exit(('"$1"')?0:1)})'; }
run_completed() { host_cdktr runs show "$1" --json | json_check 'v.run.status === "COMPLETED"'; }
wait_for 60 "the webhook's run $hook_run did not complete" run_completed "$hook_run"

step "the dashboard: sign-in required (bound to 0.0.0.0 in its container), a token, the runs"
dash="http://127.0.0.1:$CDKTR_HOST_DASHBOARD_PORT"
dash_session() { node -e 'fetch(process.argv[1] + "/api/session").then(async (r) => { const v = await r.json(); process.exit(r.status === 200 && v.signInRequired === true ? 0 : 1); }, () => process.exit(1))' "$dash"; }
wait_for 30 "GET $dash/api/session did not answer {signInRequired: true}" dash_session
dash_token=$(dc exec -T dashboard cdktr dashboard token create smoke --role reader) || fail "dashboard token create in its container"
node --input-type=module - "$dash" "$dash_token" "$hello_run" <<'EOF' || fail "the dashboard does not show run $hello_run after a sign-in"
const [base, token, runId] = process.argv.slice(2);
const anon = await fetch(`${base}/api/runs`);
if (anon.status !== 401) throw new Error(`an anonymous read got ${anon.status}, expected 401`);
let signIn;
for (let i = 0; i < 5; i++) {
  signIn = await fetch(`${base}/api/session`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ token }) });
  if (signIn.status === 200) break;
  await new Promise((r) => setTimeout(r, 1500)); // the dashboard re-reads its tokens file each second
}
if (signIn.status !== 200) throw new Error(`sign-in got ${signIn.status}`);
const cookie = (signIn.headers.get("set-cookie") ?? "").split(";")[0];
const runs = await (await fetch(`${base}/api/runs`, { headers: { cookie } })).json();
if (!runs.runs.some((r) => r.runId === runId)) throw new Error("run not listed");
EOF

step "scale agents to 3"
dc up -d --scale agent=3 --no-recreate >"$work/scale.log" 2>&1 || { cat "$work/scale.log" >&2; fail "scale failed"; }
three_agents() { host_cdktr agents --json | json_check 'v.filter((a) => a.status === "ACTIVE").length === 3'; }
wait_for 90 "3 ACTIVE agents not seen: $(host_cdktr agents 2>&1 | tr '\n' ' ')" three_agents
wait_healthy 7

step "restart the principal; earlier runs are kept"
dc restart principal >/dev/null 2>&1 || fail "restart failed"
wait_healthy 7
has_runs() { host_cdktr runs -n 100 --json | json_check "[\"$hello_run\", \"$hook_run\"].every((id) => v.some((r) => r.runId === id))"; }
wait_for 60 "runs $hello_run and $hook_run not found after the restart" has_runs
host_cdktr run hello --wait >/dev/null || fail "hello after the restart"

step "tear down (down -v)"
dc down -v --remove-orphans >/dev/null 2>&1 || fail "down -v failed"
[ -z "$(docker volume ls -q --filter "name=${project}_")" ] || fail "volumes left after down -v"
step ""
