// The messages of the bunctl IPC wire, exactly as serde writes them (externally tagged):
// a variant without fields is a bare string ("List"), a variant with fields is an object with a
// single key, the variant's name. Mirrors crates/ipc-proto/src/message.rs; see WIRE.md.

/** Any JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * One key of `T` set, every other key of `T` forbidden: an object literal with two variant
 * names (or a misspelt one) does not type-check.
 */
type OneOf<T> = {
  [K in keyof T]: { [P in K]: T[P] } & { [P in Exclude<keyof T, K>]?: never };
}[keyof T];

/** Which events a connection subscribes to; `app_name: null` means every app. */
export type SubscriptionType = OneOf<{
  /** `status_change`, `process_started`, `process_exited`, `process_crashed`, `process_restarting`. */
  StatusEvents: { app_name: string | null };
  /** `log_line`. */
  LogEvents: { app_name: string | null };
  /** Every event type, including unknown ones. */
  AllEvents: { app_name: string | null };
}>;

/** The variants of {@link IpcMessage} that carry fields, by name. */
export interface IpcMessageFields {
  /** Start an app; `config` is JSON *text* (the daemon defines its schema). */
  Start: { name: string; config: string };
  Stop: { name: string };
  Restart: { name: string };
  Delete: { name: string };
  /** One app, or every app with `name: null`. */
  Status: { name: string | null };
  /** The last `lines` output lines (a non-negative integer) of one app, or of all with `null`. */
  Logs: { name: string | null; lines: number };
  /** Receive events matching `subscription` on this connection, replacing any earlier one. */
  Subscribe: { subscription: SubscriptionType };
}

/** A request from a client to the daemon. */
export type IpcMessage = "List" | "Unsubscribe" | OneOf<IpcMessageFields>;

// ------------------------------------------------------------------------------------------
// Protocol 1 (crates/ipc-proto/src/protocol.rs): two requests beyond the brief's messages.

/** The protocol this client speaks: 1. A server that does not answer {@link Hello} speaks 0. */
export const PROTOCOL_VERSION = 1;

/** The feature a server lists in {@link ServerInfo.features} when it answers {@link Follow}. */
export const FEATURE_FOLLOW = "follow";

/**
 * The notice a follower gets when it resumed from a cursor of another bus (the daemon
 * restarted): `{ instance: "<the new bus>" }`, no `seq`. Positions start over after it.
 */
export const RESET = "reset";

/** "Who are you?": `{"Hello":{"protocol":1,"client":"<name> <version>"}}`. */
export interface Hello {
  /** The highest protocol the client speaks. */
  protocol: number;
  /** The client's name and version, for the server's logs. */
  client: string;
}

/**
 * "Subscribe, and start from here": replaces the connection's subscription like `Subscribe`;
 * answered with a {@link FollowStart}, then events. `history`: the last `history` kept matching
 * events first; `after` (with its bus `instance`): every kept matching event after that
 * position first; neither: live events only. `history` and `after` together are refused.
 */
export interface Follow {
  subscription: SubscriptionType;
  history: number | null;
  after: number | null;
  instance: string | null;
}

/**
 * The answer to {@link Hello} (the `data` of a `Data` reply). {@link readServerInfo} reads it
 * leniently: a missing field takes its default (0, `""`, `[]`, `null`), an unknown one is ignored.
 */
export interface ServerInfo {
  /** The protocol the server speaks; 0 for a server that does not know `Hello`. */
  protocol: number;
  /** The server's name and version, e.g. `"bunctl-ipc-daemon 0.1.0"`. */
  server: string;
  /** The identity of the server's event bus: 32 hex digits, new at every start. */
  instance: string;
  /** The position of the last event the bus published (0 before the first). */
  seq: number;
  /** What the server supports beyond the brief's messages, e.g. {@link FEATURE_FOLLOW}. */
  features: string[];
  /** The server's process id. */
  pid: number | null;
  /** Milliseconds since the server's bus was created. */
  uptime_ms: number;
  /** Connections open now, when the server knows. */
  connections: number | null;
  /** Subscriptions live now. */
  subscribers: number;
  /** Events published since the bus was created. */
  published: number;
  /** Events dropped from subscribers' queues because they fell behind, since then. */
  lost: number;
}

/**
 * The answer to {@link Follow} (the `data` of a `Data` reply): the bus, and the boundary
 * between replayed events (`seq` at or below `seq`) and live ones (above it).
 */
export interface FollowStart {
  instance: string;
  seq: number;
}

/** A place in a server's event stream: a bus and a position on it; what a follower resumes from. */
export interface Cursor {
  instance: string;
  seq: number;
}

