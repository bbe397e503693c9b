// Smoke test of the built ESM (dist/) under Node: `npm run build && node test/node-smoke.mjs`.
// Starts the Rust daemon ($BUNCTL_IPC_BIN, else target/debug/bunctl-ipc) on a temporary socket.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { IpcError, MAX_MESSAGE_SIZE, connect, defaultSocketPath, encodeMessage } from "../dist/index.js";

const bin =
  process.env.BUNCTL_IPC_BIN ?? fileURLToPath(new URL("../../../target/debug/bunctl-ipc", import.meta.url));
assert.ok(existsSync(bin), `no daemon binary at ${bin}: cargo build -p bunctl-ipc-cli, or set BUNCTL_IPC_BIN`);

const dir = mkdtempSync(join(tmpdir(), "bunctl-node-"));
const path = join(dir, "d.sock");
const daemon = spawn(bin, ["serve", "--socket", path], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, RUST_LOG: "info" } });
const exited = new Promise((resolve) => daemon.once("exit", resolve));
try {
  await new Promise((resolve, reject) => {
    let log = "";
    daemon.stderr.setEncoding("utf8");
    daemon.stderr.on("data", (t) => {
      log += t;
      if (log.includes("daemon listening")) resolve();
    });
    exited.then((code) => reject(new Error(`daemon exited (${code}): ${log}`)));
  });

  assert.equal(typeof defaultSocketPath(), "string");
  assert.equal(MAX_MESSAGE_SIZE, 10 * 1024 * 1024);
  assert.equal(encodeMessage("List").length, 10);

  const missing = await connect(join(dir, "nobody.sock")).catch((e) => e);
  assert.ok(missing instanceof IpcError && missing.kind === "not_running", String(missing));

  const client = await connect(path);
  const watcher = await connect(path);
  await watcher.subscribe({ LogEvents: { app_name: "smoke" } });
  assert.deepEqual(await client.request("List"), { Data: { data: [] } });
  await client.start("smoke", { command: "sh", args: ["-c", "echo hello from node; sleep 30"] });
  for await (const event of watcher.events()) {
    if (event.event_type === "log_line" && event.data.line === "hello from node") break;
  }
  const replies = await Promise.all(Array.from({ length: 16 }, () => client.request("List")));
  assert.ok(replies.every((r) => JSON.stringify(r) === JSON.stringify({ Data: { data: ["smoke"] } })));
  await client.delete("smoke");
  await client.close();
  await watcher.close();
  console.log("node smoke test: ok (dist/ under Node " + process.version + ")");
} finally {
  daemon.kill("SIGTERM");
  await exited;
  rmSync(dir, { recursive: true, force: true });
}
