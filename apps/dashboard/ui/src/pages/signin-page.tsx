import { useMutation, useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useState } from "react";
import { useNavigate, useSearchParams } from "react-router";
import { apiPost, errorText } from "../api";
import { SESSION_KEY, useTitle } from "../hooks";
import type { Session } from "../types";

/** Where to go after signing in: a path on this site only (never `//host` or a full URL). */
export function safeNext(next: string | null): string {
  if (next === null || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\")) return "/";
  if (next.startsWith("/signin")) return "/";
  return next;
}

/** `/signin`: exchange a dashboard token for a session cookie. */
export function SignInPage() {
  useTitle("Sign in");
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [token, setToken] = useState("");
  const signIn = useMutation({
    mutationFn: (t: string) => apiPost<Session>("/api/session", { token: t }),
    onSuccess: (session) => {
      setToken("");
      queryClient.setQueryData(SESSION_KEY, session);
      void queryClient.invalidateQueries();
      void navigate(safeNext(params.get("next")), { replace: true });
    },
  });
  const onSubmit = (e: FormEvent): void => {
    e.preventDefault();
    if (token !== "") signIn.mutate(token);
  };
  return (
    <>
      <h1>Sign in</h1>
      <form className="signin" onSubmit={onSubmit}>
        <label htmlFor="signin-token">Dashboard token</label>
        <input
          id="signin-token"
          data-testid="signin-token"
          type="password"
          autoComplete="current-password"
          required
          value={token}
          onChange={(e) => setToken(e.currentTarget.value)}
          aria-describedby={signIn.error !== null ? "signin-error" : undefined}
        />
        <div className="actions">
          <button type="submit" data-testid="signin-submit" disabled={signIn.isPending}>
            {signIn.isPending ? "Signing in…" : "Sign in"}
          </button>
        </div>
        {signIn.error !== null && (
          <p className="error" role="alert" id="signin-error" data-testid="signin-error">
            {errorText(signIn.error)}
          </p>
        )}
      </form>
    </>
  );
}
