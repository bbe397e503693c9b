// Protocol 1 (hello, follow) against fake servers: two kinds of protocol 0 server, and one of
// protocol 1 that sends replayed and live events and the notices a follower must count.

import { afterEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";

import { CLIENT_NAME, connect, type Follower, type IpcClient } from "../src/client.js";
import { requestDecoder } from "../src/codec.js";
import type { IpcError } from "../src/errors.js";
import { readServerInfo, type Cursor, type Follow, type IpcEvent, type IpcRequest, type IpcResponse, type JsonValue } from "../src/types.js";
import { fakeServer, frameOf, rejection, type FakeConnection } from "./helpers.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function client(path: string, options = {}): Promise<IpcClient> {
  const c = await connect(path, options);
  cleanups.push(() => c.close());
  return c;
}

/** What a fake server was sent, per connection: each request's name, `unreadable` for the rest. */
type Log = string[][];
const nameOf = (m: IpcRequest) => (typeof m === "string" ? m : (Object.keys(m)[0] as string));

const LOGS = { LogEvents: { app_name: null } } as const;
const event = (line: string, seq?: number): IpcEvent =>
  seq === undefined ? { event_type: "log_line", data: { line } } : { event_type: "log_line", data: { line }, seq };
const notice = (data: JsonValue): IpcEvent => ({ event_type: "lagged", data });
const send = (conn: FakeConnection, ...responses: IpcResponse[]) => {
  for (const r of responses) conn.socket.write(frameOf(r));
};

/** The events a follower yields next, each with its cursor right after it was yielded. */
async function steps(feed: Follower, n: number): Promise<Array<{ event: IpcEvent; cursor: Cursor | null }>> {
  const out = [];
  if (n === 0) return [];
  for await (const e of feed) {
    out.push({ event: e, cursor: feed.cursor });
    if (out.length === n) break;
  }
  return out;
}

/**
 * A protocol 0 server: it reads the brief's messages only, reacts to any other frame with
 * `onUnreadable`, answers `Subscribe` with `Success` and two events (no positions), and
 * anything else with empty `Data`.
 */
async function oldServer(onUnreadable: (conn: FakeConnection, error: IpcError) => void) {
  const log: Log = [];
  const fake = await fakeServer(async (conn) => {
    const seen: string[] = [];
    log.push(seen);
    for (;;) {
      const frame = await conn.nextFrame();
      seen.push(frame.ok ? nameOf(frame.value) : "unreadable");
      if (!frame.ok) onUnreadable(conn, frame.error);
      else if (nameOf(frame.value) === "Subscribe") send(conn, { Success: { message: "subscribed" } }, { Event: event("one") }, { Event: event("two") });
      else send(conn, { Data: { data: [] } });
    }
  });
  cleanups.push(fake.close);
  return { path: fake.path, log };
}

const oldServers = [
  {
    kind: "answers Error to a frame it cannot read (bunctl-ipc before protocol 1)",
    onUnreadable: (conn: FakeConnection, error: IpcError) => send(conn, { Error: { message: error.message } }),
    connections: 1,
  },
  {
    kind: "closes the connection on a frame it cannot read (bunctl's daemon)",
    onUnreadable: (conn: FakeConnection) => conn.socket.destroy(),
    connections: 2,
  },
];

for (const old of oldServers) {
  describe(`a protocol 0 server that ${old.kind}`, () => {
    test("hello() gives protocol 0 and the client stays usable", async () => {
      const server = await oldServer(old.onUnreadable);
      const c = await client(server.path);
      expect(c.serverInfo).toBeNull();
      // Two at once share one Hello, so the client connects again at most once.
      const [info, again] = await Promise.all([c.hello(), c.hello()]);
      expect(info).toEqual(readServerInfo({}) as never);
      expect(info).toMatchObject({ protocol: 0, features: [] });
      expect(again).toBe(info);
      expect(c.serverInfo).toBe(info);
      expect(c.connected).toBe(true);
      expect(await c.list()).toEqual([]);
      expect(server.log).toHaveLength(old.connections);
      expect(server.log.flat()).toEqual(["unreadable", "List"]);
    });

    test("follow with history or after rejects with unsupported, naming what it cannot do", async () => {
      const server = await oldServer(old.onUnreadable);
      const c = await client(server.path);
      const history = await rejection(c.follow(LOGS, { history: 10 }));
      expect(history.kind).toBe("unsupported");
      expect(history.message).toContain("the daemon does not support history (it speaks protocol 0)");
      expect(history.recoverable).toBe(true);
      const after = await rejection(c.follow(LOGS, { after: { instance: "ab", seq: 3 } }));
      expect(after.kind).toBe("unsupported");
      expect(after.message).toContain("the daemon does not support following from a cursor (it speaks protocol 0)");
      // Hello was said once, nothing else was sent, and the connection is still good.
      expect(await c.list()).toEqual([]);
      expect(server.log.flat()).toEqual(["unreadable", "List"]);
    });

    test("a plain follow falls back to Subscribe and yields live events, with no cursor", async () => {
      const server = await oldServer(old.onUnreadable);
      const c = await client(server.path);
      const feed = await c.follow(LOGS);
      expect(feed.start).toBeNull();
      expect(feed.cursor).toBeNull();
      expect(await steps(feed, 2)).toEqual([
        { event: event("one"), cursor: null },
        { event: event("two"), cursor: null },
      ]);
      expect(server.log).toHaveLength(old.connections);
      expect(server.log.flat()).toEqual(["unreadable", "Subscribe"]);
    });
  });
}

