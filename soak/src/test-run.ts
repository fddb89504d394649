/**
 * The soak as a `node:test` test runs it: progress kept (and echoed with `CDKTR_TEST_VERBOSE`),
 * the table as the test's diagnostics, and one failure message with table, progress and details.
 */
import type { TestContext } from "node:test";
import { runSoak, type SoakOptions, type SoakReport } from "./soak.js";
import { renderTable } from "./table.js";

/** Run the soak for test `t`; `why` is the message every assertion on the report should carry. */
export async function soakInTest(
  t: TestContext,
  options: Omit<SoakOptions, "log">,
): Promise<{ report: SoakReport; why: string }> {
  const progress: string[] = [];
  const report = await runSoak({
    ...options,
    log: (line) => {
      progress.push(line);
      if (process.env.CDKTR_TEST_VERBOSE) process.stderr.write(`${line}\n`);
    },
  });
  const table = renderTable(report);
  for (const line of table.split("\n")) t.diagnostic(line);
  const why = `${table}\n\nprogress:\n${progress.join("\n")}\n\ndetails: ${JSON.stringify(report.details, null, 2)}`;
  return { report, why };
}
