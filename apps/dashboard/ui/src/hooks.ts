import { useQuery } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { apiGet } from "./api";
import type { Session } from "./types";

/** Handlers of named server-sent events; `data` is the parsed JSON of the event. */
export interface StreamHandlers {
  run?: (data: unknown) => void;
  task?: (data: unknown) => void;
  log?: (data: unknown) => void;
  reset?: (data: unknown) => void;
  /** Called on each successful (re)connection; `reconnected` is false the first time. */
  open?: (reconnected: boolean) => void;
  /** Called when the connection fails (the browser then retries by itself). */
  error?: () => void;
}

/**
 * Keeps an EventSource open on `url` while mounted (null: none). A reconnection after an error is
 * reported as a `reset` (events may have been missed), like the server's own `reset` event.
 */
export function useEventStream(url: string | null, handlers: StreamHandlers): void {
  const ref = useRef(handlers);
  ref.current = handlers;
  useEffect(() => {
    if (url === null) return;
    const source = new EventSource(url);
    let opened = false;
    const names = ["run", "task", "log", "reset"] as const;
    const listeners = names.map((name) => {
      const listener = (ev: MessageEvent<string>): void => {
        let data: unknown;
        try {
          data = JSON.parse(ev.data);
        } catch {
          return;
        }
        ref.current[name]?.(data);
      };
      source.addEventListener(name, listener);
      return [name, listener] as const;
    });
    const onOpen = (): void => {
      const reconnected = opened;
      opened = true;
      ref.current.open?.(reconnected);
      if (reconnected) ref.current.reset?.({});
    };
    const onError = (): void => ref.current.error?.();
    source.addEventListener("open", onOpen);
    source.addEventListener("error", onError);
    return () => {
      source.removeEventListener("error", onError);
      for (const [name, listener] of listeners) source.removeEventListener(name, listener);
      source.removeEventListener("open", onOpen);
      source.close();
    };
  }, [url]);
}

/** The current time (epoch ms), re-rendered every `intervalMs` while `active`. */
export function useNow(intervalMs: number, active = true): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return;
    setNow(Date.now());
    const id = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(id);
  }, [intervalMs, active]);
  return now;
}

/** The query key of the session. */
export const SESSION_KEY = ["session"] as const;

/** The query of the current session (GET /api/session). */
export const sessionQuery = {
  queryKey: SESSION_KEY,
  queryFn: () => apiGet<Session>("/api/session"),
  staleTime: 30_000,
};

/** The current session (GET /api/session). */
export function useSession(): { session: Session | undefined; isLoading: boolean } {
  const q = useQuery(sessionQuery);
  return { session: q.data, isLoading: q.isLoading };
}

/** Sets the document title while mounted. */
export function useTitle(title: string): void {
  useEffect(() => {
    document.title = `${title} · cdktr`;
  }, [title]);
}
