// Loads the golden wire vectors shared with the Rust tests (crates/ipc-proto/testdata/vectors.json).

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export interface CanonicalVector {
  name: string;
  value: unknown;
  json: string;
  frame: string;
}
export interface AcceptedVector {
  name: string;
  direction: "message" | "response";
  json: string;
  value: unknown;
  frame: string;
}
export interface MalformedVector {
  name: string;
  direction: "message" | "response";
  max_message_size?: number;
  bytes: string;
  outcomes: Array<{ value: unknown } | { error: string }>;
  end: "closed" | "truncated" | "frame_too_large";
}
/** An event frame with its position, or a notice with its lost range (WIRE.md, "Positions"). */
export interface PositionedVector {
  name: string;
  json: string;
  frame: string;
  /** What a peer that knows no positions reads. */
  response: unknown;
  seq?: number;
  missed?: number;
  first_seq?: number;
  last_seq?: number;
}
/**
 * A protocol 1 request or reply (crates/ipc-proto/src/protocol.rs). A request also says what a
 * protocol 0 server's reader makes of it; a reply names the type its data reads as.
 */
export type ProtocolVector =
  | { name: string; direction: "request"; value: unknown; json: string; frame: string; old_server: string }
  | { name: string; direction: "reply"; value: unknown; json: string; frame: string; reads_as: "ServerInfo" | "FollowStart" | "reset" };
export interface Vectors {
  positioned: PositionedVector[];
  protocol: ProtocolVector[];
  messages: CanonicalVector[];
  responses: CanonicalVector[];
  accepted: AcceptedVector[];
  malformed: MalformedVector[];
}

export const vectorsPath = fileURLToPath(new URL("../../../crates/ipc-proto/testdata/vectors.json", import.meta.url));
export const vectors: Vectors = JSON.parse(readFileSync(vectorsPath, "utf8"));

export function unhex(text: string): Uint8Array {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A small deterministic PRNG (mulberry32), so failures reproduce from the printed seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
