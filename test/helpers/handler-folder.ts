/**
 * A handlers folder of the test's own in a temp dir, which the test edits while a cluster
 * serves it (reload, --watch): a copy of a fixture folder plus files written on the spot.
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export class HandlerFolder {
  readonly dir: string;

  /** A fresh temp folder holding `files` copied from the `fixture` folder. */
  constructor(fixture?: string, files: string[] = []) {
    this.dir = mkdtempSync(join(tmpdir(), "crew-handlers-"));
    for (const file of files) cpSync(join(fixture!, file), this.path(file));
  }

  path(file: string): string {
    return join(this.dir, file);
  }

  write(file: string, text: string): void {
    writeFileSync(this.path(file), text);
  }

  remove(file: string): void {
    rmSync(this.path(file));
  }

  /** A handler that answers its version number, its node and attempt. */
  writeVersion(name: string, v: number): void {
    this.write(`${name}.js`, `export default (payload, ctx) => ({ v: ${v}, node: ctx.node.id, attempt: ctx.attempt });\n`);
  }

  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
