/**
 * The runner as a process, without a principal: an invalid file exits 2 naming file, line and
 * field. (The runner against a real principal is tested in e2e/src/listeners.)
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { makeTempDir, removeTempDirs } from "@cdktr/test-utils";

const MAIN = fileURLToPath(new URL("../main.js", import.meta.url));

describe("listeners runner", () => {
  after(() => removeTempDirs());

  test("an invalid config exits 2 and names file, line and field", async () => {
    const home = makeTempDir("cdktr-runner-");
    writeFileSync(join(home, "listeners.yml"), `listeners:\n  - type: webhook\n    prot: 8080\n`);
    const out = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [MAIN],
        { cwd: home, env: { PATH: process.env.PATH ?? "", HOME: home } },
        (err, _stdout, stderr) => {
          resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : null, stderr });
        },
      );
    });
    assert.equal(out.code, 2);
    assert.match(out.stderr, /listeners\.yml:3:5: listeners\[0\]\.prot: unknown field \(did you mean `port`\?\)/);
  });
});
