/**
 * The log-flood scenario's senders, run as their own process so that building, validating and
 * sending 2,000-line batches never blocks the event loop of the bench process that measures the
 * trigger and ping latencies (on the same loop, the senders' work was counted as the principal's).
 *
 *   FLOODER_SPEC='{"endpoint":..., "key":..., "senders":[{agentId,runId,token}], "perSender":N}' node log-flooder.js
 *
 * Each sender is like an agent's log shipper: its own run, one batch in flight, a batch refused as
 * busy (`RESOURCE_EXHAUSTED`) resent after the shipper's backoff. Prints `{"message":"ready"}`
 * once connected (the flood starts right after), then `{"message":"done","refused":..,"stored":..}` and exits.
 */
import { LogClient, backoffDelay, isCdktrError, type ClientKey, type LogLine } from "@cdktr/protocol";

interface Spec {
  endpoint: string;
  key: ClientKey | null;
  senders: { agentId: string; runId: string; token: string }[];
  perSender: number;
  linesPerBatch: number;
}

const spec = JSON.parse(process.env.FLOODER_SPEC ?? "{}") as Spec;
const logs = new LogClient({ endpoint: spec.endpoint, timeoutMs: 120_000, env: {}, key: spec.key });
await logs.ping();
process.stdout.write(`${JSON.stringify({ message: "ready" })}\n`);
let refused = 0;
let stored = 0;
const time = new Date().toISOString();
const send = async ({ agentId, runId, token }: Spec["senders"][number]): Promise<void> => {
  for (let first = 0; first < spec.perSender; first += spec.linesPerBatch) {
    const lines: LogLine[] = [];
    for (let s = first + 1; s <= Math.min(spec.perSender, first + spec.linesPerBatch); s++) {
      lines.push({
        time,
        runId,
        workflowId: "bench",
        taskId: "flood",
        stream: "stdout",
        level: "info",
        seq: s,
        line: `flood line ${s}`,
      });
    }
    for (let attempt = 1; ; attempt++) {
      try {
        const ack = await logs.logBatch({ agentId, lines, tokens: { [runId]: token } }, { retry: false });
        stored += ack.stored;
        break;
      } catch (e) {
        if (!isCdktrError(e, "RESOURCE_EXHAUSTED")) throw e;
        refused++;
        await new Promise((r) => setTimeout(r, backoffDelay(attempt, { initialMs: 100, maxMs: 2000 })));
      }
    }
  }
};
await Promise.all(spec.senders.map(send));
process.stdout.write(`${JSON.stringify({ message: "done", refused, stored })}\n`);
logs.close();
process.exit(0);
