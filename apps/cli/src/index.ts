/**
 * `@cdktr/cli`: the `cdktr` command as a library (for embedding and tests). The executable is
 * `bin/cdktr.js`.
 */
export { runCli, createProgram, CLI_VERSION } from "./cli.js";
export { bufferIo, colorEnabled, type CliIo, type TextSink } from "./io.js";
export { CliError, describeError, type ErrorContext } from "./errors.js";
export { resolvePrincipal, type PrincipalTarget } from "./connection.js";
export { parseParamArgs } from "./params.js";
export {
  parseDuration,
  tryParseDuration,
  parseInstant,
  formatDuration,
  formatInstant,
  elapsed,
} from "./format/duration.js";
export { renderTable, type TableOptions } from "./format/table.js";
export { createStyle, stripAnsi, visibleLength, type Style } from "./format/style.js";
export { LogSequencer, type LogGap } from "./watch/log-sequencer.js";
export { RunWatcher, type RunWatcherOptions, type WatchClient } from "./watch/run-watcher.js";
export { SETTINGS, renderDotEnv, type SettingDoc } from "./settings.js";
export { EXAMPLE_WORKFLOW } from "./commands/init.js";
export { STARTABLE_APPS, type StartableApp } from "./start/apps.js";
