// Run by `cargo xtask typescript-pack`, under Node and under Bun, in a fresh project that
// installed the packed tarball: the package imports by its name, from dist/ under Node and from
// src/ under Bun (the "bun" export condition).
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

import { MAX_MESSAGE_SIZE, connect, defaultSocketPath, encodeMessage } from "bunctl-ipc";

const runtime = typeof Bun === "undefined" ? "node" : "bun";
const resolved = import.meta.resolve("bunctl-ipc");
const entry = resolved.startsWith("file:") ? fileURLToPath(resolved) : resolved;
const expected = runtime === "bun" ? "src/index.ts" : "dist/index.js";
assert.ok(entry.endsWith(`node_modules/bunctl-ipc/${expected}`), `${runtime} resolved ${entry}`);
assert.equal(typeof connect, "function");
assert.equal(typeof defaultSocketPath(), "string");
assert.equal(MAX_MESSAGE_SIZE, 10 * 1024 * 1024);
assert.deepEqual([...encodeMessage("List")], [6, 0, 0, 0, ...new TextEncoder().encode('"List"')]);
const version = runtime === "bun" ? Bun.version : process.version;
console.log(`${runtime} ${version}: bunctl-ipc imports from ${entry}`);
