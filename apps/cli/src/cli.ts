/**
 * The `cdktr` command tree (commander). {@link runCli} parses argv, runs one command and returns
 * the exit code; it never throws and never prints a stack trace.
 */
import { Command, CommanderError, Option } from "commander";
import { authDisabled, packageVersion } from "@cdktr/protocol";
import { agentsCommand, pingCommand } from "./commands/agents.js";
import {
  dashboardTokenCreateCommand,
  dashboardTokenListCommand,
  dashboardTokenRevokeCommand,
  type DashboardTokenCreateOptions,
} from "./commands/dashboard.js";
import { healthCommand, type HealthOptions } from "./commands/health.js";
import { initCommand } from "./commands/init.js";
import {
  keysCreateCommand,
  keysInitCommand,
  keysListCommand,
  keysRevokeCommand,
  type KeysCreateOptions,
} from "./commands/keys.js";
import { logsCommand, type LogsOptions } from "./commands/logs.js";
import { runCommand, type RunOptions } from "./commands/run.js";
import { cancelCommand, listRunsCommand, showRunCommand } from "./commands/runs.js";
import { startCommand } from "./commands/start.js";
import { validateCommand } from "./commands/validate.js";
import { listWorkflowsCommand, showWorkflowCommand } from "./commands/workflows.js";
import { createContext, type CommandContext } from "./context.js";
import { describeError } from "./errors.js";
import { escapeControl } from "./format/terminal-text.js";
import type { CliIo } from "./io.js";

/** The CLI's version (that of the `@cdktr/cli` package). */
export const CLI_VERSION: string = packageVersion(import.meta.url);

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/**
 * Build the command tree. Each action stores its exit code through `setCode`; contexts are
 * created per action and closed by {@link runCli}.
 */
