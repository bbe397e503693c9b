// The client: connect, pipelined requests paired first in first out, events kept for events(),
// protocol 1 (hello, follow) with its fallbacks for protocol 0 servers.

import { createConnection, type Socket } from "node:net";

import { DEFAULT_TIMEOUT_MS, MAX_MESSAGE_SIZE, encodeMessage, responseDecoder, type Decoded } from "./codec.js";
import { checkPrivateDir, defaultSocketPath, verifyServerFile } from "./endpoint.js";
import { IpcError } from "./errors.js";
import type {
  AppConfig,
  Cursor,
  FollowStart,
  IpcEvent,
  IpcReply,
  IpcRequest,
  IpcResponse,
  JsonValue,
  ServerInfo,
  SubscriptionType,
} from "./types.js";
import { FEATURE_FOLLOW, PROTOCOL_VERSION, cursorAfter, lostEvents, readFollowStart, readServerInfo, resetInstance } from "./types.js";

/** Events kept while nobody reads them, before the oldest are dropped (as the Rust client). */
export const DEFAULT_MAX_PENDING_EVENTS = 4096;

/** Options of {@link connect}. */
export interface ConnectOptions {
  /** Limit for connecting and, by default, for each request's reply, in ms (default 30 000). */
  timeoutMs?: number;
  /** The largest payload sent or accepted, in bytes (default 10 MiB). */
  maxMessageSize?: number;
  /**
   * Unix: refuse a server whose socket file or directory belongs to another user than this one
   * or root (default `true`). See the README for how this differs from the Rust client's check.
   */
  verifyServer?: boolean;
  /** Events kept for {@link IpcClient.events} before the oldest are dropped (default 4096). */
  maxPendingEvents?: number;
}

/** Options of one {@link IpcClient.request}. */
export interface RequestOptions {
  /** Aborts the wait for the reply (`aborted`); its reply is discarded when it comes. */
  signal?: AbortSignal;
  /** This request's limit in ms, instead of the client's `timeoutMs`; `Infinity` for none. */
  timeoutMs?: number;
}

/** Options of {@link IpcClient.hello}. */
export interface HelloOptions extends RequestOptions {
  /** The name and version the server logs for this client (default {@link CLIENT_NAME}). */
  client?: string;
}

/** Where {@link IpcClient.follow} starts: the last `history` events, or right after a cursor. */
export type FollowFrom = { history: number; after?: never } | { after: Cursor; history?: never };

/** The name and version this client gives in `Hello` (the package's version; a test checks it). */
export const CLIENT_NAME = "bunctl-ipc-ts 0.1.0";

interface Pending {
  resolve: (reply: IpcReply) => void;
  reject: (error: IpcError) => void;
  /** Set once the caller gave up (timeout, abort): the reply is dropped when it comes. */
  abandoned: boolean;
  cleanup: () => void;
  /** Called as the reply is read, before anything after it in the stream. */
  atReply: (() => void) | undefined;
}

const BUSY_PREFIX = "server busy";

/**
 * Connects to the daemon at `path` (default: {@link defaultSocketPath}).
 *
 * Rejects with `not_running` (naming the path) when nothing listens there, `timeout` when the
 * connection is not established within `timeoutMs`, `server_identity` when `verifyServer` finds
 * the socket owned by someone else.
 */
export async function connect(path?: string, options: ConnectOptions = {}): Promise<IpcClient> {
  const endpoint = path ?? defaultSocketPath();
  return new IpcClient(await openSocket(endpoint, options), endpoint, options);
}

/** The checks of {@link connect}, then a connected socket. */
async function openSocket(endpoint: string, options: ConnectOptions): Promise<Socket> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  await checkPrivateDir(endpoint);
  if (options.verifyServer ?? true) await verifyServerFile(endpoint);
  return new Promise<Socket>((resolve, reject) => {
    const s = createConnection({ path: endpoint });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new IpcError("timeout", `connect timeout after ${timeoutMs}ms`, { endpoint }));
    }, timeoutMs);
    s.once("connect", () => {
      clearTimeout(timer);
      s.removeAllListeners("error");
      resolve(s);
    });
    s.once("error", (e) => {
      clearTimeout(timer);
      reject(connectError(e, endpoint));
    });
  });
}