/** The variants of {@link IpcRequest} that carry fields: the brief's, `Hello` and `Follow`. */
export interface IpcRequestFields extends IpcMessageFields {
  Hello: Hello;
  Follow: Follow;
}

/**
 * What a client may send (Rust's `ipc_proto::Request`): an {@link IpcMessage} or a protocol 1
 * request. A server of protocol 0 refuses `Hello` and `Follow` (`Error`, or it closes the connection).
 */
export type IpcRequest = "List" | "Unsubscribe" | OneOf<IpcRequestFields>;

/** The variants of {@link IpcResponse}, by name. */
export interface IpcResponseFields {
  Success: { message: string };
  Error: { message: string };
  Data: { data: JsonValue };
  /** `seq`: the event's position on the server's bus, when the server gives one. */
  Event: { event_type: string; data: JsonValue; seq?: number };
}

/** A reply or an event from the daemon. */
export type IpcResponse = OneOf<IpcResponseFields>;

/** A response that answers a request: anything but an `Event`. */
export type IpcReply = Exclude<IpcResponse, { Event: unknown }>;

/** An event pushed to a subscribed connection (or synthesized: `lagged`). */
export interface IpcEvent {
  /** What happened: `status_change`, `process_started`, `process_exited`, `log_line`, `lagged`, ... */
  event_type: string;
  /**
   * Details; bunctl's events name the app under `app`. `lagged` carries `{ missed: N }`, and
   * `first_seq`/`last_seq` (the positions of the first and last lost event) when known.
   */
  data: JsonValue;
  /**
   * The event's position on the server's bus (WIRE.md, "Positions"): 1 for its first event,
   * one more for each after it, whatever its type or app. Absent for `lagged` notices and from
   * servers that give no positions.
   */
  seq?: number;
}

/** What a `lagged` notice says was lost, if `event` is one. */
export function lostEvents(event: IpcEvent): { missed: number; firstSeq?: number; lastSeq?: number } | undefined {
  if (event.event_type !== "lagged" || !isPlainObject(event.data)) return undefined;
  const { missed, first_seq: firstSeq, last_seq: lastSeq } = event.data;
  if (typeof missed !== "number") return undefined;
  return typeof firstSeq === "number" && typeof lastSeq === "number" ? { missed, firstSeq, lastSeq } : { missed };
}

/** The new bus's instance, if `event` is a {@link RESET} notice. */
export function resetInstance(event: IpcEvent): string | undefined {
  if (event.event_type !== RESET || !isPlainObject(event.data)) return undefined;
  const { instance } = event.data;
  return typeof instance === "string" ? instance : undefined;
}

/**
 * Where a follower of bus `instance` (the one that answered its `Follow`) stands after
 * `event`, having stood at `cursor`: at the event's `seq`; at position 0 of the new bus after
 * a `reset`; after a `lagged` notice where it stood (a notice's range may reach past kept
 * events of other apps still to come in a replay, and resuming re-announces what is still
 * lost rather than skip what is not). The same rule as the Rust client's.
 */
export function cursorAfter(cursor: Cursor | null, instance: string, event: IpcEvent): Cursor | null {
  const fresh = resetInstance(event);
  if (fresh !== undefined) return { instance: fresh, seq: 0 };
  return event.seq === undefined ? cursor : { instance, seq: event.seq };
}

/** Event type names (crates/ipc-proto/src/event.rs). */
export const EventTypes = {
  STATUS_CHANGE: "status_change",
  PROCESS_STARTED: "process_started",
  PROCESS_EXITED: "process_exited",
  PROCESS_CRASHED: "process_crashed",
  PROCESS_RESTARTING: "process_restarting",
  LOG_LINE: "log_line",
  LAGGED: "lagged",
  RESET,
} as const;

/** The reference daemon's app configuration (the JSON inside `Start.config`). */
export interface AppConfig {
  command: string;
  args?: string[];
  cwd?: string;
  env?: Record<string, string>;
}

// ------------------------------------------------------------------------------------------
// Runtime shape checks: what serde would accept, normalized to the object form.

/** Field names of each variant, in the order serde writes them. */
const MESSAGE_FIELDS: Record<string, readonly string[]> = {
  Start: ["name", "config"],
  Stop: ["name"],
  Restart: ["name"],
  Delete: ["name"],
  Status: ["name"],
  Logs: ["name", "lines"],
  Subscribe: ["subscription"],
};
const UNIT_MESSAGES = new Set(["List", "Unsubscribe"]);
const REQUEST_FIELDS: Record<string, readonly string[]> = {
  ...MESSAGE_FIELDS,
  Hello: ["protocol", "client"],
  Follow: ["subscription", "history", "after", "instance"],
};
const RESPONSE_FIELDS: Record<string, readonly string[]> = {
  Success: ["message"],
  Error: ["message"],
  Data: ["data"],
  Event: ["event_type", "data"],
};
const SUBSCRIPTION_FIELDS: Record<string, readonly string[]> = {
  StatusEvents: ["app_name"],
  LogEvents: ["app_name"],
  AllEvents: ["app_name"],
};

