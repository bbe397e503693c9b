// The default endpoint and the private-directory rule, as in the Rust crate.

import { afterEach, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, rmdirSync } from "node:fs";

import { connect } from "../src/client.js";
import { defaultSocketPath, isPipePath, pipeNameFor, privateFallbackDir, sidFromWhoami } from "../src/endpoint.js";
import { rejection } from "./helpers.js";

const saved = process.env.XDG_RUNTIME_DIR;
afterEach(() => {
  if (saved === undefined) delete process.env.XDG_RUNTIME_DIR;
  else process.env.XDG_RUNTIME_DIR = saved;
});

test("defaultSocketPath: $XDG_RUNTIME_DIR when absolute, else /tmp/bunctl-<uid>", () => {
  const uid = process.getuid?.();
  process.env.XDG_RUNTIME_DIR = "/run/user/4242";
  expect(defaultSocketPath()).toBe("/run/user/4242/bunctl.sock");
  process.env.XDG_RUNTIME_DIR = "relative/dir";
  expect(defaultSocketPath()).toBe(`/tmp/bunctl-${uid}/bunctl.sock`);
  process.env.XDG_RUNTIME_DIR = "";
  expect(defaultSocketPath()).toBe(`/tmp/bunctl-${uid}/bunctl.sock`);
  delete process.env.XDG_RUNTIME_DIR;
  expect(defaultSocketPath()).toBe(`/tmp/bunctl-${uid}/bunctl.sock`);
  expect(privateFallbackDir()).toBe(`/tmp/bunctl-${uid}`);
});

test("named pipe paths are recognised", () => {
  expect(isPipePath("\\\\.\\pipe\\bunctl_S-1-5-21")).toBe(true);
  expect(isPipePath("//./pipe/x")).toBe(true);
  expect(isPipePath("/tmp/bunctl-0/bunctl.sock")).toBe(false);
});

test("the fallback directory must be private to this user", async () => {
  const dir = privateFallbackDir();
  if (existsSync(dir)) {
    console.warn(`skipped: ${dir} exists (a daemon of this user may be using it)`);
    return;
  }
  mkdirSync(dir, { mode: 0o700 });
  try {
    chmodSync(dir, 0o755);
    const e = await rejection(connect(`${dir}/bunctl.sock`));
    expect(e.kind).toBe("insecure_path");
    expect(e.message).toContain("mode 0755");
    chmodSync(dir, 0o700);
    expect((await rejection(connect(`${dir}/bunctl.sock`))).kind).toBe("not_running");
  } finally {
    rmdirSync(dir); // only if still empty: never remove what something else put there
  }
});

test("Windows: the per-user pipe name from whoami's SID", () => {
  const out = '"desktop-7q\\\\alice","S-1-5-21-3623811015-3361044348-30300820-1013"\r\n';
  expect(sidFromWhoami(out)).toBe("S-1-5-21-3623811015-3361044348-30300820-1013");
  expect(sidFromWhoami("ERROR: something")).toBeNull();
  expect(pipeNameFor("S-1-5-21-1")).toBe("\\\\.\\pipe\\bunctl_S-1-5-21-1");
  expect(isPipePath(pipeNameFor("S-1-5-21-1"))).toBe(true);
});
