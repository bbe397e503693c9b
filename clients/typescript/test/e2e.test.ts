// End to end against the real Rust daemon (`bunctl-ipc serve`), each test on its own socket.

import { afterEach, describe, expect, test } from "bun:test";

import { connect, type IpcClient } from "../src/client.js";
import type { Cursor, IpcEvent } from "../src/types.js";
import { collect, connectWhenReady, rejection, startDaemon, waitForEvent, type Daemon } from "./helpers.js";

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

  test("follow: the last 10 lines, then live ones; a follower resuming from that cursor gets only what came after", async () => {
    const d = await daemon();
    const c = await client(d.path);
    const watcher = await client(d.path);
    const logs = { LogEvents: { app_name: "counter" } };
    await watcher.subscribe(logs);
    await c.start("counter", sh("i=0; while [ $i -lt 30 ]; do echo line-$i; i=$((i+1)); done; sleep 30"));
    await waitForEvent(watcher, about("counter", "log_line", (x) => x.line === "line-29"));
    const lines = (events: IpcEvent[]) => events.map((e) => (e.data as { line: string }).line);
    const numbered = (n: number) => Array.from({ length: n }, (_, i) => `line-${i}`);

    const f = await client(d.path);
    const info = await f.hello();
    // Not toMatchObject with expect.arrayContaining: Bun writes the matcher into the object it
    // checks (oven-sh/bun#3521), and `info` is the client's own record of the server.
    expect(info.protocol).toBe(1);
    expect(info.features).toContain("follow");
    expect(info.instance).toMatch(/^[0-9a-f]{32}$/);
    const feed = await f.follow(logs, { history: 10 });
    expect(feed.start?.instance).toBe(info.instance);
    const boundary = feed.start?.seq ?? -1;
    expect(feed.cursor).toEqual({ instance: info.instance, seq: boundary }); // until the first event

    const replayed = await collect(feed, (_e, seen) => seen.length === 10);
    expect(lines(replayed)).toEqual(numbered(30).slice(20));
    expect(replayed.every((e) => e.seq !== undefined && e.seq <= boundary)).toBe(true);
    const resumeFrom = feed.cursor;
    expect(resumeFrom).toEqual({ instance: info.instance, seq: replayed.at(-1)?.seq as number });

    // Live: the app runs again and prints its lines anew, after the boundary.
    await c.restart("counter");
    const live = await collect(feed, (e) => (e.data as { line?: string }).line === "line-29");
    expect(lines(live)).toEqual(numbered(30));
    expect(live.every((e) => e.seq !== undefined && e.seq > boundary)).toBe(true);
    const positions = [...replayed, ...live].map((e) => e.seq as number);
    expect(positions.every((p, i) => i === 0 || p > (positions[i - 1] as number))).toBe(true); // no repeat
    expect(feed.cursor).toEqual({ instance: info.instance, seq: positions.at(-1) as number });

    // A second follower from the first's cursor after the replay: exactly the live events.
    const g = await client(d.path);
    const resumed = await g.follow(logs, { after: resumeFrom as Cursor });
    expect(resumed.cursor).toEqual(resumeFrom);
    const again = await collect(resumed, (_e, seen) => seen.length === live.length);
    expect(again).toEqual(live);
    expect(resumed.cursor).toEqual(feed.cursor);
  }, 30_000);

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