function connectError(e: Error & { code?: string }, endpoint: string): IpcError {
  switch (e.code) {
    case "ENOENT":
    case "ECONNREFUSED":
    case "ENOTDIR":
      return new IpcError("not_running", `no bunctl server is running at ${endpoint}: ${e.code}`, { endpoint, cause: e });
    default:
      return new IpcError("io", `cannot connect to ${endpoint}: ${e.message}`, { endpoint, cause: e });
  }
}

/**
 * A connection to a bunctl daemon.
 *
 * Requests may be issued concurrently: they are written at once (pipelined) and, since the
 * daemon answers in request order, paired with replies first in, first out. A request that
 * times out or is aborted keeps its place in that queue, so its late reply is discarded rather
 * than handed to the next request. `Event` frames are never replies: they are queued (bounded)
 * for {@link events}.
 */
export class IpcClient {
  /** The socket path or pipe name this client is connected to. */
  readonly endpoint: string;
  readonly #options: ConnectOptions;
  #socket!: Socket;
  readonly #max: number;
  readonly #timeoutMs: number;
  readonly #maxEvents: number;
  #pending: Pending[] = [];
  #pendingHead = 0;
  #events: IpcEvent[] = [];
  #eventsHead = 0;
  #missed: Loss = { missed: 0 };
  #waiters: Array<() => void> = [];
  #error: IpcError | null = null; // why the connection ended, once it has
  #closedByUser = false;
  #framesSeen = 0;
  #closed!: Promise<void>;
  #discarded = 0;
  #corked = false;
  #serverInfo: ServerInfo | null = null;
  #hello: Promise<ServerInfo> | null = null;

  /** @internal Use {@link connect}. */
  constructor(socket: Socket, endpoint: string, options: ConnectOptions = {}) {
    this.endpoint = endpoint;
    this.#options = options;
    this.#max = options.maxMessageSize ?? MAX_MESSAGE_SIZE;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#maxEvents = Math.max(1, options.maxPendingEvents ?? DEFAULT_MAX_PENDING_EVENTS);
    this.#attach(socket);
  }