export function createProgram(
  io: CliIo,
  hooks: { run: (cmd: Command, fn: (ctx: CommandContext) => Promise<number> | number) => Promise<void> },
): Command {
  // Usage errors are one line: commander's suggestion joins the message, then a pointer to help.
  const output = {
    writeOut: (s: string) => io.stdout.write(s),
    writeErr: (s: string) => io.stderr.write(s),
    outputError: (s: string, write: (s: string) => void) =>
      write(`${s.trim().split("\n").join(" ")} (see \`cdktr --help\`)\n`),
  };
  const program = new Command("cdktr")
    .description("cdktr: an event-driven workflow orchestrator. Commands talk to the principal unless noted.")
    .version(CLI_VERSION, "-V, --version", "print the version")
    .helpOption("-h, --help", "show help")
    .addOption(
      new Option(
        "--principal <host:port>",
        "principal API address (default $CDKTR_PRINCIPAL_HOST:$CDKTR_PRINCIPAL_PORT or 127.0.0.1:5561)",
      ),
    )
    .showSuggestionAfterError(true)
    // Options belong to the command they follow (`runs --json` vs `runs show <id> --json`).
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput(output)
    .addHelpText(
      "after",
      `
Examples:
  cdktr start all                      run principal, agent and scheduler locally
  cdktr workflows                      list workflows and their next runs
  cdktr run hello --wait               trigger a run and wait for its result
  cdktr run etl -p date=2026-11-28 --follow
  cdktr run --retry-from <runId> --wait  re-run a failed run from its failed tasks
  cdktr logs --run <runId>             a run's output
  cdktr keys create ci --role trigger  a key for another machine (CDKTR_KEY_FILE there)
  cdktr validate workflows             check workflow files (no principal needed)
  cdktr dashboard token create me --role operator   a sign-in token for the web dashboard

Environment: CDKTR_PRINCIPAL_HOST, CDKTR_PRINCIPAL_PORT, CDKTR_LOGS_PUBLISHING_PORT, and the key:
CDKTR_KEY_FILE, else local-operator in CDKTR_KEYS_DIR (~/.cdktr/keys) (see docs/operations.md).
Colour only on a terminal; NO_COLOR turns it off.`,
    );

  const sub = (name: string, description: string): Command => {
    const c = program.command(name).description(description);
    return c;
  };

  sub("start", "run an app in the foreground: principal, agent, scheduler, listeners, dashboard, or all (local use)")
    .argument("<app>", "principal | agent | scheduler | listeners | dashboard | all")
    .action(async (app: string, _o: unknown, cmd: Command) => hooks.run(cmd, (ctx) => startCommand(ctx, app)));

  sub("workflows", "list workflows: id, name, cron, timezone and next run")
    .option("--json", "print one JSON array of WorkflowDefinition records")
    .action(async (o: { json?: boolean }, cmd: Command) => hooks.run(cmd, (ctx) => listWorkflowsCommand(ctx, o)));

  const workflow = sub("workflow", "one workflow (see `cdktr workflow show --help`)");
  workflow
    .command("show")
    .description("a workflow's tasks, its DAG as a tree and its next 5 runs in its timezone")
    .argument("<workflowId>", "workflow id (see `cdktr workflows`)")
    .option("--json", "print the WorkflowDefinition as JSON")
    .action(async (id: string, o: { json?: boolean }, cmd: Command) =>
      hooks.run(cmd, (ctx) => showWorkflowCommand(ctx, id, o)),
    );

  sub("validate", "check workflow files without a principal; prints file:line:column errors, exit 1 if any is invalid")
    .argument("[dir]", "workflow directory (default $CDKTR_WORKFLOW_DIR or ./workflows)")
    .option("--json", "print {workflows, errors, warnings} as JSON")
    .action(async (dir: string | undefined, o: { json?: boolean }, cmd: Command) =>
      hooks.run(cmd, (ctx) => validateCommand(ctx, dir, o)),
    );

  sub("run", "trigger a run and print its id; --wait shows task progress and exits 0 only if it COMPLETED")
    .argument("[workflowId]", "workflow id (see `cdktr workflows`); none with --retry-from")
    .option("-p, --param <name=value>", "a run parameter (repeatable)", collect)
    .option("--key <key>", "idempotency key: the same key never starts a second run")
    .option("--wait", "follow the run's task states until it ends; exit 0 only if it COMPLETED")
    .option("--follow", "like --wait, and stream the run's log lines")
    .option("--json", "print the trigger reply as JSON (without --wait/--follow)")
    .option(
      "--retry-from <runId>",
      "re-run a FAILED, CRASHED or CANCELLED run from its failed tasks: its COMPLETED tasks are taken as done (same workflow and params)",
    )
    .action(async (id: string | undefined, o: RunOptions, cmd: Command) =>
      hooks.run(cmd, (ctx) => runCommand(ctx, id, o)),
    );

  const runs = sub("runs", "list runs, newest first (`cdktr runs show <runId>` for one run)")
    // `runs show <id> --json`: options after `show` are show's.
    .enablePositionalOptions()
    .option("-w, --workflow <id>", "only this workflow")
    .option("-s, --status <status>", "only these states, comma-separated (QUEUED,RUNNING,COMPLETED,FAILED,...)")
    .option("--source <source>", "only runs triggered by this source (cli, scheduler, api, ...)")
    .option("-n, --limit <n>", "at most this many runs", "20")
    .option("--json", "print one JSON array of RunRecord records")
    .action(
      async (
        o: { workflow?: string; status?: string; source?: string; limit?: string; json?: boolean },
        cmd: Command,
      ) => hooks.run(cmd, (ctx) => listRunsCommand(ctx, o)),
    );
  runs
    .command("show")
    .description("one run: its tasks with states, attempts, durations, exit codes and reasons")
    .argument("<runId>", "run id")
    .option("--json", "print {run, tasks} as JSON")
    .action(async (id: string, o: { json?: boolean }, cmd: Command) =>
      hooks.run(cmd, (ctx) => showRunCommand(ctx, id, o)),
    );

  sub("cancel", "cancel a queued or running run")
    .argument("<runId>", "run id")
    .action(async (id: string, _o: unknown, cmd: Command) => hooks.run(cmd, (ctx) => cancelCommand(ctx, id)));

  sub("logs", "task output: stored lines (latest --limit), and with --follow new lines live")
    .option("-r, --run <runId>", "only this run")
    .option("-w, --workflow <id>", "only this workflow")
    .option("-t, --task <taskId>", "only this task")
    .option("--since <time>", "from this time: a duration ago (30m, 1h, 2d) or ISO-8601 (default 24h without --run)")
    .option("--until <time>", "before this time: a duration ago or ISO-8601")
    .option("-l, --level <level>", "minimum level: debug, info, warn, error (stderr lines are error)")
    .option("-n, --limit <n>", "at most this many lines (the latest)", "1000")
    .option("-f, --follow", "keep printing new lines as they arrive (Ctrl-C stops)")
    .option("--json", "print one JSON array of LogLine records")
    .action(async (o: LogsOptions, cmd: Command) => hooks.run(cmd, (ctx) => logsCommand(ctx, o)));

  sub("agents", "list agents: host, state, running runs, labels, last heartbeat")
    .option("--json", "print one JSON array of AgentRecord records")
    .action(async (o: { json?: boolean }, cmd: Command) => hooks.run(cmd, (ctx) => agentsCommand(ctx, o)));

  const keys = sub("keys", "client keys for other machines: create, list, revoke (needs an operator key); init");
  keys
    .command("init")
    .description(
      "make a deployment's keys without a principal: principal.json and the local client keys (no principal needed)",
    )
    .argument("[dir]", "keys directory (default $CDKTR_KEYS_DIR or ~/.cdktr/keys)")
    .option("--json", "print {keysDir, files} as JSON")
    .action(async (dir: string | undefined, o: { json?: boolean }, cmd: Command) =>
      hooks.run(cmd, (ctx) => keysInitCommand(ctx, dir, o)),
    );
  keys
    .command("create")
    .description("make a key pair, enrol its public half, write the key file and say how to use it elsewhere")
    .argument("<name>", "the key's name (letters, digits, '_', '-', '.')")
    .requiredOption("--role <role>", "operator | reader | scheduler | trigger | agent | dashboard (docs/security.md)")
    .option("--scope <scope>", "idempotency scope: keys with one scope dedupe each other (default: the name)")
    .option("--workflows <ids>", "comma-separated workflows a trigger or scheduler key may run (default: any)")
    .option("--out <file>", "where to write the key file (default <keys dir>/<name>.json; - = stdout)")
    .action(async (name: string, o: KeysCreateOptions, cmd: Command) =>
      hooks.run(cmd, (ctx) => keysCreateCommand(ctx, name, o)),
    );
  keys
    .command("list")
    .description("every enrolled key with its role, scope, workflows and state (never a secret)")
    .option("--json", "print one JSON array of KeyRecord records")
    .action(async (o: { json?: boolean }, cmd: Command) => hooks.run(cmd, (ctx) => keysListCommand(ctx, o)));
  keys
    .command("revoke")
    .description("revoke a key: its requests are refused at once, its subscriptions end")
    .argument("<name>", "the key's name (see `cdktr keys list`)")
    .action(async (name: string, _o: unknown, cmd: Command) => hooks.run(cmd, (ctx) => keysRevokeCommand(ctx, name)));

  const dashboard = sub("dashboard", "the web dashboard's sign-in tokens (no principal needed; see docs/dashboard.md)");
  const token = dashboard
    .command("token")
    .description(
      "sign-in tokens in the tokens file ($CDKTR_DASHBOARD_TOKENS_FILE or <keys dir>/dashboard-tokens.json)",
    );
  token
    .command("create")
    .description("make a token, store its hash, print it once on stdout")
    .argument(
      "<name>",
      "who it is for: lowercase letters, digits, '.', '_', '@', '-' (recorded as the actor of their runs)",
    )
    .requiredOption("--role <role>", "reader (sees everything) | operator (also triggers, re-runs and cancels)")
    .option("--json", "print {name, role, createdAt, revokedAt, token, file} as JSON")
    .action(async (name: string, o: DashboardTokenCreateOptions, cmd: Command) =>
      hooks.run(cmd, (ctx) => dashboardTokenCreateCommand(ctx, name, o)),
    );
  token
    .command("list")
    .description("every token's name, role, creation and revocation (never a token or its hash)")
    .option("--json", "print one JSON array of {name, role, createdAt, revokedAt}")
    .action(async (o: { json?: boolean }, cmd: Command) => hooks.run(cmd, (ctx) => dashboardTokenListCommand(ctx, o)));
  token
    .command("revoke")
    .description("revoke a token: sign-ins with it fail, its sessions end at their next request")
    .argument("<name>", "the token's name (see `cdktr dashboard token list`)")
    .action(async (name: string, _o: unknown, cmd: Command) =>
      hooks.run(cmd, (ctx) => dashboardTokenRevokeCommand(ctx, name)),
    );

  sub("ping", "check that the principal answers (gives up within 3 s; for healthchecks)")
    .option("--json", "print the reply as JSON")
    .action(async (o: { json?: boolean }, cmd: Command) => hooks.run(cmd, (ctx) => pingCommand(ctx, o)));

  sub(
    "health",
    "ask a cdktr process on this machine about itself on its metrics port: /healthz, or /readyz with --ready",
  )
    .option("--ready", "ask /readyz: can it do its work now (store, disk, registration, leadership)?")
    .option("--port <port>", "its metrics port (default $CDKTR_METRICS_PORT)")
    .option("--host <host>", "its metrics host (default $CDKTR_METRICS_HOST or 127.0.0.1)")
    .option("--json", "print {url, ok, status, problems} as JSON")
    .action(async (o: HealthOptions, cmd: Command) => hooks.run(cmd, (ctx) => healthCommand(ctx, o)));

  sub("init", "scaffold workflows/hello.yml and a .env listing every setting (no principal needed)")
    .argument("[dir]", "target directory (default: the current directory)")
    .option("--force", "overwrite existing files")
    .action(async (dir: string | undefined, o: { force?: boolean }, cmd: Command) =>
      hooks.run(cmd, (ctx) => initCommand(ctx, dir, o)),
    );

  const principalOption = (): Option =>
    new Option(
      "--principal <host:port>",
      "principal API address (default $CDKTR_PRINCIPAL_HOST:$CDKTR_PRINCIPAL_PORT or 127.0.0.1:5561)",
    );
  // Commands that never ask a principal (`keys init` among the `keys` verbs).
  const offline = new Set(["validate", "init", "start", "health", "help", "keys init", "dashboard", "dashboard token"]);
  for (const c of program.commands) {
    c.exitOverride().configureOutput(output);
    if (!offline.has(c.name())) c.addOption(principalOption());
    for (const cc of c.commands) {
      cc.exitOverride().configureOutput(output);
      if (!offline.has(`${c.name()} ${cc.name()}`)) cc.addOption(principalOption());
      for (const ccc of cc.commands) ccc.exitOverride().configureOutput(output);
    }
  }
  return program;
}

