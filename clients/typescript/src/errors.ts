// The one error type of the client. Mirrors the kinds of crates/ipc-proto/src/error.rs.

/**
 * What went wrong:
 *
 * | kind | meaning | connection afterwards |
 * |---|---|---|
 * | `not_running` | nothing listens at the endpoint (missing socket, connection refused) | - |
 * | `timeout` | no reply (or no connection) within the time limit | usable; a late reply is discarded |
 * | `aborted` | the request's `AbortSignal` fired | usable; a late reply is discarded |
 * | `closed` | the peer (or `close()`) ended the connection between frames | closed |
 * | `truncated` | the peer ended the connection in the middle of a frame | closed |
 * | `frame_too_large` | a frame over `maxMessageSize`: received (fatal) or about to be sent (nothing written) | closed / usable |
 * | `empty_frame` | a frame of length 0 arrived | usable (in sync) |
 * | `invalid_message` | a frame that is not UTF-8 JSON of a known shape arrived | usable (in sync) |
 * | `refused` | the server answered with `Error` where success was required, or is busy | usable / closed when busy |
 * | `unexpected_reply` | the server answered with a response of the wrong kind | usable |
 * | `server_identity` | the socket or its directory belongs to another user (`verifyServer`) | - |
 * | `insecure_path` | the private fallback directory is not private | - |
 * | `unsupported` | the platform cannot do this, or the daemon cannot (it speaks an older protocol) | - / usable |
 * | `io` | another operating-system error | closed |
 */
export type IpcErrorKind =
  | "not_running"
  | "timeout"
  | "aborted"
  | "closed"
  | "truncated"
  | "frame_too_large"
  | "empty_frame"
  | "invalid_message"
  | "refused"
  | "unexpected_reply"
  | "server_identity"
  | "insecure_path"
  | "unsupported"
  | "io";

/** Every error this package throws or rejects with. */
export class IpcError extends Error {
  override readonly name = "IpcError";
  /** What went wrong; see {@link IpcErrorKind}. */
  readonly kind: IpcErrorKind;
  /** The socket path or pipe name involved, when there is one. */
  readonly endpoint: string | undefined;

  constructor(kind: IpcErrorKind, message: string, options: { endpoint?: string | undefined; cause?: unknown } = {}) {
    const at = options.endpoint !== undefined && !message.includes(options.endpoint) ? ` (${options.endpoint})` : "";
    super(message + at, options.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
    this.endpoint = options.endpoint;
  }

  /** True when the connection is still in sync and usable after this error. */
  get recoverable(): boolean {
    return (
      this.kind === "timeout" ||
      this.kind === "aborted" ||
      this.kind === "empty_frame" ||
      this.kind === "invalid_message" ||
      this.kind === "unexpected_reply" ||
      this.kind === "refused" ||
      this.kind === "unsupported"
    );
  }
}
