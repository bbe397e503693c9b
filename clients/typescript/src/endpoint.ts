// Default endpoint and the checks made before connecting (crates/bunctl-ipc/src/sys_unix.rs,
// crates/ipc-transport-unix/src/imp/path.rs).

import { execFileSync } from "node:child_process";
import { lstat, stat } from "node:fs/promises";
import { dirname, isAbsolute, join } from "node:path";
import process from "node:process";

import { IpcError } from "./errors.js";

const isWindows = process.platform === "win32";

function currentUid(): number {
  if (typeof process.getuid !== "function") {
    throw new IpcError("unsupported", "this platform has no user ids");
  }
  return process.getuid();
}

/** The directory the default socket lives in without `XDG_RUNTIME_DIR`: `/tmp/bunctl-<uid>`. */
export function privateFallbackDir(): string {
  return `/tmp/bunctl-${currentUid()}`;
}

/**
 * The current user's daemon endpoint, by the Rust crate's rules: `$XDG_RUNTIME_DIR/bunctl.sock`
 * when that variable holds an absolute path, else `/tmp/bunctl-<uid>/bunctl.sock`.
 *
 * On Windows: `\\.\pipe\bunctl_<user SID>`, the SID read with `whoami /user` (the Rust crate
 * reads it from the process token); if that fails, the user name, as the Rust crate falls back to.
 */
export function defaultSocketPath(): string {
  if (isWindows) return pipeNameFor(windowsUser());
  const xdg = process.env.XDG_RUNTIME_DIR;
  if (xdg !== undefined && xdg !== "" && isAbsolute(xdg)) return join(xdg, "bunctl.sock");
  return join(privateFallbackDir(), "bunctl.sock");
}

let cachedWindowsUser: string | undefined;

function windowsUser(): string {
  if (cachedWindowsUser === undefined) {
    let sid: string | null = null;
    try {
      sid = sidFromWhoami(execFileSync("whoami", ["/user", "/fo", "csv", "/nh"], { encoding: "utf8", windowsHide: true }));
    } catch {
      sid = null;
    }
    cachedWindowsUser = sid ?? process.env.USERNAME ?? "unknown-user";
  }
  return cachedWindowsUser;
}

/** The daemon's pipe for a user (SID or name): `\\.\pipe\bunctl_<user>`. */
export function pipeNameFor(user: string): string {
  return `\\\\.\\pipe\\bunctl_${user}`;
}

/** The SID in the output of `whoami /user /fo csv /nh` (`"host\\user","S-1-5-21-..."`). */
export function sidFromWhoami(output: string): string | null {
  const match = /"(S-1-[0-9]+(?:-[0-9]+)+)"/.exec(output);
  return match?.[1] ?? null;
}

/** True for a Windows named-pipe path (`\\.\pipe\...` or `\\?\pipe\...`). */
export function isPipePath(path: string): boolean {
  return /^[\\/]{2}[.?][\\/]pipe[\\/]/i.test(path);
}

function errno(e: unknown): string | undefined {
  return typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : undefined;
}

/** `not_running` for a path that does not exist, `io` for anything else. */
export function statError(e: unknown, path: string): IpcError {
  const code = errno(e);
  if (code === "ENOENT" || code === "ENOTDIR") {
    return new IpcError("not_running", `no bunctl server is running at ${path}: no such file (${code})`, {
      endpoint: path,
      cause: e,
    });
  }
  return new IpcError("io", `cannot inspect ${path}: ${(e as Error).message}`, { endpoint: path, cause: e });
}

/**
 * Like the Rust client: a socket in the private fallback directory is used only if that
 * directory is a real directory (not a symlink), owned by this user, with no group/other access.
 */
export async function checkPrivateDir(path: string): Promise<void> {
  if (isWindows || isPipePath(path)) return;
  const dir = dirname(path);
  if (dir !== privateFallbackDir()) return;
  let md;
  try {
    md = await lstat(dir);
  } catch (e) {
    throw statError(e, path);
  }
  const insecure = (reason: string) =>
    new IpcError("insecure_path", `refusing to use ${dir}: ${reason}`, { endpoint: path });
  if (!md.isDirectory()) throw insecure("not a directory (a symbolic link or a file is not accepted)");
  const me = currentUid();
  if (md.uid !== me) throw insecure(`owned by uid ${md.uid}, not by this user (uid ${me})`);
  const mode = md.mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw insecure(`mode ${mode.toString(8).padStart(4, "0")} gives group or others access; it must be 0700`);
  }
}

/**
 * `verifyServer` on Unix: the socket file and the directory holding it must belong to this user
 * or to root.
 *
 * Neither Bun nor Node can read a Unix socket's peer credentials (`SO_PEERCRED`), which is what
 * the Rust client checks: the uid of the *process* that accepted the connection. Owning the
 * socket file is the next best thing (the server that bound it created it, and only the owner
 * of the directory can replace it), but it is weaker: it says who created the file, not who
 * answers on it now.
 */
export async function verifyServerFile(path: string): Promise<void> {
  if (isWindows || isPipePath(path)) return;
  const me = currentUid();
  const allowed = (uid: number) => uid === me || uid === 0;
  let sock;
  try {
    sock = await stat(path);
  } catch (e) {
    throw statError(e, path);
  }
  if (!sock.isSocket()) {
    throw new IpcError("not_running", `no bunctl server is running at ${path}: not a socket`, { endpoint: path });
  }
  if (!allowed(sock.uid)) {
    throw new IpcError(
      "server_identity",
      `refusing the server at ${path}: the socket belongs to uid ${sock.uid}, not to this user (uid ${me}) or root`,
      { endpoint: path },
    );
  }
  const dir = dirname(path);
  let d;
  try {
    d = await stat(dir);
  } catch (e) {
    throw statError(e, path);
  }
  if (!allowed(d.uid)) {
    throw new IpcError(
      "server_identity",
      `refusing the server at ${path}: its directory ${dir} belongs to uid ${d.uid}, not to this user (uid ${me}) or root`,
      { endpoint: path },
    );
  }
}
