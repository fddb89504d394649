/**
 * An HTTP trigger for cdktr: `POST /trigger/<workflowId>` (optional JSON body of params) starts
 * that workflow and answers with the listener's TriggerResult as JSON.
 *
 *   CDKTR_PRINCIPAL_HOST=127.0.0.1 CDKTR_PRINCIPAL_PORT=5561 LISTENER_PORT=8080 node dist/main.js
 *   curl -X POST localhost:8080/trigger/hello
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { EventListener, createLogger, runListener } from "@cdktr/events";

class HttpTrigger extends EventListener {
  constructor(private readonly port: number) {
    super({ logger: createLogger({ component: "http-trigger" }), source: "http-trigger" });
  }

  protected async startListening(signal: AbortSignal): Promise<void> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        this.logger.error("request failed", { error: e instanceof Error ? e.message : "unknown error" });
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(this.port, "127.0.0.1", resolve));
    const address = server.address();
    this.logger.info("ready", { port: typeof address === "object" && address !== null ? address.port : this.port });
    await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const match = /^\/trigger\/([^/?]+)$/.exec(req.url ?? "");
    if (req.method !== "POST" || match?.[1] === undefined) {
      res.writeHead(404).end();
      return;
    }
    let params: Record<string, string | number | boolean> | undefined;
    try {
      params = await readJson(req);
    } catch {
      res.writeHead(400).end("the body must be a JSON object of params");
      return;
    }
    const result = await this.runWorkflow(decodeURIComponent(match[1]), params === undefined ? {} : { params });
    const status = result.success ? 200 : result.error?.code === "WORKFLOW_NOT_FOUND" ? 404 : 502;
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(result));
  }
}

async function readJson(req: IncomingMessage): Promise<Record<string, string | number | boolean> | undefined> {
  let text = "";
  for await (const chunk of req) text += String(chunk);
  return text.trim() === "" ? undefined : (JSON.parse(text) as Record<string, string | number | boolean>);
}

await runListener(new HttpTrigger(Number(process.env.LISTENER_PORT ?? 8080)));
