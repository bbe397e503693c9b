// End to end against the real Rust daemon (`bunctl-ipc serve`), each test on its own socket.

import { afterEach, describe, expect, test } from "bun:test";

import { connect, type IpcClient } from "../src/client.js";
import type { IpcEvent } from "../src/types.js";
import { connectWhenReady, rejection, startDaemon, waitForEvent, type Daemon } from "./helpers.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function daemon(): Promise<Daemon> {
  const d = await startDaemon();
  cleanups.push(d.stop);
  return d;
}

async function client(path: string, options = {}): Promise<IpcClient> {
  const c = await connectWhenReady(path, options);
  cleanups.push(() => c.close());
  return c;
}

const sh = (script: string) => JSON.stringify({ command: "sh", args: ["-c", script] });
const about = (app: string, type: string, more: (data: Record<string, unknown>) => boolean = () => true) =>
  (e: IpcEvent) => {
    const data = e.data as Record<string, unknown>;
    return e.event_type === type && data?.app === app && more(data);
  };

/**
 * A daemon running the app "stubborn", which ignores SIGTERM, so that a Stop waits the daemon's
 * grace period (5 s) before SIGKILL; resolves once the app is ready, with a client connected.
 */
async function stubbornApp(): Promise<{ d: Daemon; c: IpcClient }> {
  const d = await daemon();
  const c = await client(d.path);
  const watcher = await client(d.path);
  await watcher.subscribe({ LogEvents: { app_name: "stubborn" } });
  await c.start("stubborn", sh("trap '' TERM; echo ready; sleep 30"));
  await waitForEvent(watcher, about("stubborn", "log_line", (x) => x.line === "ready"));
  return { d, c };
}

