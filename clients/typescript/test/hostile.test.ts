// The client against fake servers that misbehave on purpose.

import { afterEach, describe, expect, test } from "bun:test";
import { chownSync } from "node:fs";
import { join } from "node:path";

import { connect, type IpcClient } from "../src/client.js";
import { HEADER_LEN } from "../src/codec.js";
import { fakeServer, frameOf, rejection, tempDir } from "./helpers.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function serve(onConnection: Parameters<typeof fakeServer>[0]) {
  const fake = await fakeServer(onConnection);
  cleanups.push(fake.close);
  return fake;
}

async function client(path: string, options = {}): Promise<IpcClient> {
  const c = await connect(path, options);
  cleanups.push(() => c.close());
  return c;
}

const header = (n: number) => {
  const h = new Uint8Array(HEADER_LEN);
  new DataView(h.buffer).setUint32(0, n, true);
  return h;
};

describe("connecting", () => {
  test("a missing socket is not_running, naming the path", async () => {
    const { dir, remove } = tempDir();
    cleanups.push(remove);
    const path = join(dir, "nobody.sock");
    const e = await rejection(connect(path));
    expect(e.kind).toBe("not_running");
    expect(e.message).toContain(path);
    expect(e.endpoint).toBe(path);
    // Without verifyServer the connect itself finds nobody.
    const e2 = await rejection(connect(path, { verifyServer: false }));
    expect(e2.kind).toBe("not_running");
    expect(e2.message).toContain(path);
  });

  test("a server at its connection limit: refused", async () => {
    const fake = await serve(({ socket }) => {
      socket.end(frameOf({ Error: { message: "server busy: 512 connections open; try again later" } }));
    });
    const c = await client(fake.path);
    const e = await rejection(c.request("List"));
    expect(e.kind).toBe("refused");
    expect(e.message).toContain("server busy");
    expect((await rejection(c.request("List"))).kind).toBe("refused");
  });

  test("another user's socket: server_identity (needs root to chown)", async () => {
    if (process.getuid?.() !== 0) {
      console.warn("skipped: chown to another uid needs root");
      return;
    }
    const fake = await serve(() => {});
    chownSync(fake.path, 65534, 65534);
    const e = await rejection(connect(fake.path));
    expect(e.kind).toBe("server_identity");
    expect(e.message).toContain(fake.path);
    expect(e.message).toContain("uid 65534");
    // The same socket in another user's directory.
    chownSync(fake.path, 0, 0);
    const dir = join(fake.path, "..");
    chownSync(dir, 65534, 65534);
    const e2 = await rejection(connect(fake.path));
    expect(e2.kind).toBe("server_identity");
    expect(e2.message).toContain("directory");
    chownSync(dir, 0, 0);
    // verifyServer: false skips the check.
    const c = await client(fake.path, { verifyServer: false });
    expect(c.connected).toBe(true);
  });
});

