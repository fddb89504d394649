import type { CommandContext } from "../context.js";
import { formatInstant } from "../format/duration.js";
import { renderTable } from "../format/table.js";
import { terminalSafe } from "../format/terminal-text.js";

/** `cdktr agents`: every agent the principal knows (following the pages of `listAgents`). */
export async function agentsCommand(ctx: CommandContext, opts: { json?: boolean }): Promise<number> {
  const agents = await ctx.client().allAgents();
  if (opts.json === true) {
    ctx.out(JSON.stringify(agents, null, 2));
    return 0;
  }
  ctx.io.stdout.write(
    renderTable(
      ["AGENT", "HOST", "STATUS", "RUNNING", "LABELS", "VERSION", "LAST HEARTBEAT", "PROBLEMS"],
      terminalSafe(agents).map((a) => [
        a.agentId,
        a.host,
        ctx.style.status(a.status),
        `${a.runningRuns.length}/${a.capacity}`,
        a.labels.length === 0 ? "-" : a.labels.join(","),
        a.version,
        formatInstant(a.lastHeartbeatAt),
        (a.problems ?? []).length === 0 ? "-" : (a.problems ?? []).join("; "),
      ]),
      { header: ctx.style.dim, empty: "no agents: start one with `cdktr start agent`" },
    ),
  );
  return 0;
}

/** How long `cdktr ping` waits for the principal. */
export const PING_TIMEOUT_MS = 2000;

/**
 * `cdktr ping`: one request, no retry, gives up within 3 s (used by container healthchecks).
 * Exit 0 when the principal answers healthy; 1 when it does not answer, or answers `degraded`
 * (its `problems` are printed, e.g. "disk full"). A principal older than the `health` field is
 * taken as healthy.
 */
export async function pingCommand(ctx: CommandContext, opts: { json?: boolean }): Promise<number> {
  const started = Date.now();
  const reply = await ctx.client().request("ping", {}, { timeoutMs: PING_TIMEOUT_MS, retry: false });
  const ms = Date.now() - started;
  const degraded = reply.health === "degraded";
  if (opts.json === true) ctx.out(JSON.stringify({ ...reply, address: ctx.target().display, roundTripMs: ms }));
  else {
    const r = terminalSafe(reply);
    const state = degraded
      ? ctx.style.red(`degraded (${(r.problems ?? []).join(", ") || "no reason given"})`)
      : ctx.style.green("ok");
    // With several principals: which one answered and whether it leads.
    const role = r.role === undefined ? "" : ` (${r.role}${r.epoch === undefined ? "" : `, epoch ${r.epoch}`})`;
    const at =
      ctx.target().endpoints.length > 1 ? ctx.client().endpoint.replace(/^tcp:\/\//, "") : ctx.target().display;
    ctx.out(`principal ${r.principalId} (cdktr ${r.version}) at ${at}${role}: ${state} in ${ms} ms`);
  }
  return degraded ? 1 : 0;
}
