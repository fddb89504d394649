/**
 * @cdktr/dashboard: the web dashboard process (work in progress: the server lands next).
 */
/** Default TCP port of the dashboard's HTTP server (`CDKTR_DASHBOARD_PORT`). */
export const DEFAULT_DASHBOARD_PORT = 5564;
