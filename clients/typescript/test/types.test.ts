// The message types reject wrong messages at compile time (`tsc --noEmit` checks the
// `@ts-expect-error` lines: each must be an error) and the runtime checks agree with serde.

import { expect, test } from "bun:test";

import {
  checkMessage,
  checkRequest,
  checkResponse,
  readFollowStart,
  readServerInfo,
  type FollowFrom,
  type IpcMessage,
  type IpcRequest,
  type IpcResponse,
  type JsonValue,
  type SubscriptionType,
} from "../src/index.js";

test("right messages type-check, wrong ones do not", () => {
  const ok: IpcMessage[] = [
    "List",
    "Unsubscribe",
    { Start: { name: "web", config: "{\"command\":\"bun\"}" } },
    { Stop: { name: "web" } },
    { Restart: { name: "web" } },
    { Delete: { name: "web" } },
    { Status: { name: null } },
    { Logs: { name: "web", lines: 10 } },
    { Subscribe: { subscription: { AllEvents: { app_name: null } } } },
  ];
  const wrong: IpcMessage[] = [
    // @ts-expect-error not a variant
    "Reboot",
    // @ts-expect-error a struct variant is not a bare string
    "Stop",
    // @ts-expect-error missing field
    { Stop: {} },
    // @ts-expect-error config is JSON text, not an object
    { Start: { name: "web", config: { command: "bun" } } },
    // @ts-expect-error two variants in one message
    { Stop: { name: "a" }, Delete: { name: "a" } },
    // @ts-expect-error name must be given (null for all apps)
    { Logs: { lines: 5 } },
    // @ts-expect-error unknown subscription
    { Subscribe: { subscription: { Everything: { app_name: null } } } },
  ];
  // @ts-expect-error a subscription names one kind
  const sub: SubscriptionType = { LogEvents: { app_name: null }, AllEvents: { app_name: null } };
  // @ts-expect-error a response variant is not a message
  const notMessage: IpcMessage = { Success: { message: "x" } };
  const response: IpcResponse = { Event: { event_type: "log_line", data: { line: "x" } } };
  expect(ok.every((m) => checkMessage(m).ok)).toBe(true);
  // The types are stricter than serde in one place: serde reads a missing Option as null.
  expect(wrong.filter((m) => checkMessage(m).ok)).toEqual([{ Logs: { lines: 5 } }] as never);
  expect([sub, notMessage].every((m) => !checkMessage(m).ok)).toBe(true);
  expect(checkResponse(response).ok).toBe(true);
});

test("Hello and Follow are requests but not the brief's messages", () => {
  const follow = { Follow: { subscription: { LogEvents: { app_name: "web" } }, history: 10, after: null, instance: null } };
  const requests: IpcRequest[] = ["List", { Stop: { name: "web" } }, { Hello: { protocol: 1, client: "me 1.0" } }, follow];
  // @ts-expect-error Hello is not one of the brief's messages
  const hello: IpcMessage = { Hello: { protocol: 1, client: "me 1.0" } };
  // @ts-expect-error Follow needs all four fields (null for the ones not used)
  const short: IpcRequest = { Follow: { subscription: { AllEvents: { app_name: null } } } };
  // @ts-expect-error history and after cannot be combined
  const both: FollowFrom = { history: 10, after: { instance: "ab", seq: 3 } };
  expect(requests.every((r) => checkRequest(r).ok)).toBe(true);
  expect([hello, follow].some((m) => checkMessage(m).ok)).toBe(false);
  // serde reads the missing Options of Follow as null, and Hello's missing client as "".
  expect(checkRequest(short)).toEqual({ ok: true, value: { Follow: { subscription: { AllEvents: { app_name: null } }, history: null, after: null, instance: null } } });
  expect(checkRequest({ Hello: { protocol: 7 } })).toEqual({ ok: true, value: { Hello: { protocol: 7, client: "" } } });
  expect(both).toBeDefined();
});

test("what serde refuses as a request, checkRequest refuses", () => {
  // The cases of crates/ipc-proto/src/protocol.rs `what_the_brief_refuses_request_refuses`.
  const refused = [
    { Reboot: {} },
    { Stop: {} },
    { Logs: { name: null, lines: -1 } },
    { Stop: { name: "a" }, Delete: { name: "b" } },
    {},
    "Hello",
    { Hello: {} },
    { Hello: { protocol: 1, client: null } },
    { Follow: {} },
    { Follow: { subscription: { LogEvents: { app_name: null } }, after: -1 } },
    [],
    3,
    null,
  ];
  expect(refused.filter((r) => checkRequest(r).ok)).toEqual([]);
});

test("ServerInfo reads leniently: missing fields take their defaults, unknown ones are ignored", () => {
  const protocol0 = { protocol: 0, server: "", instance: "", seq: 0, features: [], pid: null, uptime_ms: 0, connections: null, subscribers: 0, published: 0, lost: 0 };
  expect(readServerInfo({})).toEqual(protocol0);
  expect(readServerInfo({ protocol: 1, features: ["follow"], future: true, pid: null })).toEqual({ ...protocol0, protocol: 1, features: ["follow"] });
  // A field of the wrong type is not a ServerInfo (serde refuses it too), nor is a non-object.
  const wrong: JsonValue[] = [{ protocol: "1" }, { features: [1] }, { seq: -1 }, { server: null }, [], "x", null];
  for (const bad of wrong) {
    expect(readServerInfo(bad)).toBeUndefined();
  }
  expect(readFollowStart({ instance: "ab", seq: 3, more: 1 })).toEqual({ instance: "ab", seq: 3 });
  const incomplete: JsonValue[] = [{ instance: "ab" }, { seq: 3 }, { instance: 1, seq: 3 }];
  expect(incomplete.map((d) => readFollowStart(d))).toEqual([undefined, undefined, undefined]);
});
