// The `[u32 little-endian length][UTF-8 JSON]` framer (WIRE.md, crates/ipc-proto/src/codec.rs).

import { IpcError } from "./errors.js";
import { checkMessage, checkRequest, checkResponse, type Checked, type IpcMessage, type IpcRequest, type IpcResponse } from "./types.js";

/** The largest payload a frame may carry by default, in bytes: 10 MiB (the header not counted). */
export const MAX_MESSAGE_SIZE = 10 * 1024 * 1024;
/** Size of the frame header. */
export const HEADER_LEN = 4;
/** The default time limit of a request and of connecting, in milliseconds: 30 s. */
export const DEFAULT_TIMEOUT_MS = 30_000;

const utf8 = new TextEncoder();

/** The order serde writes each variant's fields in; used to put a message in canonical form. */
const FIELD_ORDER: Record<string, readonly string[]> = {
  Start: ["name", "config"],
  Logs: ["name", "lines"],
  Hello: ["protocol", "client"],
  Follow: ["subscription", "history", "after", "instance"],
  Event: ["event_type", "data"],
};

/** `value` with the fields of a known variant in serde's order (so the bytes match Rust's). */
function canonical(value: unknown): unknown {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return value;
  const keys = Object.keys(value);
  if (keys.length !== 1) return value;
  const variant = keys[0] as string;
  const order = FIELD_ORDER[variant];
  const inner = (value as Record<string, unknown>)[variant];
  if (order === undefined || typeof inner !== "object" || inner === null || Array.isArray(inner)) return value;
  const fields = inner as Record<string, unknown>;
  const sorted: Record<string, unknown> = {};
  for (const k of order) if (Object.hasOwn(fields, k)) sorted[k] = fields[k];
  for (const k of Object.keys(fields)) if (!Object.hasOwn(sorted, k)) sorted[k] = fields[k];
  return { [variant]: sorted };
}

/**
 * The frame of any JSON-serializable value: 4-byte little-endian payload length, then the JSON.
 * Throws `frame_too_large` (before anything could be written) when the payload exceeds `max`.
 */
export function encodeFrame(value: unknown, max: number = MAX_MESSAGE_SIZE, endpoint?: string): Uint8Array {
  const json = JSON.stringify(canonical(value));
  if (json === undefined) {
    throw new IpcError("invalid_message", "cannot encode a value that has no JSON form", { endpoint });
  }
  // A UTF-16 unit encodes to at least one byte, so this bound is safe before encoding.
  if (json.length > max) throw tooLarge(json.length, max, endpoint, "at least ");
  const frame = new Uint8Array(HEADER_LEN + json.length * 3);
  const { written } = utf8.encodeInto(json, frame.subarray(HEADER_LEN));
  if (written > max) throw tooLarge(written, max, endpoint, "");
  if (written === 0) throw new IpcError("empty_frame", "empty frame: a message must have at least one byte of JSON", { endpoint });
  new DataView(frame.buffer, frame.byteOffset, HEADER_LEN).setUint32(0, written, true);
  return frame.subarray(0, HEADER_LEN + written);
}

/**
 * The frame of a request (the brief's {@link IpcMessage} or protocol 1's `Hello` and `Follow`),
 * its fields in the order the Rust implementation writes them.
 */
export function encodeMessage(message: IpcRequest, max: number = MAX_MESSAGE_SIZE, endpoint?: string): Uint8Array {
  return encodeFrame(message, max, endpoint);
}

function tooLarge(size: number, max: number, endpoint: string | undefined, qualifier: string): IpcError {
  return new IpcError("frame_too_large", `message size ${qualifier}${size} exceeds maximum allowed size ${max}`, {
    endpoint,
  });
}

/** One decoded frame: a value, or the error of that frame. `fatal` errors end the stream. */
export type Decoded<T> = { ok: true; value: T } | { ok: false; error: IpcError; fatal: boolean };

/** Options of a {@link FrameDecoder}. */
export interface DecoderOptions {
  /** The largest accepted payload, in bytes (default {@link MAX_MESSAGE_SIZE}). */
  maxMessageSize?: number;
  /** Named in error messages. */
  endpoint?: string;
}

/**
 * A streaming decoder of frames, fed chunks as they arrive in any split.
 *
 * * A header is checked against the limit as soon as its 4 bytes are in, before anything is
 *   kept for the body; an oversize length is fatal (`frame_too_large`): everything buffered is
 *   dropped and later input is ignored, since the stream cannot be resynchronised.
 * * Chunks are kept in a list, never concatenated per chunk: a body that lies within one chunk
 *   is decoded in place, one that spans chunks is copied once into a buffer of exactly its size.
 *   Every received byte is copied at most once.
 * * A frame of length 0 (`empty_frame`) or with a payload that is not UTF-8 JSON of the
 *   expected shape (`invalid_message`) is an error for that frame only; the stream stays in sync.
 */
export class FrameDecoder<T> {
  readonly #max: number;
  readonly #endpoint: string | undefined;
  readonly #check: (value: unknown) => Checked<T>;
  readonly #text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  #chunks: Uint8Array[] = [];
  #head = 0; // index of the first chunk with unread bytes
  #offset = 0; // read position in #chunks[#head]
  #buffered = 0; // unread bytes in all chunks
  #need: number | null = null; // body length once its header is consumed
  #broken = false;
  #copied = 0;

  constructor(check: (value: unknown) => Checked<T>, options: DecoderOptions = {}) {
    this.#check = check;
    this.#max = options.maxMessageSize ?? MAX_MESSAGE_SIZE;
    this.#endpoint = options.endpoint;
  }

  /** Bytes received but not yet part of a decoded frame. */
  get buffered(): number {
    return this.#buffered;
  }