describe("hostile replies", () => {
  test("an oversize header fails the request with frame_too_large and ends the connection", async () => {
    const fake = await serve(async (conn) => {
      await conn.next();
      conn.socket.write(header(0xffff_ffff));
      conn.socket.write(new Uint8Array(1000));
    });
    const c = await client(fake.path);
    const e = await rejection(c.request("List"));
    expect(e.kind).toBe("frame_too_large");
    expect(e.message).toContain("exceeds maximum allowed size 10485760");
    expect(e.message).toContain(fake.path);
    expect(c.connected).toBe(false);
    expect((await rejection(c.request("List"))).kind).toBe("frame_too_large");
  });

  test("a frame cut off by the server leaving: truncated", async () => {
    const fake = await serve(async (conn) => {
      await conn.next();
      conn.socket.end(frameOf({ Success: { message: "this frame is cut" } }).subarray(0, 12));
    });
    const c = await client(fake.path);
    const e = await rejection(c.request("List"));
    expect(e.kind).toBe("truncated");
    expect(e.message).toContain("received 12 of");
  });

  test("invalid JSON fails that request only; the next reply pairs with the next request", async () => {
    const fake = await serve(async (conn) => {
      await conn.next();
      const bad = new TextEncoder().encode("{\"Success\":{\"mess");
      conn.socket.write(new Uint8Array([...header(bad.length), ...bad]));
      await conn.next();
      conn.socket.write(header(0)); // an empty frame: also an error for its request only
      await conn.next();
      conn.socket.write(frameOf({ Success: { message: "third" } }));
    });
    const c = await client(fake.path);
    expect((await rejection(c.request("List"))).kind).toBe("invalid_message");
    expect((await rejection(c.request("List"))).kind).toBe("empty_frame");
    expect(await c.request("List")).toEqual({ Success: { message: "third" } });
    expect(c.connected).toBe(true);
  });

  test("a server that never answers: timeout, and the connection stays usable", async () => {
    let answer: (() => void) | undefined;
    const fake = await serve(async (conn) => {
      await conn.next(); // never answered...
      const second = await conn.next();
      answer = () => {
        // ...until the second request: the late reply to the first comes, then the second's.
        conn.socket.write(frameOf({ Success: { message: "late reply to the first" } }));
        conn.socket.write(frameOf({ Data: { data: { answer: JSON.stringify(second) } } }));
      };
    });
    const c = await client(fake.path);
    const e = await rejection(c.request({ Stop: { name: "slow" } }, { timeoutMs: 50 }));
    expect(e.kind).toBe("timeout");
    expect(e.message).toContain("timeout after 50ms");
    expect(e.message).toContain(fake.path);
    const second = c.request({ Status: { name: "web" } });
    while (answer === undefined) await new Promise((r) => setImmediate(r));
    answer();
    expect(await second).toEqual({ Data: { data: { answer: JSON.stringify({ Status: { name: "web" } }) } } });
    expect(c.discardedReplies).toBe(1);
  });

  test("an aborted request's late reply is not handed to the next request", async () => {
    const fake = await serve(async (conn) => {
      await conn.next();
      await conn.next();
      conn.socket.write(frameOf({ Success: { message: "for the aborted one" } }));
      conn.socket.write(frameOf({ Success: { message: "for the second" } }));
    });
    const c = await client(fake.path);
    const controller = new AbortController();
    const first = c.request({ Stop: { name: "a" } }, { signal: controller.signal });
    controller.abort(new Error("user gave up"));
    const e = await rejection(first);
    expect(e.kind).toBe("aborted");
    expect((e.cause as Error).message).toBe("user gave up");
    expect(await c.request({ Stop: { name: "b" } })).toEqual({ Success: { message: "for the second" } });
    // An already aborted signal sends nothing.
    expect((await rejection(c.request("List", { signal: AbortSignal.abort() }))).kind).toBe("aborted");
  });

  test("pipelined requests are paired first in, first out", async () => {
    const fake = await serve(async (conn) => {
      for (;;) {
        const m = await conn.next();
        conn.socket.write(frameOf({ Success: { message: JSON.stringify(m) } }));
      }
    });
    const c = await client(fake.path);
    const messages = Array.from({ length: 64 }, (_, i) => ({ Stop: { name: `app-${i}` } }));
    const replies = await Promise.all(messages.map((m) => c.request(m)));
    expect(replies).toEqual(messages.map((m) => ({ Success: { message: JSON.stringify(m) } })));
  });

  test("events that arrive while a request waits are kept, in order; overflow gives lagged", async () => {
    const fake = await serve(async (conn) => {
      await conn.next();
      for (let i = 0; i < 5; i++) conn.socket.write(frameOf({ Event: { event_type: "log_line", data: { n: i } } }));
      conn.socket.write(frameOf({ Success: { message: "subscribed" } }));
      conn.socket.end();
    });
    const c = await client(fake.path, { maxPendingEvents: 2 });
    await c.subscribe({ AllEvents: { app_name: null } });
    const seen = [];
    let ended;
    try {
      for await (const e of c.events()) seen.push(e);
    } catch (e) {
      ended = e;
    }
    expect(seen).toEqual([
      { event_type: "lagged", data: { missed: 3 } },
      { event_type: "log_line", data: { n: 3 } },
      { event_type: "log_line", data: { n: 4 } },
    ]);
    expect((ended as { kind: string }).kind).toBe("closed");
  });

  test("a request over maxMessageSize is refused before sending; the connection stays usable", async () => {
    const fake = await serve(async (conn) => {
      for (;;) {
        await conn.next();
        conn.socket.write(frameOf({ Data: { data: [] } }));
      }
    });
    const c = await client(fake.path, { maxMessageSize: 64 });
    const e = await rejection(c.request({ Start: { name: "web", config: "x".repeat(100) } }));
    expect(e.kind).toBe("frame_too_large");
    expect(c.inFlight).toBe(0);
    expect(await c.request("List")).toEqual({ Data: { data: [] } });
  });

  test("close() rejects waiting requests with closed and ends events()", async () => {
    const fake = await serve(async (conn) => {
      await conn.next();
    });
    const c = await client(fake.path);
    const waiting = rejection(c.request("List"));
    const events = (async () => {
      const seen = [];
      for await (const e of c.events()) seen.push(e);
      return seen;
    })();
    await c.close();
    expect((await waiting).kind).toBe("closed");
    expect(await events).toEqual([]);
    expect((await rejection(c.request("List"))).kind).toBe("closed");
  });
});

describe("positions and losses", () => {
  test("events keep their positions, and a dropped lagged notice counts all it announced", async () => {
    // While a request waits: a notice of 100 lost events (positions 5 to 300), then more
    // events than the client holds back, so that the notice itself is what it drops.
    const held = 8;
    const fake = await serve(async ({ socket, next }) => {
      await next();
      socket.write(frameOf({ Event: { event_type: "lagged", data: { missed: 100, first_seq: 5, last_seq: 300 } } }));
      for (let n = 0; n < held; n++) {
        socket.write(frameOf({ Event: { event_type: "log_line", data: { n }, seq: 301 + n } }));
      }
      socket.write(frameOf({ Success: { message: "ok" } }));
    });
    const c = await client(fake.path, { maxPendingEvents: held });
    expect(await c.request("List")).toEqual({ Success: { message: "ok" } });
    const notice = await c.nextEvent();
    expect(notice).toEqual({ event_type: "lagged", data: { missed: 100, first_seq: 5, last_seq: 300 } });
    for (let n = 0; n < held; n++) {
      expect(await c.nextEvent()).toEqual({ event_type: "log_line", data: { n }, seq: 301 + n });
    }
  });

  test("an event without a position (an old server) has none", async () => {
    const fake = await serve(async ({ socket, next }) => {
      await next();
      socket.write(frameOf({ Event: { event_type: "log_line", data: "x" } }));
      socket.write(frameOf({ Success: { message: "ok" } }));
    });
    const c = await client(fake.path);
    await c.request("List");
    const event = await c.nextEvent();
    expect(event).toEqual({ event_type: "log_line", data: "x" });
    expect("seq" in event).toBe(false);
  });
});
