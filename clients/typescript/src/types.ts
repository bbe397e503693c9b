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

/** Event type names (crates/ipc-proto/src/event.rs). */
export const EventTypes = {
  STATUS_CHANGE: "status_change",
  PROCESS_STARTED: "process_started",
  PROCESS_EXITED: "process_exited",
  PROCESS_CRASHED: "process_crashed",
  PROCESS_RESTARTING: "process_restarting",
  LOG_LINE: "log_line",
  LAGGED: "lagged",
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
const usize: FieldCheck = (v, present) =>
  !present
    ? "missing field"
    : typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= Number.MAX_SAFE_INTEGER
      ? null
      : "expected a non-negative integer";

interface Schema {
  fields: Record<string, readonly string[]>;
  /** Fields kept only when present (no `null` for a missing one): additions old peers omit. */
  extras?: Record<string, Record<string, FieldCheck>>;
  units: ReadonlySet<string>;
  check: (variant: string, field: string) => FieldCheck;
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
const position: FieldCheck = (v) =>
  typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= Number.MAX_SAFE_INTEGER
    ? null
    : "expected a non-negative integer";
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
    if (!present) out[n] = null; // a missing Option
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

/** True for an `Event` response. */
export function isEvent(response: IpcResponse): response is Extract<IpcResponse, { Event: unknown }> {
  return typeof response === "object" && response !== null && "Event" in response;
}