  /** Bytes copied so far (bodies spanning chunks); never more than the bytes received. */
  get copiedBytes(): number {
    return this.#copied;
  }

  /** True after an oversize header: the stream is beyond repair. */
  get broken(): boolean {
    return this.#broken;
  }

  /** True while part of a frame has been received. */
  get midFrame(): boolean {
    return this.#need !== null || this.#buffered > 0;
  }

  /** Feeds a chunk; returns the frames it completed, in order. */
  push(chunk: Uint8Array): Decoded<T>[] {
    const out: Decoded<T>[] = [];
    if (this.#broken || chunk.length === 0) return out;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    for (;;) {
      if (this.#need === null) {
        if (this.#buffered < HEADER_LEN) break;
        const len = this.#readHeader();
        if (len === 0) {
          out.push({ ok: false, fatal: false, error: this.#error("empty_frame", "empty frame: a message must have at least one byte of JSON") });
          continue;
        }
        if (len > this.#max) {
          this.#broken = true;
          this.#chunks = [];
          this.#head = this.#offset = this.#buffered = 0;
          out.push({ ok: false, fatal: true, error: this.#error("frame_too_large", `message size ${len} exceeds maximum allowed size ${this.#max}`) });
          return out;
        }
        this.#need = len;
      }
      if (this.#buffered < this.#need) break;
      const body = this.#take(this.#need);
      this.#need = null;
      out.push(this.#parse(body));
    }
    if (this.#head === this.#chunks.length) {
      this.#chunks = [];
      this.#head = 0;
    } else if (this.#head > 64) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
    return out;
  }

  /**
   * The end of the stream: `closed` between frames, `truncated` inside one, `null` when an
   * oversize header was already reported.
   */
  end(): IpcError | null {
    if (this.#broken) return null;
    if (this.#need !== null) {
      return this.#error("truncated", `connection closed mid-frame: received ${HEADER_LEN + this.#buffered} of ${HEADER_LEN + this.#need} bytes`);
    }
    if (this.#buffered > 0) {
      return this.#error("truncated", `connection closed mid-frame: received ${this.#buffered} of ${HEADER_LEN} bytes`);
    }
    return this.#error("closed", "connection closed by peer");
  }

  #error(kind: IpcError["kind"], message: string, cause?: unknown): IpcError {
    return new IpcError(kind, message, { endpoint: this.#endpoint, cause });
  }

  #readHeader(): number {
    const first = this.#chunks[this.#head] as Uint8Array;
    let len: number;
    if (first.length - this.#offset >= HEADER_LEN) {
      const o = this.#offset;
      len = ((first[o] as number) | ((first[o + 1] as number) << 8) | ((first[o + 2] as number) << 16)) + (first[o + 3] as number) * 0x1000000;
      this.#skip(HEADER_LEN);
    } else {
      const h = this.#take(HEADER_LEN);
      len = ((h[0] as number) | ((h[1] as number) << 8) | ((h[2] as number) << 16)) + (h[3] as number) * 0x1000000;
    }
    return len;
  }

  #skip(n: number): void {
    this.#advance(n, null);
  }

  /** Removes `n` buffered bytes (n <= buffered); in place when they lie in one chunk. */
  #take(n: number): Uint8Array {
    const first = this.#chunks[this.#head] as Uint8Array;
    if (first.length - this.#offset >= n) {
      const view = first.subarray(this.#offset, this.#offset + n);
      this.#skip(n);
      return view;
    }
    const into = new Uint8Array(n);
    this.#advance(n, into);
    this.#copied += n;
    return into;
  }

  #advance(n: number, into: Uint8Array | null): void {
    let done = 0;
    while (done < n) {
      const chunk = this.#chunks[this.#head] as Uint8Array;
      const avail = chunk.length - this.#offset;
      const step = Math.min(avail, n - done);
      if (into !== null) into.set(chunk.subarray(this.#offset, this.#offset + step), done);
      done += step;
      if (step === avail) {
        this.#chunks[this.#head] = EMPTY; // release it now
        this.#head += 1;
        this.#offset = 0;
      } else {
        this.#offset += step;
      }
    }
    this.#buffered -= n;
  }

  #parse(body: Uint8Array): Decoded<T> {
    let value: unknown;
    try {
      value = JSON.parse(this.#text.decode(body));
    } catch (e) {
      const what = e instanceof TypeError ? "not valid UTF-8" : `not JSON (${(e as Error).message})`;
      return { ok: false, fatal: false, error: this.#error("invalid_message", `invalid message: ${body.length}-byte payload is ${what}`, e) };
    }
    const checked = this.#check(value);
    if (!checked.ok) {
      return { ok: false, fatal: false, error: this.#error("invalid_message", `invalid message: ${checked.reason}`) };
    }
    return { ok: true, value: checked.value };
  }
}

const EMPTY = new Uint8Array(0);

/** A decoder of the server's frames (`IpcResponse`), as a client needs. */
export function responseDecoder(options: DecoderOptions = {}): FrameDecoder<IpcResponse> {
  return new FrameDecoder(checkResponse, options);
}

/**
 * A decoder of the client's frames as a protocol 0 server reads them (the brief's `IpcMessage`:
 * `Hello` and `Follow` are `invalid_message`).
 */
export function messageDecoder(options: DecoderOptions = {}): FrameDecoder<IpcMessage> {
  return new FrameDecoder(checkMessage, options);
}

/** A decoder of the client's frames as a protocol 1 server reads them (`IpcRequest`). */
export function requestDecoder(options: DecoderOptions = {}): FrameDecoder<IpcRequest> {
  return new FrameDecoder(checkRequest, options);
}
