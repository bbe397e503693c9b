// A live dashboard: the apps and their state, then every status change as it happens.
//   bun examples/watch.ts [SOCKET]        (default: the current user's daemon)
import { connect, IpcError, type JsonValue } from "../src/index.js";

type Row = { name: string; state: string; pid: number | null; restarts: number };

const client = await connect(process.argv[2] ?? process.env.BUNCTL_SOCKET).catch((e: unknown) => {
  console.error(e instanceof IpcError ? e.message : e);
  process.exit(2);
});
await client.subscribe({ StatusEvents: { app_name: null } }); // first, so that nothing is missed

const rows = (await client.status()) as unknown as Row[];
console.log(`${rows.length} app(s) at ${client.endpoint}`);
for (const r of rows) console.log(`  ${r.name.padEnd(16)} ${r.state.padEnd(9)} pid ${r.pid ?? "-"}  restarts ${r.restarts}`);

process.on("SIGINT", () => void client.close());
try {
  for await (const { event_type, data } of client.events()) {
    const d = data as Record<string, JsonValue>;
    const time = new Date().toISOString().slice(11, 23);
    if (event_type === "lagged") console.log(`${time}  (missed ${d.missed} events)`);
    else if (event_type === "status_change") console.log(`${time}  ${d.app} is ${d.state}`);
    else if (event_type === "process_started") console.log(`${time}  ${d.app} started, pid ${d.pid}`);
    else if (event_type === "process_exited") console.log(`${time}  ${d.app} exited, code ${d.exit_code ?? "-"}, signal ${d.signal ?? "-"}`);
    else console.log(`${time}  ${event_type} ${JSON.stringify(d)}`);
  }
} catch (e) {
  console.error(e instanceof IpcError && e.kind === "closed" ? "the daemon went away" : e);
  process.exitCode = 1;
}
