/**
 * The hostile agent of the `abuse-polls` scenario, in its own process so the bench's pings do not
 * share its event loop: registers agent `FLOOD_AGENT` (capacity `FLOOD_CAPACITY`) with the key
 * file `FLOOD_KEY_FILE`, sends `FLOOD_COUNT` pipelined `fetchWork` long-polls of `FLOOD_WAIT_MS`
 * on the API port `FLOOD_PORT`, prints `ready` once all are sent and `done` once all are answered.
 */
import { PrincipalClient, clientKeyOf, readKeyFile } from "@cdktr/protocol";

const env = (name: string): string => process.env[name] ?? "";
const agentId = env("FLOOD_AGENT");
const count = Number(env("FLOOD_COUNT"));
const capacity = Number(env("FLOOD_CAPACITY"));
const waitMs = Number(env("FLOOD_WAIT_MS"));
const client = new PrincipalClient({
  port: Number(env("FLOOD_PORT")),
  timeoutMs: waitMs + 60_000,
  env: {},
  key: clientKeyOf(readKeyFile(env("FLOOD_KEY_FILE"))),
});
await client.registerAgent({ agentId, host: "flood", capacity, labels: [], version: "bench", runningRuns: [] });
let answered = 0;
let errors = 0;
const polls: Promise<void>[] = [];
for (let i = 0; i < count; i++) {
  polls.push(
    client.fetchWork({ agentId, waitMs, freeSlots: capacity }).then(
      () => {
        answered++;
      },
      () => {
        answered++;
        errors++;
      },
    ),
  );
}
process.stdout.write(`${JSON.stringify({ message: "ready", sent: count })}\n`);
await Promise.all(polls);
process.stdout.write(`${JSON.stringify({ message: "done", answered, errors })}\n`);
client.close();
