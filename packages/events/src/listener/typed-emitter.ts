/**
 * A small typed event emitter. Unlike Node's EventEmitter, emitting `error` with no handler
 * does not throw: a listener process must not crash because nobody subscribed.
 */
export class TypedEmitter<E extends object> {
  readonly #handlers = new Map<keyof E, Set<(payload: never) => void>>();

  /** Call `handler` on every `event`. */
  on<K extends keyof E>(event: K, handler: (payload: E[K]) => void): this {
    let set = this.#handlers.get(event);
    if (set === undefined) {
      set = new Set();
      this.#handlers.set(event, set);
    }
    set.add(handler);
    return this;
  }

  /** Call `handler` on the next `event` only. */
  once<K extends keyof E>(event: K, handler: (payload: E[K]) => void): this {
    const wrapper = (payload: E[K]): void => {
      this.off(event, wrapper);
      handler(payload);
    };
    return this.on(event, wrapper);
  }

  /** Remove a handler added with {@link on}. */
  off<K extends keyof E>(event: K, handler: (payload: E[K]) => void): this {
    this.#handlers.get(event)?.delete(handler);
    return this;
  }

  /** Call every handler of `event`; a throwing handler does not stop the others. */
  protected emit<K extends keyof E>(event: K, payload: E[K]): void {
    const set = this.#handlers.get(event);
    if (set === undefined) return;
    for (const h of [...set]) {
      try {
        (h as (p: E[K]) => void)(payload);
      } catch {
        // a handler's own bug is not the emitter's to handle
      }
    }
  }
}
