// The golden wire vectors, checked both ways against this implementation.

import { describe, expect, test } from "bun:test";

import { encodeFrame, encodeMessage, messageDecoder, requestDecoder, responseDecoder, type FrameDecoder } from "../src/codec.js";
import {
  FEATURE_FOLLOW,
  PROTOCOL_VERSION,
  RESET,
  lostEvents,
  readFollowStart,
  readServerInfo,
  resetInstance,
  type IpcMessage,
  type IpcRequest,
  type IpcResponse,
} from "../src/types.js";
import { hex, unhex, vectors, type MalformedVector } from "./vectors.js";

const decoderFor = (direction: "message" | "response", max?: number): FrameDecoder<unknown> =>
  (direction === "message" ? messageDecoder : responseDecoder)(max === undefined ? {} : { maxMessageSize: max });

/** What a decoder makes of `bytes` fed at once, in the vectors' terms. */
export function outcomesOf(decoder: FrameDecoder<unknown>, chunks: Uint8Array[]) {
  const outcomes: Array<{ value: unknown } | { error: string }> = [];
  let end: string | null = null;
  for (const chunk of chunks) {
    for (const item of decoder.push(chunk)) {
      if (item.ok) outcomes.push({ value: item.value });
      else if (item.fatal) end = item.error.kind;
      else outcomes.push({ error: item.error.kind });
    }
  }
  end ??= decoder.end()?.kind ?? null;
  return { outcomes, end };
}

describe("golden vectors: requests", () => {
  for (const v of vectors.messages) {
    test(`${v.name}: encodes to the exact frame and decodes back`, () => {
      const frame = encodeMessage(v.value as IpcMessage);
      expect(hex(frame)).toBe(v.frame);
      expect(new TextDecoder().decode(frame.subarray(4))).toBe(v.json);
      const decoded = messageDecoder().push(unhex(v.frame));
      expect(decoded).toEqual([{ ok: true, value: JSON.parse(v.json) }]);
    });
  }
});

describe("golden vectors: responses", () => {
  for (const v of vectors.responses) {
    test(`${v.name}: decodes to the value and encodes to the exact frame`, () => {
      const decoded: unknown[] = responseDecoder().push(unhex(v.frame));
      expect(decoded).toEqual([{ ok: true, value: v.value }]);
      expect(hex(encodeFrame(v.value))).toBe(v.frame);
    });
  }
});

describe("golden vectors: events with positions", () => {
  for (const v of vectors.positioned) {
    test(`${v.name}: the position and the lost range are read`, () => {
      const decoded = responseDecoder().push(unhex(v.frame));
      expect(decoded).toHaveLength(1);
      const [item] = decoded;
      expect(item?.ok).toBe(true);
      if (!item?.ok || !("Event" in item.value) || item.value.Event === undefined) throw new Error("an event");
      const { event_type, data, seq } = item.value.Event;
      expect(seq).toBe(v.seq);
      expect({ Event: { event_type, data } } as unknown).toEqual(v.response);
      const lost = lostEvents({ event_type, data });
      expect(lost).toEqual(v.missed === undefined ? undefined : { missed: v.missed, firstSeq: v.first_seq, lastSeq: v.last_seq });
    });
  }
});

describe("golden vectors: protocol 1", () => {
  test("Hello and Follow each have a request vector", () => {
    const requests = vectors.protocol.filter((v) => v.direction === "request").map((v) => Object.keys(v.value as object)[0]);
    expect(new Set(requests)).toEqual(new Set(["Hello", "Follow"]));
  });

  for (const v of vectors.protocol) {
    if (v.direction === "request") {
      test(`${v.name}: encodes to the exact frame, decodes back, and a protocol 0 reader makes ${v.old_server} of it`, () => {
        const frame = encodeMessage(v.value as IpcRequest);
        expect(hex(frame)).toBe(v.frame);
        expect(new TextDecoder().decode(frame.subarray(4))).toBe(v.json);
        expect(requestDecoder().push(unhex(v.frame))).toEqual([{ ok: true, value: JSON.parse(v.json) }]);
        const old = messageDecoder().push(unhex(v.frame));
        expect(old.map((item): string => (item.ok ? "ok" : item.error.kind))).toEqual([v.old_server]);
      });
    } else {
      test(`${v.name}: decodes to the value, encodes to the exact frame, and reads as ${v.reads_as}`, () => {
        const decoded = responseDecoder().push(unhex(v.frame));
        expect(decoded).toEqual([{ ok: true, value: v.value as IpcResponse }]);
        expect(hex(encodeFrame(v.value))).toBe(v.frame);
        const response = v.value as IpcResponse;
        switch (v.reads_as) {
          case "ServerInfo": {
            if (!("Data" in response) || response.Data === undefined) throw new Error("a Data reply");
            const info = readServerInfo(response.Data.data);
            expect(info).toEqual(response.Data.data as never); // every field given, none extra
            expect(info?.protocol).toBe(PROTOCOL_VERSION);
            expect(info?.features).toContain(FEATURE_FOLLOW);
            break;
          }
          case "FollowStart": {
            if (!("Data" in response) || response.Data === undefined) throw new Error("a Data reply");
            expect(readFollowStart(response.Data.data)).toEqual(response.Data.data as never);
            break;
          }
          case "reset": {
            if (!("Event" in response) || response.Event === undefined) throw new Error("an Event");
            expect(response.Event.event_type).toBe(RESET);
            const instance = (response.Event.data as { instance: string }).instance;
            expect(resetInstance(response.Event)).toBe(instance);
            break;
          }
          default:
            throw new Error(`unknown reads_as ${String((v as { reads_as: unknown }).reads_as)}`);
        }
      });
    }
  }
});

describe("golden vectors: accepted non-canonical forms", () => {
  for (const v of vectors.accepted) {
    test(`${v.name}`, () => {
      const decoded = decoderFor(v.direction).push(unhex(v.frame));
      expect(decoded).toHaveLength(1);
      const [item] = decoded;
      expect(item?.ok).toBe(true);
      // Normalized: the same value as the canonical form, fields in serde's order.
      expect(item?.ok && JSON.stringify(item.value)).toBe(JSON.stringify(encodeRoundTrip(v.value)));
    });
  }
});

function encodeRoundTrip(value: unknown): unknown {
  return JSON.parse(new TextDecoder().decode(encodeFrame(value).subarray(4)));
}

describe("golden vectors: malformed input", () => {
  const check = (v: MalformedVector, chunks: Uint8Array[]) => {
    const { outcomes, end } = outcomesOf(decoderFor(v.direction, v.max_message_size), chunks);
    expect(outcomes).toEqual(v.outcomes);
    expect(end).toBe(v.end);
  };
  for (const v of vectors.malformed) {
    test(`${v.name}: ${v.outcomes.map((o) => ("error" in o ? o.error : "ok")).join(", ") || "no frame"}, then ${v.end}`, () => {
      const bytes = unhex(v.bytes);
      check(v, [bytes]);
      // One byte at a time gives the same.
      check(v, Array.from(bytes, (b) => Uint8Array.of(b)));
    });
  }
});
