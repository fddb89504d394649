/**
 * Baseline for the scheduler scenario: a bare node process arms a timer for each second
 * boundary and, when it fires, records `count` occurrences' lateness (now - boundary), for
 * `seconds` seconds. Prints one JSON line `{message:"done", lateness:[...]}`.
 *
 *   node timer-lateness.js <count> <seconds>
 */
const count = Number(process.argv[2] ?? "500");
const seconds = Number(process.argv[3] ?? "5");
const lateness: number[] = [];
let left = seconds;

function arm(): void {
  const now = Date.now();
  const target = Math.floor(now / 1000) * 1000 + 1000;
  setTimeout(() => {
    for (let i = 0; i < count; i++) lateness.push(Date.now() - target);
    if (--left > 0) arm();
    else process.stdout.write(`${JSON.stringify({ message: "done", lateness })}\n`);
  }, target - now);
}
arm();