  /** Makes `socket` this client's connection; what its predecessor still reports is ignored. */
  #attach(socket: Socket): void {
    const { endpoint } = this;
    const decoder = responseDecoder({ maxMessageSize: this.#max, endpoint });
    const current = () => this.#socket === socket;
    this.#socket = socket;
    this.#error = null;
    this.#framesSeen = 0;
    socket.setNoDelay?.(true);
    socket.on("data", (chunk: Uint8Array) => {
      if (!current()) return;
      for (const item of decoder.push(chunk)) this.#dispatch(item);
    });
    socket.on("error", (e: Error & { code?: string }) => {
      if (!current()) return;
      const kind = e.code === "ECONNRESET" || e.code === "EPIPE" ? (decoder.midFrame ? "truncated" : "closed") : "io";
      this.#fail(new IpcError(kind, `connection lost: ${e.message}`, { endpoint, cause: e }));
    });
    this.#closed = new Promise((resolve) => {
      socket.once("close", () => {
        if (current()) this.#fail(decoder.end() ?? new IpcError("closed", "connection closed", { endpoint }));
        resolve();
      });
    });
  }

  /** True until the connection has ended (for whatever reason). */
  get connected(): boolean {
    return this.#error === null;
  }

  /** Requests sent whose replies have not arrived yet (abandoned ones included). */
  get inFlight(): number {
    return this.#pending.length - this.#pendingHead;
  }

  /** Frames dropped: late replies of abandoned requests, and replies no request waited for. */
  get discardedReplies(): number {
    return this.#discarded;
  }

  /** What the last {@link hello} learnt about the server; `null` before one was answered. */
  get serverInfo(): ServerInfo | null {
    return this.#serverInfo;
  }

  /**
   * Sends `message` and resolves with its reply (`Success`, `Error` or `Data`; the daemon's
   * `Error` is a reply, not a rejection). Rejects with an {@link IpcError}: `timeout`,
   * `aborted`, `frame_too_large` (nothing was sent), `invalid_message`, `closed`, ...
   */
  request(message: IpcRequest, options: RequestOptions = {}): Promise<IpcReply> {
    return this.#request(message, options, undefined);
  }

  #request(message: IpcRequest, options: RequestOptions, atReply: (() => void) | undefined): Promise<IpcReply> {
    if (this.#error !== null) return Promise.reject(this.#error);
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(this.#aborted(signal));
    let frame: Uint8Array;
    try {
      frame = encodeMessage(message, this.#max, this.endpoint);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise<IpcReply>((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
      const label = typeof message === "string" ? message : Object.keys(message)[0];
      const entry: Pending = {
        resolve,
        reject,
        atReply,
        abandoned: false,
        cleanup: () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
        },
      };
      const giveUp = (error: IpcError) => {
        if (entry.abandoned) return;
        entry.abandoned = true;
        entry.cleanup();
        reject(error);
      };
      // `Infinity` (or 0) waits without a limit; setTimeout cannot go past 2^31 - 1 ms.
      const timer =
        Number.isFinite(timeoutMs) && timeoutMs > 0
          ? setTimeout(
              () => giveUp(new IpcError("timeout", `receive timeout after ${timeoutMs}ms waiting for the reply to ${label}`, { endpoint: this.endpoint })),
              Math.min(timeoutMs, 2 ** 31 - 1),
            )
          : undefined;
      const onAbort = () => giveUp(this.#aborted(signal as AbortSignal));
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#pending.push(entry);
      this.#write(frame);
    });
  }

  /**
   * Asks the server who it is and what it supports (`Hello`), and keeps the answer as
   * {@link serverInfo}. A server of protocol 0 is taken for `readServerInfo({})` (protocol 0,
   * no features), whether it answers `Error` (bunctl-ipc's servers before protocol 1) or closes
   * the connection (bunctl's own daemon, on any message it cannot parse): then this client
   * connects again, once, to the same endpoint with the same options, and stays usable. That
   * ends the first connection, so requests still waiting on it reject with `closed`: say hello
   * first. Concurrent calls share one `Hello`.
   *
   * Rejects as {@link request} does, `unexpected_reply` when the answer is not a `ServerInfo`,
   * and with {@link connect}'s errors when connecting again fails.
   */
  hello(options: HelloOptions = {}): Promise<ServerInfo> {
    this.#hello ??= this.#sayHello(options).finally(() => (this.#hello = null));
    return this.#hello;
  }

  async #sayHello(options: HelloOptions): Promise<ServerInfo> {
    const wasOpen = this.#error === null;
    const hello: IpcRequest = { Hello: { protocol: PROTOCOL_VERSION, client: options.client ?? CLIENT_NAME } };
    const reply = await this.request(hello, options).catch(async (e: unknown) => {
      const hungUp = wasOpen && !this.#closedByUser && e instanceof IpcError && e.kind === "closed";
      if (!hungUp) throw e;
      const socket = await openSocket(this.endpoint, this.#options);
      if (this.#closedByUser) {
        socket.destroy(); // close() was called while connecting again
        throw e;
      }
      this.#attach(socket);
      return null;
    });
    // An `Error`, or the connection closed on it: a server of protocol 0, of which nothing is known.
    const data = reply === null || "Error" in reply ? {} : expectData(reply, this.endpoint);
    const info = readServerInfo(data);
    if (info === undefined) {
      throw new IpcError("unexpected_reply", `unexpected reply from server: expected ServerInfo, got ${JSON.stringify(data).slice(0, 200)}`, { endpoint: this.endpoint });
    }
    this.#serverInfo = info;
    return info;
  }

  /**
   * Follows events matching `subscription` (replacing this connection's subscription): with
   * `{ history: n }` the last `n` the server kept first, with `{ after: cursor }` every kept
   * one after that cursor first, then live events; without `from`, live events only. Says
   * {@link hello} first unless it was answered already.
   *
   * Resolves once the server has answered, with a {@link Follower}: iterate it for the events
   * (`lagged` and `reset` notices among them) and read its `cursor` to resume later. Events
   * still queued from the connection's earlier subscription are dropped: they are not the
   * follower's. The follower reads {@link events}' queue, so iterate only one of them per
   * connection.
   *
   * A server without the `follow` feature (protocol 0) gets a plain `Subscribe` when `from` is
   * left out: live events, without positions or cursor. With `from` this rejects with
   * `unsupported`, naming what it cannot do. Otherwise rejects as {@link request} does,
   * `refused` when the server answers `Error` (e.g. both `history` and `after`),
   * `unexpected_reply` for an answer that is not a `FollowStart`.
   */
  async follow(subscription: SubscriptionType, from?: FollowFrom, options?: RequestOptions): Promise<Follower> {
    const info = this.#serverInfo ?? (await this.hello(options));
    const history = from?.history ?? null;
    const after = from?.after ?? null;
    // What the server sends before its reply belongs to the subscription this one replaces.
    const dropQueued = () => {
      this.#events = [];
      this.#eventsHead = 0;
      this.#missed = { missed: 0 };
    };
    if (!info.features.includes(FEATURE_FOLLOW)) {
      if (history !== null || after !== null) {
        const what = history !== null ? "history" : "following from a cursor";
        throw new IpcError("unsupported", `the daemon does not support ${what} (it speaks protocol ${info.protocol})`, { endpoint: this.endpoint });
      }
      expectSuccess(await this.#request({ Subscribe: { subscription } }, options ?? {}, dropQueued), this.endpoint);
      return new Follower(this, null, null);
    }
    const follow = { subscription, history, after: after?.seq ?? null, instance: after?.instance ?? null };
    const reply = await this.#request({ Follow: follow }, options ?? {}, dropQueued);
    const start = readFollowStart(expectData(reply, this.endpoint));
    if (start === undefined) {
      throw new IpcError("unexpected_reply", `unexpected reply from server: expected FollowStart, got ${describe(reply)}`, { endpoint: this.endpoint });
    }
    // Live: everything up to the boundary is behind the follower already. History: the
    // boundary until the first event (the history is not owed; what follows the boundary is).
    const cursor = after !== null ? { instance: after.instance, seq: after.seq } : { ...start };
    return new Follower(this, start, cursor);
  }

  /** Subscribes this connection to events (replacing an earlier subscription); `refused` on `Error`. */
  async subscribe(subscription: SubscriptionType, options?: RequestOptions): Promise<void> {
    expectSuccess(await this.request({ Subscribe: { subscription } }, options), this.endpoint);
  }

  /** Ends this connection's subscription; events already received stay available. */
  async unsubscribe(options?: RequestOptions): Promise<void> {
    expectSuccess(await this.request("Unsubscribe", options), this.endpoint);
  }

  /** The app names (`List`). */
  async list(options?: RequestOptions): Promise<JsonValue> {
    return expectData(await this.request("List", options), this.endpoint);
  }

  /** The status record of one app, or of all apps when `name` is left out. */
  async status(name: string | null = null, options?: RequestOptions): Promise<JsonValue> {
    return expectData(await this.request({ Status: { name } }, options), this.endpoint);
  }

  /** The last `lines` output lines of one app, or of all apps (`name` null). */
  async logs(name: string | null, lines = 100, options?: RequestOptions): Promise<JsonValue> {
    return expectData(await this.request({ Logs: { name, lines } }, options), this.endpoint);
  }

  /** Starts an app; `config` is the daemon's JSON text, or an object turned into it. */
  async start(name: string, config: string | AppConfig, options?: RequestOptions): Promise<string> {
    const text = typeof config === "string" ? config : JSON.stringify(config);
    return expectSuccess(await this.request({ Start: { name, config: text } }, options), this.endpoint);
  }

  /** Stops an app. */
  async stop(name: string, options?: RequestOptions): Promise<string> {
    return expectSuccess(await this.request({ Stop: { name } }, options), this.endpoint);
  }

  /** Restarts an app. */
  async restart(name: string, options?: RequestOptions): Promise<string> {
    return expectSuccess(await this.request({ Restart: { name } }, options), this.endpoint);
  }

  /** Stops an app and forgets it. */
  async delete(name: string, options?: RequestOptions): Promise<string> {
    return expectSuccess(await this.request({ Delete: { name } }, options), this.endpoint);
  }

  /**
   * The events, oldest first: those that arrived while requests waited come first. When more
   * than `maxPendingEvents` pile up unread, the oldest are dropped and a
   * `{ event_type: "lagged", data: { missed: N } }` notice comes before the rest (the daemon
   * sends the same notice when it had to drop events for this connection).
   *
   * The iteration ends normally after {@link close}; when the connection ends otherwise it
   * throws the reason once the queued events are consumed (`closed` when the daemon goes away,
   * `truncated`, `frame_too_large`, ...). Several iterators share one queue.
   */
  async *events(): AsyncGenerator<IpcEvent, void, undefined> {
    for (;;) {
      const event = this.#takeEvent();
      if (event !== undefined) {
        yield event;
        continue;
      }
      if (this.#error !== null) {
        if (this.#closedByUser) return;
        throw this.#error;
      }
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  /** The next event (see {@link events}); rejects when the connection has ended. */
  async nextEvent(): Promise<IpcEvent> {
    const it = this.events();
    const r = await it.next();
    await it.return();
    if (r.done) throw this.#error ?? new IpcError("closed", "connection closed", { endpoint: this.endpoint });
    return r.value;
  }

  /**
   * Closes the connection. Requests still waiting reject with `closed`; {@link events}
   * iterations end. Resolves once the socket is closed.
   */
  async close(): Promise<void> {
    if (this.#error === null) {
      this.#closedByUser = true;
      this.#fail(new IpcError("closed", "connection closed by this client", { endpoint: this.endpoint }));
    }
    this.#socket.destroy();
    await this.#closed;
  }

  /**
   * Writes a frame; frames written in the same turn of the event loop (pipelined requests, or
   * requests made as replies come in) leave in one system call.
   */
  #write(frame: Uint8Array): void {
    const socket = this.#socket;
    if (!this.#corked) {
      this.#corked = true;
      socket.cork();
      queueMicrotask(() => {
        this.#corked = false;
        socket.uncork();
      });
    }
    socket.write(frame);
  }

  #aborted(signal: AbortSignal): IpcError {
    return new IpcError("aborted", "request aborted", { endpoint: this.endpoint, cause: signal.reason });
  }

  #dispatch(item: Decoded<IpcResponse>): void {
    this.#framesSeen += 1;
    if (!item.ok) {
      if (item.fatal) {
        this.#fail(item.error);
        this.#socket.destroy();
        return;
      }
      // In sync: the frame takes the place of a reply, as in the Rust client.
      this.#settle(null, item.error);
      return;
    }
    const response = item.value;
    if ("Event" in response && response.Event !== undefined) {
      const { event_type, data, seq } = response.Event;
      this.#pushEvent(seq === undefined ? { event_type, data } : { event_type, data, seq });
      return;
    }
    const reply = response as IpcReply;
    if (
      this.#framesSeen === 1 &&
      "Error" in reply &&
      reply.Error !== undefined &&
      reply.Error.message.startsWith(BUSY_PREFIX)
    ) {
      // Sent unsolicited by a server at its connection limit, just before it closes.
      this.#fail(new IpcError("refused", `server refused the connection: ${reply.Error.message}`, { endpoint: this.endpoint }));
      this.#socket.destroy();
      return;
    }
    this.#settle(reply, null);
  }

  /** Hands a reply (or a frame's error) to the oldest request. */
  #settle(reply: IpcReply | null, error: IpcError | null): void {
    const entry = this.#pending[this.#pendingHead];
    if (entry === undefined) {
      this.#discarded += 1; // nobody asked: a confused server; nothing to pair it with
      return;
    }
    this.#pending[this.#pendingHead] = undefined as unknown as Pending;
    this.#pendingHead += 1;
    if (this.#pendingHead === this.#pending.length) {
      this.#pending = [];
      this.#pendingHead = 0;
    } else if (this.#pendingHead > 1024) {
      this.#pending = this.#pending.slice(this.#pendingHead);
      this.#pendingHead = 0;
    }
    if (entry.abandoned) {
      this.#discarded += 1;
      return;
    }
    entry.abandoned = true;
    entry.cleanup();
    if (reply !== null) {
      entry.atReply?.();
      entry.resolve(reply);
    } else {
      entry.reject(error as IpcError);
    }
  }

  #pushEvent(event: IpcEvent): void {
    if (this.#events.length - this.#eventsHead >= this.#maxEvents) {
      // A `reset` is never dropped (it says that positions start over): the event after it
      // goes instead, and the notice for it comes after the reset (see #takeEvent).
      const head = this.#events[this.#eventsHead] as IpcEvent;
      const at = resetInstance(head) !== undefined ? this.#eventsHead + 1 : this.#eventsHead;
      const dropped = this.#events[at] as IpcEvent;
      if (at === this.#eventsHead) {
        this.#eventsHead += 1;
      } else {
        this.#events.splice(at, 1);
      }
      // A dropped notice stood for the events it announced.
      this.#missed = mergeLoss(this.#missed, lossOf(dropped));
    }
    this.#events.push(event);
    if (this.#eventsHead > 1024 && this.#eventsHead * 2 > this.#events.length) {
      this.#events = this.#events.slice(this.#eventsHead);
      this.#eventsHead = 0;
    }
    this.#wake();
  }

  #takeEvent(): IpcEvent | undefined {
    const head = this.#events[this.#eventsHead];
    const resetFirst = head !== undefined && resetInstance(head) !== undefined;
    if (this.#missed.missed > 0 && !resetFirst) {
      const { missed, firstSeq, lastSeq } = this.#missed;
      this.#missed = { missed: 0 };
      const data: JsonValue =
        firstSeq === undefined || lastSeq === undefined ? { missed } : { missed, first_seq: firstSeq, last_seq: lastSeq };
      return { event_type: "lagged", data };
    }
    if (this.#eventsHead === this.#events.length) return undefined;
    const event = this.#events[this.#eventsHead] as IpcEvent;
    this.#events[this.#eventsHead] = undefined as unknown as IpcEvent;
    this.#eventsHead += 1;
    if (this.#eventsHead === this.#events.length) {
      this.#events = [];
      this.#eventsHead = 0;
    }
    return event;
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** Ends the connection for `error`: every waiting request rejects with it. */
  #fail(error: IpcError): void {
    if (this.#error !== null) return;
    this.#error = error;
    const pending = this.#pending.slice(this.#pendingHead);
    this.#pending = [];
    this.#pendingHead = 0;
    for (const entry of pending) {
      if (entry.abandoned) continue;
      entry.abandoned = true;
      entry.cleanup();
      entry.reject(error);
    }
    this.#wake();
  }
}

