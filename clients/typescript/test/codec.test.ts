// The framer: arbitrary chunking, limits before buffering, no quadratic copying.

import { describe, expect, test } from "bun:test";

import { HEADER_LEN, MAX_MESSAGE_SIZE, encodeFrame, encodeMessage, responseDecoder } from "../src/codec.js";
import { IpcError } from "../src/errors.js";
import type { IpcResponse } from "../src/types.js";
import { prng, unhex, vectors } from "./vectors.js";

const utf8 = new TextEncoder();

function rawFrame(payload: Uint8Array | string): Uint8Array {
  const body = typeof payload === "string" ? utf8.encode(payload) : payload;
  const frame = new Uint8Array(HEADER_LEN + body.length);
  new DataView(frame.buffer).setUint32(0, body.length, true);
  frame.set(body, HEADER_LEN);
  return frame;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

type Expected = { value: unknown } | { error: string };

/** A random stream of frames and what each must decode to. */
function randomStream(rand: () => number): { bytes: Uint8Array; expected: Expected[] } {
  const parts: Uint8Array[] = [];
  const expected: Expected[] = [];
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const alphabet = ["a", "é", "🚀", "\n", "\"", "\\", "\u0000", " ", "z", "€"];
  const frames = 1 + Math.floor(rand() * 12);
  for (let i = 0; i < frames; i++) {
    const r = rand();
    if (r < 0.35) {
      const v = pick(vectors.responses);
      parts.push(unhex(v.frame));
      expected.push({ value: v.value });
    } else if (r < 0.75) {
      const len = rand() < 0.2 ? Math.floor(rand() * 20_000) : Math.floor(rand() * 40);
      let s = "";
      for (let j = 0; j < len; j++) s += pick(alphabet);
      const value: IpcResponse = { Event: { event_type: "log_line", data: { app: "web", line: s } } };
      parts.push(encodeFrame(value));
      expected.push({ value });
    } else if (r < 0.85) {
      parts.push(Uint8Array.of(0, 0, 0, 0));
      expected.push({ error: "empty_frame" });
    } else {
      parts.push(rawFrame(pick(["{", "{\"Nope\":{}}", "\"Success\"", "[1,2"])));
      expected.push({ error: "invalid_message" });
    }
  }
  return { bytes: concat(parts), expected };
}

function split(bytes: Uint8Array, rand: () => number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let at = 0;
  const mode = rand();
  while (at < bytes.length) {
    // Mostly tiny pieces (split headers), sometimes large ones.
    const max = mode < 0.3 ? 3 : mode < 0.7 ? 64 : 100_000;
    const n = 1 + Math.floor(rand() * max);
    // Copy, so that the decoder cannot rely on chunks being views of one buffer.
    chunks.push(bytes.slice(at, at + n));
    at += n;
  }
  return chunks;
}

function decodeAll(chunks: Uint8Array[]): { got: Expected[]; end: string | undefined; copied: number } {
  const decoder = responseDecoder();
  const got: Expected[] = [];
  for (const chunk of chunks) {
    for (const item of decoder.push(chunk)) got.push(item.ok ? { value: item.value } : { error: item.error.kind });
  }
  return { got, end: decoder.end()?.kind, copied: decoder.copiedBytes };
}

describe("streaming decoder", () => {
  test("any split of a stream of frames decodes to the same frames (300 random streams)", () => {
    for (let seed = 1; seed <= 300; seed++) {
      const rand = prng(seed);
      const { bytes, expected } = randomStream(rand);
      for (let round = 0; round < 5; round++) {
        const { got, end, copied } = decodeAll(split(bytes, rand));
        if (!Bun.deepEquals(got, expected)) {
          expect({ seed, round, got }).toEqual({ seed, round, got: expected });
        }
        expect(end).toBe("closed");
        expect(copied).toBeLessThanOrEqual(bytes.length);
      }
    }
  }, 60_000);

  test("an oversize header is rejected as soon as its 4 bytes are in, before any body", () => {
    const decoder = responseDecoder();
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, MAX_MESSAGE_SIZE + 1, true);
    expect(decoder.push(header.subarray(0, 3))).toEqual([]);
    const [item] = decoder.push(header.subarray(3));
    expect(item?.ok).toBe(false);
    if (item && !item.ok) {
      expect(item.fatal).toBe(true);
      expect(item.error.kind).toBe("frame_too_large");
      expect(item.error.message).toContain("exceeds maximum allowed size 10485760");
    }
    expect(decoder.buffered).toBe(0);
    expect(decoder.broken).toBe(true);
    // Later input is ignored, not buffered: the stream cannot be resynchronised.
    expect(decoder.push(new Uint8Array(1 << 20))).toEqual([]);
    expect(decoder.buffered).toBe(0);
    expect(decoder.end()).toBeNull();
  });

  test("an oversize header in the middle of a chunk drops what follows it", () => {
    const decoder = responseDecoder({ maxMessageSize: 8 });
    const ok = rawFrame("\"x\"");
    const big = rawFrame("{\"Success\":{\"message\":\"too long\"}}");
    const items = decoder.push(concat([rawFrame("{\"Data\":{\"data\":1}}").subarray(0, 0), big, ok]));
    expect(items.map((i) => (i.ok ? "ok" : i.error.kind))).toEqual(["frame_too_large"]);
    expect(decoder.buffered).toBe(0);
  });

  test("a payload of exactly the limit is accepted, one byte more is not (10 MiB)", () => {
    const prefix = "{\"Data\":{\"data\":\"";
    const suffix = "\"}}";
    const payload = prefix + "x".repeat(MAX_MESSAGE_SIZE - prefix.length - suffix.length) + suffix;
    expect(payload.length).toBe(MAX_MESSAGE_SIZE);
    const frame = rawFrame(payload);
    const decoder = responseDecoder();
    // In 64 KiB chunks, as a socket delivers it.
    const items = [];
    for (let at = 0; at < frame.length; at += 65_536) items.push(...decoder.push(frame.subarray(at, at + 65_536)));
    expect(items).toHaveLength(1);
    expect(items[0]?.ok).toBe(true);
    expect(decoder.copiedBytes).toBe(MAX_MESSAGE_SIZE); // the body, copied once

    const over = rawFrame(payload + " ");
    const [item] = responseDecoder().push(over.subarray(0, 4));
    expect(item?.ok === false && item.error.kind).toBe("frame_too_large");
  });

  test("a body within one chunk is not copied; one split into single bytes is copied once", () => {
    const frame = encodeFrame({ Data: { data: "y".repeat(100_000) } });
    const whole = responseDecoder();
    expect(whole.push(frame)).toHaveLength(1);
    expect(whole.copiedBytes).toBe(0);

    const bytewise = responseDecoder();
    let n = 0;
    for (let i = 0; i < frame.length; i++) n += bytewise.push(frame.subarray(i, i + 1)).length;
    expect(n).toBe(1);
    expect(bytewise.copiedBytes).toBe(frame.length); // header and body, each byte once
  });

  test("end of stream inside a header or a body is truncated, between frames closed", () => {
    const frame = encodeFrame({ Success: { message: "hello" } });
    for (let cut = 1; cut < frame.length; cut++) {
      const d = responseDecoder();
      expect(d.push(frame.subarray(0, cut))).toEqual([]);
      const end = d.end();
      expect(end?.kind).toBe("truncated");
      expect(end?.message).toContain(cut < 4 ? `received ${cut} of 4 bytes` : `received ${cut} of ${frame.length} bytes`);
    }
    const d = responseDecoder();
    d.push(frame);
    expect(d.end()?.kind).toBe("closed");
  });
});

describe("encoder", () => {
  test("writes the fields of a request in serde's order, whatever the object's order", () => {
    const a = encodeMessage({ Logs: { lines: 5, name: "web" } } as never);
    expect(new TextDecoder().decode(a.subarray(4))).toBe("{\"Logs\":{\"name\":\"web\",\"lines\":5}}");
    const s = encodeMessage({ Start: { config: "{}", name: "w" } } as never);
    expect(new TextDecoder().decode(s.subarray(4))).toBe("{\"Start\":{\"name\":\"w\",\"config\":\"{}\"}}");
  });

  test("refuses a payload over the limit before producing a frame; exactly the limit is fine", () => {
    const prefix = "{\"Stop\":{\"name\":\"";
    const suffix = "\"}}";
    const name = "n".repeat(100 - prefix.length - suffix.length);
    expect(encodeMessage({ Stop: { name } }, 100)).toHaveLength(104);
    let error: unknown;
    try {
      encodeMessage({ Stop: { name: name.slice(1) + "é" } }, 100); // as many UTF-16 units, one byte more
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(IpcError);
    expect((error as IpcError).kind).toBe("frame_too_large");
    expect((error as IpcError).message).toContain("message size 101 exceeds maximum allowed size 100");
  });
});