describe("against bunctl-ipc serve", () => {
  test("list, status, start, logs, stop, restart, delete", async () => {
    const d = await daemon();
    const c = await client(d.path);
    const watcher = await client(d.path);
    await watcher.subscribe({ AllEvents: { app_name: "web" } });

    expect(await c.request("List")).toEqual({ Data: { data: [] } });
    expect(await c.request({ Start: { name: "web", config: sh("echo hello from web; sleep 30") } })).toEqual({
      Success: { message: expect.stringContaining("web") },
    } as never);
    await waitForEvent(watcher, about("web", "log_line", (x) => x.line === "hello from web"));

    expect(await c.request("List")).toEqual({ Data: { data: ["web"] } });
    const status = await c.status("web");
    expect(status).toMatchObject({ name: "web", state: "running", restarts: 0 });
    expect(await c.status()).toMatchObject([{ name: "web" }]);
    expect(await c.logs("web", 10)).toMatchObject([{ app: "web", stream: "stdout", line: "hello from web" }]);

    expect(await c.stop("web")).toContain("web");
    expect(await c.status("web")).toMatchObject({ state: "stopped" });
    expect(await c.restart("web")).toContain("web");
    expect(await c.status("web")).toMatchObject({ state: "running", restarts: 1 });
    expect(await c.delete("web")).toContain("web");
    expect(await c.list()).toEqual([]);

    const unknown = await c.request({ Status: { name: "nope" } });
    expect(unknown).toEqual({ Error: { message: "unknown app: nope" } });
    const e = await rejection(c.stop("nope"));
    expect(e.kind).toBe("refused");
    expect(e.message).toContain("unknown app: nope");
    const bad = await c.request({ Start: { name: "x", config: "{\"commnd\":\"sh\"}" } });
    expect("Error" in bad).toBe(true);
  }, 30_000);

  test("a subscriber receives a real app's log_line and status_change events", async () => {
    const d = await daemon();
    const c = await client(d.path);
    const watcher = await client(d.path);
    await watcher.subscribe({ AllEvents: { app_name: null } });
    await c.start("api", { command: "sh", args: ["-c", "echo one; echo two >&2; exit 3"] });
    const seen = await waitForEvent(watcher, about("api", "process_exited"));
    const types = seen.map((e) => e.event_type);
    expect(types).toContain("process_started");
    expect(types).toContain("status_change");
    const lines = seen.filter((e) => e.event_type === "log_line");
    expect(lines.map((e) => e.data)).toContainEqual({ app: "api", stream: "stdout", line: "one" });
    expect(lines.map((e) => e.data)).toContainEqual({ app: "api", stream: "stderr", line: "two" });
    // Every event has its position on the daemon's bus, and they only grow.
    const positions = seen.map((e) => e.seq ?? -1);
    expect(positions.every((p, i) => p > 0 && (i === 0 || p > (positions[i - 1] as number)))).toBe(true);
    expect(seen.at(-1)?.data).toMatchObject({ app: "api", exit_code: 3 });
    await waitForEvent(watcher, about("api", "status_change", (x) => x.state === "exited"));

    // A status-only subscription of one app gets no log lines.
    const statusOnly = await client(d.path);
    await statusOnly.subscribe({ StatusEvents: { app_name: "api" } });
    await c.restart("api");
    const after = await waitForEvent(statusOnly, about("api", "process_exited"));
    expect(after.every((e) => e.event_type !== "log_line")).toBe(true);
  }, 30_000);

  test("one connection both requests and watches: events around replies are kept, in order", async () => {
    const d = await daemon();
    const c = await client(d.path);
    await c.subscribe({ AllEvents: { app_name: null } });
    await c.start("both", sh("echo first; echo second; echo third; sleep 30"));
    // Requests keep working while events arrive; their replies are never taken for events.
    for (let i = 0; i < 5; i++) expect(await c.list()).toEqual(["both"]);
    const seen = await waitForEvent(c, about("both", "log_line", (x) => x.line === "third"));
    const lines = seen.filter((e) => e.event_type === "log_line").map((e) => (e.data as { line: string }).line);
    expect(lines).toEqual(["first", "second", "third"]);
    const started = seen.findIndex((e) => e.event_type === "process_started");
    const firstLine = seen.findIndex((e) => e.event_type === "log_line");
    expect(started).toBeGreaterThanOrEqual(0);
    expect(started).toBeLessThan(firstLine); // the daemon publishes process_started first
    expect(c.discardedReplies).toBe(0);
  }, 30_000);

  test("a timed-out request's late reply does not reach the next request", async () => {
    const { d, c } = await stubbornApp();

    const e = await rejection(c.request({ Stop: { name: "stubborn" } }, { timeoutMs: 200 }));
    expect(e.kind).toBe("timeout");
    expect(e.message).toContain(d.path);
    // The Stop reply comes first on this connection; it must be dropped, not given to List.
    expect(await c.request("List")).toEqual({ Data: { data: ["stubborn"] } });
    expect(c.discardedReplies).toBe(1);
    expect(await c.status("stubborn")).toMatchObject({ state: "stopped" });
  }, 30_000);

  test("an aborted request's reply does not reach the next request", async () => {
    const { c } = await stubbornApp();

    const controller = new AbortController();
    const stopping = c.request({ Stop: { name: "stubborn" } }, { signal: controller.signal });
    const status = c.request({ Status: { name: "stubborn" } }); // pipelined behind the Stop
    controller.abort();
    expect((await rejection(stopping)).kind).toBe("aborted");
    const reply = await status;
    expect(reply).toMatchObject({ Data: { data: { name: "stubborn" } } });
    expect(c.discardedReplies).toBe(1);
  }, 30_000);

  test("sixteen requests in flight on one connection get their own replies", async () => {
    const d = await daemon();
    const c = await client(d.path);
    const requests = Array.from({ length: 16 }, (_, i) =>
      i % 2 === 0 ? c.request("List") : c.request({ Status: { name: `missing-${i}` } }),
    );
    const replies = await Promise.all(requests);
    replies.forEach((r, i) => {
      if (i % 2 === 0) expect(r).toEqual({ Data: { data: [] } });
      else expect(r).toEqual({ Error: { message: `unknown app: missing-${i}` } });
    });
  });

  test("the daemon stopping mid-stream ends events() with closed", async () => {
    const d = await daemon();
    const c = await client(d.path);
    const watcher = await client(d.path);
    await watcher.subscribe({ AllEvents: { app_name: null } });
    await c.start("web", sh("echo up; sleep 30"));
    await waitForEvent(watcher, about("web", "log_line"));
    const ended = (async () => {
      try {
        for await (const _ of watcher.events()) {
          // drain until the daemon goes away
        }
        return null;
      } catch (e) {
        return e as { kind: string };
      }
    })();
    d.process.kill("SIGTERM");
    expect((await ended)?.kind).toBe("closed");
    await d.exited;
    const e = await rejection(connect(d.path));
    expect(e.kind).toBe("not_running");
  }, 30_000);
});
