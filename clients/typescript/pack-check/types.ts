// Type-checked by `cargo xtask typescript-pack` in a fresh project that installed the packed
// tarball: the package's "types" resolve by its name, and a wrong message does not compile.
import { type IpcMessage, connect } from "bunctl-ipc";

const stop: IpcMessage = { Stop: { name: "web" } };
// @ts-expect-error: a misspelt variant is not an IpcMessage
const misspelt: IpcMessage = { Stpo: { name: "web" } };

export const checked = [connect, stop, misspelt];