const BUS = "5f0c2b8e9a7d4e31b6f2a90c1d3e7b48";
const OLD_BUS = "0123456789abcdef0123456789abcdef";

/**
 * A protocol 1 server whose bus is `BUS` at position 40. Before answering a Follow it sends an
 * event of the subscription the Follow replaces; after it, `then(follow)`.
 */
async function protocol1Server(then: (follow: Follow) => IpcResponse[]) {
  const requests: IpcRequest[] = [];
  const fake = await fakeServer(async (conn) => {
    for (;;) {
      const m = await conn.next();
      requests.push(m);
      if (typeof m === "object" && m.Hello !== undefined) {
        // Fields left out take their defaults; unknown ones are ignored.
        send(conn, { Data: { data: { protocol: 1, server: "fake 1.0", instance: BUS, seq: 40, features: ["follow"], pid: 7, from_the_future: true } } });
      } else if (typeof m === "object" && m.Follow !== undefined) {
        send(conn, { Event: event("of the replaced subscription", 12) });
        send(conn, { Data: { data: { instance: BUS, seq: 40 } } }, ...then(m.Follow));
      } else {
        send(conn, { Error: { message: "not in this test" } });
      }
    }
  }, requestDecoder);
  cleanups.push(fake.close);
  return { path: fake.path, requests };
}

