// Test helpers: temporary sockets, a scriptable fake server, the real Rust daemon.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { connect, type ConnectOptions, type IpcClient } from "../src/client.js";
import { encodeFrame, messageDecoder, type Decoded, type FrameDecoder } from "../src/codec.js";
import { IpcError } from "../src/errors.js";
import type { IpcEvent, IpcRequest, IpcResponse } from "../src/types.js";

export function tempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "bunctl-ts-"));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The frame of a response, for fake servers. */
export const frameOf = (response: IpcResponse | unknown): Uint8Array => encodeFrame(response);

/** A connection as a fake server sees it: the decoded requests, and the socket to answer on. */
export interface FakeConnection {
  socket: Socket;
  /** Resolves with the next request from the client; frames the server cannot read are skipped. */
  next(): Promise<IpcRequest>;
  /** Resolves with the next frame from the client: a request, or why the server cannot read it. */
  nextFrame(): Promise<Decoded<IpcRequest>>;
}

/**
 * A Unix-socket server whose behaviour a test scripts per connection. It reads requests with
 * `decoder`: by default the brief's messages only, as a protocol 0 server does
 * (`requestDecoder` for protocol 1).
 */
export async function fakeServer(
  onConnection: (conn: FakeConnection) => void | Promise<void>,
  decoder: () => FrameDecoder<IpcRequest> = messageDecoder,
): Promise<{ path: string; server: Server; close: () => Promise<void> }> {
  const { dir, remove } = tempDir();
  const path = join(dir, "fake.sock");
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    const reader = decoder();
    const queue: Array<Decoded<IpcRequest>> = [];
    const waiting: Array<(frame: Decoded<IpcRequest>) => void> = [];
    socket.on("data", (chunk: Uint8Array) => {
      for (const item of reader.push(chunk)) {
        const w = waiting.shift();
        if (w) w(item);
        else queue.push(item);
      }
    });
    const nextFrame = () =>
      new Promise<Decoded<IpcRequest>>((resolve) => {
        const frame = queue.shift();
        if (frame !== undefined) resolve(frame);
        else waiting.push(resolve);
      });
    const conn: FakeConnection = {
      socket,
      nextFrame,
      next: async () => {
        for (;;) {
          const frame = await nextFrame();
          if (frame.ok) return frame.value;
        }
      },
    };
    void onConnection(conn);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    path,
    server,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      remove();
    },
  };
}

/** The `bunctl-ipc` binary: $BUNCTL_IPC_BIN, else the workspace's debug build. */
export function daemonBinary(): string {
  const fromEnv = process.env.BUNCTL_IPC_BIN;
  if (fromEnv) return fromEnv;
  const built = fileURLToPath(new URL("../../../target/debug/bunctl-ipc", import.meta.url));
  if (existsSync(built)) return built;
  throw new Error(
    "the Rust daemon is needed: run `cargo build -p bunctl-ipc-cli` or set BUNCTL_IPC_BIN (cargo xtask typescript does both)",
  );
}

export interface Daemon {
  path: string;
  process: ChildProcess;
  /** Resolves with the exit code once the daemon has exited. */
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL if it has not exited after 10 s; removes its directory. */
  stop(): Promise<void>;
}

/** Starts `bunctl-ipc serve` on a socket of its own and waits until it accepts connections. */
export async function startDaemon(): Promise<Daemon> {
  const { dir, remove } = tempDir();
  const path = join(dir, "d.sock");
  const child = spawn(daemonBinary(), ["serve", "--socket", path], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, RUST_LOG: "info", NO_COLOR: "1" },
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let log = "";
  const ready = new Promise<void>((resolve, reject) => {
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (text: string) => {
      log += text;
      if (log.includes("daemon listening")) resolve();
    });
    void exited.then((code) => reject(new Error(`the daemon exited (${code}) before listening:\n${log}`)));
  });
  const deadline = setTimeout(() => child.kill("SIGKILL"), 20_000);
  try {
    await ready;
  } finally {
    clearTimeout(deadline);
  }
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(killer);
    }
    remove();
  };
  return { path, process: child, exited, stop };
}

/** Connects, retrying while the server is not there yet, until `deadlineMs`. */
export async function connectWhenReady(path: string, options: ConnectOptions = {}, deadlineMs = 10_000): Promise<IpcClient> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    try {
      return await connect(path, options);
    } catch (e) {
      if (!(e instanceof IpcError) || e.kind !== "not_running" || Date.now() > until) throw e;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/** Rejection of `promise`, as an IpcError (fails the test if it resolves). */
export async function rejection(promise: Promise<unknown>): Promise<IpcError> {
  try {
    const value = await promise;
    throw new Error(`expected a rejection, got ${JSON.stringify(value)}`);
  } catch (e) {
    if (e instanceof IpcError) return e;
    throw e;
  }
}

/** Reads the client's events until `predicate` matches one; fails after `timeoutMs`. */
export function waitForEvent(
  client: IpcClient,
  predicate: (e: IpcEvent) => boolean,
  timeoutMs = 10_000,
): Promise<Array<IpcEvent>> {
  return collect(client.events(), predicate, timeoutMs);
}

/** Reads `events` (a client's, a follower's) until `predicate` matches one; fails after `timeoutMs`. */
export async function collect(
  events: AsyncIterable<IpcEvent>,
  predicate: (e: IpcEvent, seen: IpcEvent[]) => boolean,
  timeoutMs = 10_000,
): Promise<Array<IpcEvent>> {
  const seen: Array<IpcEvent> = [];
  let handle: ReturnType<typeof setTimeout> | undefined;
  const timer = new Promise<never>((_, reject) => {
    handle = setTimeout(() => reject(new Error(`no matching event within ${timeoutMs}ms; saw ${JSON.stringify(seen)}`)), timeoutMs);
  });
  const loop = (async () => {
    for await (const e of events) {
      seen.push(e);
      if (predicate(e, seen)) return seen;
    }
    throw new Error(`events ended; saw ${JSON.stringify(seen)}`);
  })();
  try {
    return await Promise.race([loop, timer]);
  } finally {
    clearTimeout(handle);
  }
}
