// bunctl-ipc: talk to the bunctl daemon from Bun or Node (>= 20), with no runtime dependencies.

export { connect, IpcClient, DEFAULT_MAX_PENDING_EVENTS } from "./client.js";
export type { ConnectOptions, RequestOptions } from "./client.js";
export {
  DEFAULT_TIMEOUT_MS,
  FrameDecoder,
  HEADER_LEN,
  MAX_MESSAGE_SIZE,
  encodeFrame,
  encodeMessage,
  messageDecoder,
  responseDecoder,
} from "./codec.js";
export type { Decoded, DecoderOptions } from "./codec.js";
export { defaultSocketPath, isPipePath, pipeNameFor, privateFallbackDir } from "./endpoint.js";
export { IpcError } from "./errors.js";
export type { IpcErrorKind } from "./errors.js";
export { EventTypes, checkMessage, checkResponse, isEvent, lostEvents } from "./types.js";
export type {
  AppConfig,
  Checked,
  IpcEvent,
  IpcMessage,
  IpcMessageFields,
  IpcReply,
  IpcResponse,
  IpcResponseFields,
  JsonValue,
  SubscriptionType,
} from "./types.js";