describe("a protocol 1 server", () => {
  test("the client names itself with the package's version", () => {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
    expect(CLIENT_NAME).toBe(`bunctl-ipc-ts ${pkg.version}`);
  });

  test("hello() gives its ServerInfo, read leniently, and keeps it", async () => {
    const server = await protocol1Server(() => []);
    const c = await client(server.path);
    const info = await c.hello({ client: "dashboard 2.0" });
    expect(info).toEqual({
      protocol: 1,
      server: "fake 1.0",
      instance: BUS,
      seq: 40,
      features: ["follow"],
      pid: 7,
      uptime_ms: 0,
      connections: null,
      subscribers: 0,
      published: 0,
      lost: 0,
    });
    expect(c.serverInfo).toBe(info);
    expect(server.requests).toEqual([{ Hello: { protocol: 1, client: "dashboard 2.0" } }]);
  });

  test("history: replayed then live events and lagged notices, the cursor after each (notices leave it)", async () => {
    const server = await protocol1Server(() => [
      { Event: event("replayed", 39) },
      { Event: event("replayed", 40) },
      { Event: event("live", 41) },
      { Event: notice({ missed: 3, first_seq: 42, last_seq: 50 }) },
      { Event: event("live", 51) },
      { Event: notice({ missed: 2 }) }, // merged by a client: no range
      { Event: event("live", 52) },
    ]);
    const c = await client(server.path);
    const feed = await c.follow(LOGS, { history: 2 });
    expect(feed.start).toEqual({ instance: BUS, seq: 40 });
    expect(feed.cursor).toEqual({ instance: BUS, seq: 40 }); // the boundary, until the first event
    const at = (seq: number) => ({ instance: BUS, seq });
    expect(await steps(feed, 7)).toEqual([
      { event: event("replayed", 39), cursor: at(39) },
      { event: event("replayed", 40), cursor: at(40) },
      { event: event("live", 41), cursor: at(41) },
      // Notices leave the cursor where it was.
      { event: notice({ missed: 3, first_seq: 42, last_seq: 50 }), cursor: at(41) },
      { event: event("live", 51), cursor: at(51) },
      { event: notice({ missed: 2 }), cursor: at(51) },
      { event: event("live", 52), cursor: at(52) },
    ]);
    expect(server.requests).toEqual([
      { Hello: { protocol: 1, client: CLIENT_NAME } },
      { Follow: { subscription: LOGS, history: 2, after: null, instance: null } },
    ]);
  });

  test("live only: the cursor starts at the boundary", async () => {
    const server = await protocol1Server(() => [{ Event: event("live", 41) }]);
    const c = await client(server.path);
    const feed = await c.follow(LOGS);
    expect(feed.cursor).toEqual({ instance: BUS, seq: 40 });
    expect(await steps(feed, 1)).toEqual([{ event: event("live", 41), cursor: { instance: BUS, seq: 41 } }]);
    expect(server.requests.at(-1)).toEqual({ Follow: { subscription: LOGS, history: null, after: null, instance: null } });
  });

  test("after a cursor of a bus that is gone: reset, then positions start over on the new bus", async () => {
    const server = await protocol1Server(() => [
      { Event: { event_type: "reset", data: { instance: BUS } } },
      { Event: event("kept", 1) },
      { Event: event("kept", 2) },
      { Event: event("live", 41) },
    ]);
    const c = await client(server.path);
    const feed = await c.follow(LOGS, { after: { instance: OLD_BUS, seq: 1190 } });
    expect(feed.cursor).toEqual({ instance: OLD_BUS, seq: 1190 });
    const at = (seq: number) => ({ instance: BUS, seq });
    expect(await steps(feed, 4)).toEqual([
      { event: { event_type: "reset", data: { instance: BUS } }, cursor: at(0) },
      { event: event("kept", 1), cursor: at(1) },
      { event: event("kept", 2), cursor: at(2) },
      { event: event("live", 41), cursor: at(41) },
    ]);
    expect(server.requests.at(-1)).toEqual({ Follow: { subscription: LOGS, history: null, after: 1190, instance: OLD_BUS } });
  });

  test("a reset held behind more events than the client keeps is never dropped", async () => {
    // The server answers the next request after the events: all are held once it resolves.
    const events = Array.from({ length: 10 }, (_, i) => ({ Event: event("kept", i + 1) }));
    const server = await protocol1Server(() => [{ Event: { event_type: "reset", data: { instance: BUS } } }, ...events]);
    const c = await client(server.path, { maxPendingEvents: 4 });
    const feed = await c.follow(LOGS, { after: { instance: OLD_BUS, seq: 7 } });
    expect(await c.request("List")).toEqual({ Error: { message: "not in this test" } });
    const at = (seq: number) => ({ instance: BUS, seq });
    expect(await steps(feed, 5)).toEqual([
      { event: { event_type: "reset", data: { instance: BUS } }, cursor: at(0) },
      { event: notice({ missed: 7, first_seq: 1, last_seq: 7 }), cursor: at(0) },
      { event: event("kept", 8), cursor: at(8) },
      { event: event("kept", 9), cursor: at(9) },
      { event: event("kept", 10), cursor: at(10) },
    ]);
  });

  test("a Follow answered with Error is refused; an answer that is no FollowStart is unexpected", async () => {
    const requests: IpcRequest[] = [];
    const fake = await fakeServer(async (conn) => {
      for (;;) {
        const m = await conn.next();
        requests.push(m);
        if (nameOf(m) === "Hello") send(conn, { Data: { data: { protocol: 1, features: ["follow"] } } });
        else if (requests.length === 2) send(conn, { Error: { message: "history and after cannot be combined" } });
        else send(conn, { Data: { data: { seq: 3 } } });
      }
    }, requestDecoder);
    cleanups.push(fake.close);
    const c = await client(fake.path);
    // Both at once, as a JavaScript caller may pass them: the server decides.
    const both = { history: 1, after: { instance: BUS, seq: 3 } } as never;
    const refused = await rejection(c.follow(LOGS, both));
    expect(refused.kind).toBe("refused");
    expect(refused.message).toContain("history and after cannot be combined");
    expect(requests[1]).toEqual({ Follow: { subscription: LOGS, history: 1, after: 3, instance: BUS } });
    expect((await rejection(c.follow(LOGS))).kind).toBe("unexpected_reply");
  });
});