export type Checked<T> = { ok: true; value: T } | { ok: false; reason: string };
type FieldCheck = (value: unknown, present: boolean) => string | null;

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

const str: FieldCheck = (v, present) =>
  !present ? "missing field" : typeof v === "string" ? null : "expected a string";
// serde reads a missing `Option` field as `None`.
const optStr: FieldCheck = (v) =>
  v === undefined || v === null || typeof v === "string" ? null : "expected a string or null";
const anyValue: FieldCheck = (_v, present) => (present ? null : "missing field");
/** A non-negative integer that JavaScript holds exactly (counts, positions). */
const isCount = (v: unknown): v is number =>
  typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= Number.MAX_SAFE_INTEGER;
const usize: FieldCheck = (v, present) =>
  !present ? "missing field" : isCount(v) ? null : "expected a non-negative integer";
const optCount: FieldCheck = (v) =>
  v === undefined || v === null || isCount(v) ? null : "expected a non-negative integer or null";
// `#[serde(default)]` on a `String`: may be missing (see `defaults`), not null.
const defaultedStr: FieldCheck = (v, present) => (!present || typeof v === "string" ? null : "expected a string");

interface Schema {
  fields: Record<string, readonly string[]>;
  /** Fields kept only when present (no `null` for a missing one): additions old peers omit. */
  extras?: Record<string, Record<string, FieldCheck>>;
  units: ReadonlySet<string>;
  check: (variant: string, field: string) => FieldCheck;
  /** What a missing field reads as, when not `null` (`#[serde(default)]`). */
  defaults?: Record<string, Record<string, unknown>>;
  /** Fields whose value is itself a tagged value of another schema. */
  nested?: Record<string, Schema>;
}

const SUBSCRIPTION_SCHEMA: Schema = {
  fields: SUBSCRIPTION_FIELDS,
  units: new Set(),
  check: () => optStr,
};
const MESSAGE_SCHEMA: Schema = {
  fields: MESSAGE_FIELDS,
  units: UNIT_MESSAGES,
  check: (variant, field) =>
    field === "lines"
      ? usize
      : field === "name" && (variant === "Status" || variant === "Logs")
        ? optStr
        : field === "subscription"
          ? anyValue
          : str,
  nested: { subscription: SUBSCRIPTION_SCHEMA },
};
const REQUEST_SCHEMA: Schema = {
  ...MESSAGE_SCHEMA,
  fields: REQUEST_FIELDS,
  check: (variant, field) =>
    variant === "Hello"
      ? field === "protocol"
        ? usize
        : defaultedStr
      : variant === "Follow"
        ? field === "subscription"
          ? anyValue
          : field === "instance"
            ? optStr
            : optCount
        : MESSAGE_SCHEMA.check(variant, field),
  defaults: { Hello: { client: "" } },
};
const position: FieldCheck = (v) => (isCount(v) ? null : "expected a non-negative integer");
const RESPONSE_SCHEMA: Schema = {
  fields: RESPONSE_FIELDS,
  units: new Set(),
  check: (_variant, field) => (field === "data" ? anyValue : str),
  extras: { Event: { seq: position } },
};

/**
 * Checks an externally tagged value against a schema and returns it in canonical form: fields
 * in serde's order, unknown fields dropped (serde ignores them), missing `Option`s as `null`.
 */
