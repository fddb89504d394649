/**
 * A hostile peer for the abuse-frames scenario, run as its own process so that building and
 * sending the message never blocks the bench's own ping loop.
 *
 *   node frame-abuser.js <endpoint> frames <n>   one request followed by n empty frames
 *   node frame-abuser.js <endpoint> big <mib>    two frames of <mib>/2 MiB each
 *
 * With `ABUSER_KEY` (a JSON client key: publicKey, secretKey, principalPublicKey) it speaks
 * CURVE, like an enrolled key would. Prints `{"message":"ready"}` once connected, then
 * `{"message":"done","reply":...,"sendMs":...}` once the reply came or the wait ended (60 s,
 * 5 s for `big`), and exits.
 */
import { Dealer } from "zeromq";

const [endpoint = "", mode = "frames", sizeText = "1000000"] = process.argv.slice(2);
const size = Number(sizeText);
// A refused frame gets no reply (the connection is dropped): wait less for that one.
const d = new Dealer({ linger: 0, sendTimeout: 120_000, receiveTimeout: mode === "big" ? 5000 : 60_000 });
const keyText = process.env.ABUSER_KEY;
if (keyText !== undefined && keyText !== "") {
  const key = JSON.parse(keyText) as { publicKey: string; secretKey: string; principalPublicKey: string };
  d.curveServerKey = key.principalPublicKey;
  d.curvePublicKey = key.publicKey;
  d.curveSecretKey = key.secretKey;
}
d.connect(endpoint);
process.stdout.write(`${JSON.stringify({ message: "ready" })}\n`);
await new Promise((r) => setTimeout(r, 300));
const MiB = 1024 * 1024;
const frames: (string | Buffer)[] =
  mode === "big"
    ? [Buffer.alloc((size / 2) * MiB, 0x61), Buffer.alloc((size / 2) * MiB, 0x62)]
    : ["cdktr/1", "abuse-1", "0", "ping", "{}", ...new Array<Buffer>(size).fill(Buffer.alloc(0))];
const t0 = performance.now();
await d.send(frames);
const sendMs = performance.now() - t0;
let reply = "none (the connection was dropped)";
try {
  const r = await d.receive();
  reply = String(r[3] ?? "").slice(0, 160);
} catch {
  // no reply within the receive timeout
}
process.stdout.write(`${JSON.stringify({ message: "done", reply, sendMs })}\n`);
d.close();
process.exit(0);
