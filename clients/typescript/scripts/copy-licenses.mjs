// `npm pack`/`npm publish` (prepack): the package carries the repository's license texts. npm
// does not pack symbolic links, so they are copied from the root (and git-ignored here).
import { copyFileSync } from "node:fs";

for (const name of ["LICENSE-MIT", "LICENSE-APACHE"]) {
  copyFileSync(new URL(`../../../${name}`, import.meta.url), new URL(`../${name}`, import.meta.url));
}