/**
 * Run the CLI on `argv` (without `node` and the script path) and return the exit code:
 * 0 success, 1 failure (or a run that did not complete), 2 bad usage, 130 interrupted.
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let code = 0;
  const program = createProgram(io, {
    async run(cmd, fn) {
      const globals = cmd.optsWithGlobals<{ principal?: string }>();
      const ctx = createContext(io, { principal: globals.principal });
      try {
        code = await fn(ctx);
      } catch (e) {
        const principal = safe(() => ctx.target().display);
        const key = authDisabled(io.env) ? undefined : safe(() => ctx.key());
        const d = describeError(e, {
          ...(principal === undefined ? {} : { principal }),
          ...(key === undefined ? {} : { keyName: key?.name ?? null }),
        });
        // An error's message can quote what the principal or an agent sent: escape it.
        io.stderr.write(`${ctx.style.red("error")}: ${escapeControl(d.message)}\n`);
        code = d.exitCode;
      } finally {
        await ctx.close();
      }
    },
  });
  if (argv.length === 0) {
    program.outputHelp();
    return 2;
  }
  try {
    await program.parseAsync([...argv], { from: "user" });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.code === "commander.help")
        return 0;
      return e.exitCode === 0 ? 0 : 2;
    }
    const d = describeError(e);
    io.stderr.write(`error: ${escapeControl(d.message)}\n`);
    return d.exitCode;
  }
}

function safe<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch {
    return undefined;
  }
}
