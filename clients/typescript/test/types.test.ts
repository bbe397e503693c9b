// The message types reject wrong messages at compile time (`tsc --noEmit` checks the
// `@ts-expect-error` lines: each must be an error) and the runtime checks agree with serde.

import { expect, test } from "bun:test";

import { checkMessage, checkResponse, type IpcMessage, type IpcResponse, type SubscriptionType } from "../src/index.js";

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
