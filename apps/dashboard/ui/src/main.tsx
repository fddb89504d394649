import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { BrowserRouter } from "react-router";
import { isClientError } from "./api";
import { App } from "./app";
import { sessionQuery } from "./hooks";
import { prefetchRunsPage } from "./pages/runs-page";
import "./styles.css";

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      staleTime: 2000,
      retry: (count, error) => !isClientError(error) && count < 2,
    },
    mutations: { retry: false },
  },
});

// What every page and the runs page need, asked for before the first render (in parallel with it).
void queryClient.prefetchQuery(sessionQuery);
prefetchRunsPage(queryClient, window.location.pathname, window.location.search);

const root = document.getElementById("root");
if (root !== null)
  createRoot(root).render(
    <StrictMode>
      <QueryClientProvider client={queryClient}>
        <BrowserRouter>
          <App />
        </BrowserRouter>
      </QueryClientProvider>
    </StrictMode>,
  );
