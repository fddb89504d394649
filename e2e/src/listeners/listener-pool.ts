/** What {@link ListenerPool} needs of a listener. */
interface Startable {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The listeners a suite starts against its shared principal: each test's are stopped in the
 * suite's `afterEach` with {@link ListenerPool.stopAll}, even when the test failed.
 */
export class ListenerPool<L extends Startable> {
  private readonly listeners: L[] = [];

  /** Keep `l` for {@link stopAll} without starting it (a test that starts it itself). */
  track(l: L): L {
    this.listeners.push(l);
    return l;
  }

  /** Keep `l` for {@link stopAll} and start it. */
  async start(l: L): Promise<L> {
    this.track(l);
    await l.start();
    return l;
  }

  /** Stop every listener kept so far. */
  async stopAll(): Promise<void> {
    await Promise.all(this.listeners.splice(0).map((l) => l.stop()));
  }
}
