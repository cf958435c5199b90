// The same two workloads as `cargo run --release --example bench_report`, on Node:
//   burst:      enqueue N no-op tasks (random priorities, concurrency 3), then await all;
//               reported as tasks completed per second while the backlog is that deep.
//   round trip: one task in flight at a time (enqueue, run, await).
// Daydreams re-sorts its queue on every dequeue, so a 100k burst would take many minutes:
// its burst is time-boxed (BOX_MS) and the rate is what completed in the box.
//
// Usage: npm install && node run.mjs
import { TaskRunner, task, Logger, LogLevel } from "@daydreamsai/core";
import PQueue from "p-queue";

const BURST = Number(process.env.BURST ?? 100_000);
const TRIPS = Number(process.env.TRIPS ?? 20_000);
const BOX_MS = Number(process.env.BOX_MS ?? 20_000);
const ROUNDS = Number(process.env.ROUNDS ?? 3);

const priority = (i) => Number((BigInt(i) * 0x9e3779b97f4a7c15n) >> 59n & 15n) - 8;
const noop = task({ key: "noop", handler: async (i) => i });
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// Run in a child process, reporting progress, and killed when the box ends: abort does not
// remove Daydreams' queued tasks, so a backlog left behind would starve everything after it.
async function daydreamsBurst() {
  const { fork } = await import("node:child_process");
  const child = fork(new URL(import.meta.url).pathname, ["--daydreams-burst"], { stdio: ["ignore", "ignore", "inherit", "ipc"] });
  let last = { done: 0, ms: 0 };
  child.on("message", (m) => (last = m));
  const finished = new Promise((r) => child.on("exit", r));
  const timer = setTimeout(() => child.kill("SIGKILL"), BOX_MS);
  await finished;
  clearTimeout(timer);
  return { rate: last.done / (last.ms / 1000), done: last.done, seconds: last.ms / 1000 };
}

if (process.argv.includes("--daydreams-burst")) {
  const runner = new TaskRunner(3, new Logger({ level: LogLevel.ERROR }));
  let done = 0;
  const start = performance.now();
  const report = () => process.send({ done, ms: performance.now() - start });
  for (let i = 0; i < BURST; i++) {
    runner.enqueueTask(noop, i, { priority: priority(i) }).then(() => {
      if (++done % 100 === 0 || done === BURST) report();
      if (done === BURST) process.exit(0);
    });
  }
  await new Promise(() => {}); // runs until done or killed
}

async function pqueueBurst() {
  const queue = new PQueue({ concurrency: 3 });
  const start = performance.now();
  const all = [];
  for (let i = 0; i < BURST; i++) all.push(queue.add(async () => i, { priority: priority(i) }));
  await Promise.all(all);
  const seconds = (performance.now() - start) / 1000;
  return { rate: BURST / seconds, done: BURST, seconds };
}

async function daydreamsTrips() {
  const runner = new TaskRunner(3, new Logger({ level: LogLevel.ERROR }));
  const start = performance.now();
  for (let i = 0; i < TRIPS; i++) await runner.enqueueTask(noop, i);
  return (performance.now() - start) * 1e6 / TRIPS; // ns per trip
}

async function pqueueTrips() {
  const queue = new PQueue({ concurrency: 3 });
  const start = performance.now();
  for (let i = 0; i < TRIPS; i++) await queue.add(async () => i);
  return (performance.now() - start) * 1e6 / TRIPS;
}

const results = {};
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, fn] of [
    ["p-queue burst", pqueueBurst],
    ["daydreams burst", daydreamsBurst],
    ["p-queue round trip", pqueueTrips],
    ["daydreams round trip", daydreamsTrips],
  ]) {
    const r = await fn();
    (results[name] ??= []).push(typeof r === "number" ? r : r.rate);
    console.error(`round ${round + 1} ${name}: ${JSON.stringify(r)}`);
  }
}

console.log(`node ${process.version}, ${ROUNDS} rounds, medians; burst ${BURST} (Daydreams time-boxed to ${BOX_MS} ms)`);
console.log("| case | median |");
console.log("|---|---:|");
for (const [name, xs] of Object.entries(results)) {
  const m = median(xs);
  console.log(name.includes("burst")
    ? `| ${name} | ${(m / 1000).toFixed(1)} k tasks/s |`
    : `| ${name} | ${(m / 1000).toFixed(1)} µs/trip |`);
}