function normalize(value: unknown, schema: Schema): Checked<unknown> {
  const fail = (reason: string): Checked<unknown> => ({ ok: false, reason });
  if (typeof value === "string") {
    if (schema.units.has(value)) return { ok: true, value };
    if (value in schema.fields) return fail(`invalid type: unit variant, expected struct variant ${value}`);
    return fail(`unknown variant \`${value}\``);
  }
  if (!isPlainObject(value)) return fail("expected a string or an object with one key");
  const keys = Object.keys(value);
  if (keys.length !== 1) return fail(`expected an object with exactly one key (the variant), got ${keys.length}`);
  const variant = keys[0] as string;
  const inner = value[variant];
  if (schema.units.has(variant)) {
    // serde accepts `{"List":null}` for a unit variant.
    return inner === null ? { ok: true, value: variant } : fail(`invalid type for unit variant ${variant}`);
  }
  const names = schema.fields[variant];
  if (names === undefined) return fail(`unknown variant \`${variant}\``);
  const out: Record<string, unknown> = {};
  if (Array.isArray(inner)) {
    // serde also accepts a struct variant's fields as a sequence, in declaration order.
    if (inner.length !== names.length) return fail(`invalid length ${inner.length} for ${variant}`);
    names.forEach((n, i) => (out[n] = inner[i]));
  } else if (isPlainObject(inner)) {
    for (const n of names) if (Object.hasOwn(inner, n)) out[n] = inner[n];
  } else {
    return fail(`invalid type for ${variant}: expected an object`);
  }
  for (const n of names) {
    const present = Object.hasOwn(out, n);
    const problem = schema.check(variant, n)(out[n], present);
    if (problem !== null) return fail(`${variant}.${n}: ${problem}`);
    if (!present) out[n] = schema.defaults?.[variant]?.[n] ?? null; // a missing Option, or default
    const nested = schema.nested?.[n];
    if (nested) {
      const r = normalize(out[n], nested);
      if (!r.ok) return fail(`${variant}.${n}: ${r.reason}`);
      out[n] = r.value;
    }
  }
  const extras = schema.extras?.[variant] ?? {};
  for (const [n, check] of Object.entries(extras)) {
    if (!isPlainObject(inner) || !Object.hasOwn(inner, n)) continue;
    const problem = check(inner[n], true);
    if (problem !== null) return fail(`${variant}.${n}: ${problem}`);
    out[n] = inner[n];
  }
  return { ok: true, value: { [variant]: out } };
}

/** Checks a decoded JSON value against {@link IpcResponse}; returns it normalized, or why not. */
export function checkResponse(value: unknown): Checked<IpcResponse> {
  return normalize(value, RESPONSE_SCHEMA) as Checked<IpcResponse>;
}

/** Checks a decoded JSON value against {@link IpcMessage}; returns it normalized, or why not. */
export function checkMessage(value: unknown): Checked<IpcMessage> {
  return normalize(value, MESSAGE_SCHEMA) as Checked<IpcMessage>;
}

/** Checks a decoded JSON value against {@link IpcRequest}; returns it normalized, or why not. */
export function checkRequest(value: unknown): Checked<IpcRequest> {
  return normalize(value, REQUEST_SCHEMA) as Checked<IpcRequest>;
}

/**
 * Reads a struct as serde does: a missing field takes its value from `defaults` (as with
 * `#[serde(default)]`) unless it is `required`, an unknown one is ignored, a present one must
 * have its default's type (a count for a number; a count or `null` for `null`; strings for an array).
 */
function readStruct<T extends object>(data: unknown, defaults: T, required: ReadonlyArray<keyof T> = []): T | undefined {
  if (!isPlainObject(data)) return undefined;
  const out = { ...defaults } as Record<string, unknown>;
  for (const [key, fallback] of Object.entries(defaults)) {
    if (!Object.hasOwn(data, key)) {
      if (required.includes(key as keyof T)) return undefined;
      continue;
    }
    const v = data[key];
    const fits =
      typeof fallback === "string"
        ? typeof v === "string"
        : Array.isArray(fallback)
          ? Array.isArray(v) && v.every((x) => typeof x === "string")
          : isCount(v) || (fallback === null && v === null);
    if (!fits) return undefined;
    out[key] = v;
  }
  return out as T;
}

/**
 * The {@link ServerInfo} in a `Hello` reply's data, read leniently (missing fields take their
 * defaults, unknown ones are ignored); `undefined` when it is not an object or a field has the
 * wrong type. `readServerInfo({})` is what a protocol 0 server is taken for.
 */
export function readServerInfo(data: JsonValue): ServerInfo | undefined {
  const defaults: ServerInfo = {
    protocol: 0,
    server: "",
    instance: "",
    seq: 0,
    features: [],
    pid: null,
    uptime_ms: 0,
    connections: null,
    subscribers: 0,
    published: 0,
    lost: 0,
  };
  return readStruct(data, defaults);
}

/** The {@link FollowStart} in a `Follow` reply's data (both fields required), or `undefined`. */
export function readFollowStart(data: JsonValue): FollowStart | undefined {
  return readStruct<FollowStart>(data, { instance: "", seq: 0 }, ["instance", "seq"]);
}

/** True for an `Event` response. */
export function isEvent(response: IpcResponse): response is Extract<IpcResponse, { Event: unknown }> {
  return typeof response === "object" && response !== null && "Event" in response;
}
