// bunctl-ipc: talk to the bunctl daemon from Bun or Node (>= 20), with no runtime dependencies.

export { CLIENT_NAME, connect, IpcClient, DEFAULT_MAX_PENDING_EVENTS } from "./client.js";
export type { ConnectOptions, FollowFrom, Follower, HelloOptions, RequestOptions } from "./client.js";
export {
  DEFAULT_TIMEOUT_MS,
  FrameDecoder,
  HEADER_LEN,
  MAX_MESSAGE_SIZE,
  encodeFrame,
  encodeMessage,
  messageDecoder,
  requestDecoder,
  responseDecoder,
} from "./codec.js";
export type { Decoded, DecoderOptions } from "./codec.js";
export { defaultSocketPath, isPipePath, pipeNameFor, privateFallbackDir } from "./endpoint.js";
export { IpcError } from "./errors.js";
export type { IpcErrorKind } from "./errors.js";
export {
  EventTypes,
  FEATURE_FOLLOW,
  PROTOCOL_VERSION,
  RESET,
  checkMessage,
  checkRequest,
  checkResponse,
  cursorAfter,
  isEvent,
  lostEvents,
  readFollowStart,
  readServerInfo,
  resetInstance,
} from "./types.js";
export type {
  AppConfig,
  Checked,
  Cursor,
  Follow,
  FollowStart,
  Hello,
  IpcEvent,
  IpcMessage,
  IpcMessageFields,
  IpcReply,
  IpcRequest,
  IpcRequestFields,
  IpcResponse,
  IpcResponseFields,
  JsonValue,
  ServerInfo,
  SubscriptionType,
} from "./types.js";