/**
 * The events of one {@link IpcClient.follow}, and where they have got to: iterate it (as
 * {@link IpcClient.events}: it ends after `close()`, throws when the connection is lost), and
 * store `cursor` to resume from with `follow(subscription, { after: cursor })`.
 */
export class Follower implements AsyncIterable<IpcEvent> {
  /**
   * The server's answer: its bus, and the boundary between replayed events (`seq <= start.seq`)
   * and live ones. `null` from a server of protocol 0 (a plain `Subscribe`).
   */
  readonly start: FollowStart | null;
  readonly #client: IpcClient;
  #cursor: Cursor | null;

  /** @internal Use {@link IpcClient.follow}. */
  constructor(client: IpcClient, start: FollowStart | null, cursor: Cursor | null) {
    this.#client = client;
    this.start = start;
    this.#cursor = cursor;
  }

  /**
   * Where the follower stands, counting the event last yielded (see {@link cursorAfter}): at
   * first the `after` cursor given, else the reply's boundary (live; and with `history` until
   * its first event, which the cursor then moves back to: the history is not owed, what
   * follows the boundary is). Notices do not move it. Always `null` from a server of
   * protocol 0.
   */
  get cursor(): Cursor | null {
    return this.#cursor;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<IpcEvent, void, undefined> {
    for await (const event of this.#client.events()) {
      if (this.start !== null) this.#cursor = cursorAfter(this.#cursor, this.start.instance, event);
      yield event;
    }
  }
}

