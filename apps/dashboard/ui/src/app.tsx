import { useQueryClient } from "@tanstack/react-query";
import { lazy, Suspense, useEffect, useState } from "react";
import { Link, NavLink, Route, Routes, useLocation, useNavigate } from "react-router";
import { apiDelete, errorText, setUnauthorizedHandler } from "./api";
import { SESSION_KEY, useSession } from "./hooks";
import { AgentsPage } from "./pages/agents-page";
import { RunsPage } from "./pages/runs-page";
import { SignInPage } from "./pages/signin-page";
import { WorkflowsPage } from "./pages/workflows-page";

// The pages with a DAG (React Flow, dagre: most of the script) load when first opened, so the
// runs page, the first one people see, renders without them.
const RunPage = lazy(() => import("./pages/run-page").then((m) => ({ default: m.RunPage })));
const WorkflowPage = lazy(() => import("./pages/workflow-page").then((m) => ({ default: m.WorkflowPage })));

function SessionArea() {
  const { session } = useSession();
  const queryClient = useQueryClient();
  const location = useLocation();
  const [error, setError] = useState<string | null>(null);
  const signOut = (): void => {
    apiDelete("/api/session").then(
      () => {
        setError(null);
        void queryClient.invalidateQueries();
      },
      (e: unknown) => setError(errorText(e)),
    );
  };
  if (session?.signedIn === true)
    return (
      <div className="session" data-testid="session">
        <span>
          {session.name ?? "signed in"} <span className="role">({session.role ?? "no role"})</span>
        </span>
        <button type="button" onClick={signOut}>
          Sign out
        </button>
        {error !== null && (
          <span className="error" role="alert">
            {error}
          </span>
        )}
      </div>
    );
  const here = `${location.pathname}${location.search}`;
  return (
    <div className="session" data-testid="session">
      <Link to={location.pathname === "/signin" ? "/signin" : `/signin?next=${encodeURIComponent(here)}`}>Sign in</Link>
    </div>
  );
}

/** Goes to /signin when the server requires a session for reading and there is none. */
function SignInGuard() {
  const { session } = useSession();
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const location = useLocation();
  useEffect(() => {
    setUnauthorizedHandler(() => {
      void queryClient.invalidateQueries({ queryKey: SESSION_KEY });
    });
    return () => setUnauthorizedHandler(() => {});
  }, [queryClient]);
  const mustSignIn = session?.signInRequired === true && !session.signedIn;
  useEffect(() => {
    if (mustSignIn && location.pathname !== "/signin")
      void navigate(`/signin?next=${encodeURIComponent(`${location.pathname}${location.search}`)}`, {
        replace: true,
      });
  }, [mustSignIn, location.pathname, location.search, navigate]);
  return null;
}

function NotFound() {
  return (
    <>
      <h1>Not found</h1>
      <p>
        There is no page here. <Link to="/">Back to the runs</Link>.
      </p>
    </>
  );
}

/** The dashboard: header with navigation and session, then the page. */
export function App() {
  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <SignInGuard />
      <header className="site-header">
        <Link to="/" className="brand">
          cdktr
        </Link>
        <nav aria-label="Main">
          <ul>
            <li>
              <NavLink to="/" end data-testid="nav-runs">
                Runs
              </NavLink>
            </li>
            <li>
              <NavLink to="/workflows" data-testid="nav-workflows">
                Workflows
              </NavLink>
            </li>
            <li>
              <NavLink to="/agents" data-testid="nav-agents">
                Agents
              </NavLink>
            </li>
          </ul>
        </nav>
        <SessionArea />
      </header>
      <main id="main" tabIndex={-1}>
        <Suspense fallback={<p>Loading…</p>}>
          <Routes>
            <Route path="/" element={<RunsPage />} />
            <Route path="/runs/:runId" element={<RunPage />} />
            <Route path="/workflows" element={<WorkflowsPage />} />
            <Route path="/workflows/:id" element={<WorkflowPage />} />
            <Route path="/agents" element={<AgentsPage />} />
            <Route path="/signin" element={<SignInPage />} />
            <Route path="*" element={<NotFound />} />
          </Routes>
        </Suspense>
      </main>
    </>
  );
}
