// Round trip and pipelined throughput of the TypeScript client against a running daemon.
//   bun bench/roundtrip.ts SOCKET [--requests N] [--pipelined N] [--in-flight K]
// Prints one JSON line: {"p50_us", "p99_us", "rps_16_in_flight", ...}. Each request is `List`,
// like `bunctl-ipc bench` without --payload.

import { connect } from "../src/index.js";

const args = process.argv.slice(2);
const path = args[0];
if (path === undefined || path.startsWith("-")) {
  console.error("usage: bun bench/roundtrip.ts SOCKET [--requests N] [--pipelined N] [--in-flight K]");
  process.exit(2);
}
const option = (name: string, fallback: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const requests = option("--requests", 20_000);
const pipelined = option("--pipelined", 100_000);
const inFlight = option("--in-flight", 16);

const client = await connect(path);
for (let i = 0; i < Math.min(2_000, requests); i++) await client.request("List"); // warm-up

const latencies = new Float64Array(requests);
for (let i = 0; i < requests; i++) {
  const start = performance.now();
  await client.request("List");
  latencies[i] = performance.now() - start;
}
latencies.sort();
const quantile = (q: number) => (latencies[Math.min(requests - 1, Math.floor(q * requests))] as number) * 1000;

const started = performance.now();
await new Promise<void>((resolve, reject) => {
  let sent = 0;
  let done = 0;
  const fire = () => {
    sent += 1;
    client.request("List").then(() => {
      done += 1;
      if (done === pipelined) resolve();
      else if (sent < pipelined) fire();
    }, reject);
  };
  for (let k = 0; k < Math.min(inFlight, pipelined); k++) fire();
});
const seconds = (performance.now() - started) / 1000;
await client.close();

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;
console.log(
  JSON.stringify({
    runtime: typeof Bun === "undefined" ? `node ${process.version}` : `bun ${Bun.version}`,
    requests,
    p50_us: round(quantile(0.5), 2),
    p99_us: round(quantile(0.99), 2),
    in_flight: inFlight,
    pipelined_requests: pipelined,
    [`rps_${inFlight}_in_flight`]: Math.round(pipelined / seconds),
  }),
);