function describe(reply: IpcReply): string {
  return JSON.stringify(reply).slice(0, 200);
}

function expectSuccess(reply: IpcReply, endpoint: string): string {
  if ("Success" in reply && reply.Success !== undefined) return reply.Success.message;
  if ("Error" in reply && reply.Error !== undefined) {
    throw new IpcError("refused", `server refused the request: ${reply.Error.message}`, { endpoint });
  }
  throw new IpcError("unexpected_reply", `unexpected reply from server: expected Success, got ${describe(reply)}`, { endpoint });
}

function expectData(reply: IpcReply, endpoint: string): JsonValue {
  if ("Data" in reply && reply.Data !== undefined) return reply.Data.data;
  if ("Error" in reply && reply.Error !== undefined) {
    throw new IpcError("refused", `server refused the request: ${reply.Error.message}`, { endpoint });
  }
  throw new IpcError("unexpected_reply", `unexpected reply from server: expected Data, got ${describe(reply)}`, { endpoint });
}

/**
 * Events lost at one point of the stream, and where: what a `lagged` notice says (the shape
 * `lostEvents` returns). The positions of the first and last lost event are there when every
 * lost one had a position.
 */
type Loss = NonNullable<ReturnType<typeof lostEvents>>;

/** What dropping `event` from the held queue loses: what it announced, or itself. */
function lossOf(event: IpcEvent): Loss {
  return lostEvents(event) ?? { missed: 1, firstSeq: event.seq, lastSeq: event.seq };
}

/** `earlier`, then `later`: one range only when both have one. */
function mergeLoss(earlier: Loss, later: Loss): Loss {
  if (earlier.missed === 0) return later;
  const missed = earlier.missed + later.missed;
  const { firstSeq } = earlier;
  const { lastSeq } = later;
  const ranged = firstSeq !== undefined && earlier.lastSeq !== undefined && later.firstSeq !== undefined && lastSeq !== undefined;
  return ranged ? { missed, firstSeq, lastSeq } : { missed };
}
