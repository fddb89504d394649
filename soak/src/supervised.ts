/**
 * A process the soak keeps alive: started through the test fixture, restarted when it exits
 * without being told to, and killed, stopped or signalled by the chaos loop.
 */
import { errorMessage } from "@cdktr/protocol";
import type { ServiceHandle } from "@cdktr/test-utils";
import { SoakError } from "./errors.js";

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A process the soak keeps alive: restarted when it exits without being told to. */
export class Supervised {
  handle: ServiceHandle | null = null;
  /** Down on purpose (chaos or final stop): an exit is expected. */
  down = false;
  startFailures = 0;

  constructor(
    readonly name: string,
    private readonly starter: () => Promise<ServiceHandle>,
    private readonly onUnexpectedExit: (what: string) => void,
    private readonly log: (line: string) => void,
  ) {}

  /** Start (again), retrying a failed start for up to 60 s. */
  async start(): Promise<ServiceHandle> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        const h = await this.starter();
        this.handle = h;
        this.down = false;
        this.watch(h);
        return h;
      } catch (e) {
        this.startFailures++;
        this.log(`${this.name}: start failed (${errorMessage(e).split("\n")[0] ?? ""}); retrying`);
        if (Date.now() > deadline)
          throw new SoakError("START_FAILED", `${this.name} did not start within 60 s: ${errorMessage(e)}`);
        await sleep(1000);
      }
    }
  }

  private watch(h: ServiceHandle): void {
    void h.exited.then(async (exit) => {
      if (this.handle !== h || this.down) return;
      const tail = h.lines
        .slice(-3)
        .map((l) => l.slice(0, 300))
        .join(" | ");
      this.onUnexpectedExit(`${this.name} exited (code ${exit.code}, signal ${exit.signal}): ${tail}`);
      this.log(`${this.name}: exited on its own (code ${exit.code}, signal ${exit.signal}); restarting`);
      await sleep(500);
      if (this.handle === h && !this.down) await this.start().catch((e: unknown) => this.log(errorMessage(e)));
    });
  }

  /** SIGKILL its process group (a crash). */
  async kill(): Promise<void> {
    this.down = true;
    await this.handle?.kill();
  }

  /** Graceful stop (SIGTERM). */
  async stop(): Promise<void> {
    this.down = true;
    await this.handle?.stop("SIGTERM", 15_000);
  }

  /** Send `signal` to its process group (SIGSTOP, SIGCONT). */
  signal(signal: NodeJS.Signals): void {
    const pid = this.handle?.pid;
    if (pid !== undefined) process.kill(-pid, signal);
  }
}
