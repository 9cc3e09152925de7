/**
 * TypeScript handlers are compiled once, in the primary, into a cache folder that the
 * nodes import as plain JavaScript. Loading tsx in every node cost +18 MB per thread
 * node, +24 MB per process node and +180–690 ms of start (issue 13's measurements).
 *
 * The compiler is esbuild (the one tsx itself runs on), loaded only on a cache miss.
 * Each handler becomes one ESM file, `<handlers>/.crew-cache/<name>.<hash>.mjs`:
 * - .ts modules it imports by relative path are bundled in; every other import (.js
 *   files, packages, node: builtins) stays an import, so it resolves as it would from
 *   the handler's own folder and a .js module is still one shared instance;
 * - `import.meta.url`/`dirname`/`filename` name the original .ts file;
 * - an inline source map makes stack traces (and so import errors) name the .ts file and line.
 * The cache is invalidated by the mtime and size of every input esbuild read; outputs
 * are named by a hash of their content and written atomically (write, then rename), so
 * primaries that share a folder never see half a file.
 *
 * This is compiling, not importing: the primary still never runs handler code.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Logger } from "pino";
import { HandlerLoadError } from "../errors.js";
import type { HandlerSet } from "./handler-registry.js";

/** `set` with its TypeScript handlers compiled (see transpileHandlers). */
export async function compileHandlers(set: HandlerSet, log: Logger): Promise<HandlerSet> {
  return { ...set, compiled: await transpileHandlers(set.files, log) };
}

/** Files compiled here; others are imported by the nodes as they are. */
export const TS_HANDLER = /\.[cm]?ts$/;
export const CACHE_FOLDER = ".crew-cache";
/** Bumped when the build settings below change, so old caches are rebuilt. */
const CACHE_FORMAT = 1;

interface Manifest {
  format: number;
  source: string;
  /** Every file esbuild read: absolute path → [mtimeMs, size]. */
  inputs: Record<string, [number, number]>;
  output: string;
}

/**
 * Compiles the .ts/.mts handlers among `files` (name → absolute path) and returns
 * name → compiled .mjs path for them. A handler folder that cannot be written to is
 * logged once and left out: its nodes fall back to tsx, as before.
 * @throws HandlerLoadError naming the file, line and column of a syntax error.
 */
export async function transpileHandlers(files: Record<string, string>, log: Logger): Promise<Record<string, string>> {
  const compiled: Record<string, string> = {};
  for (const [name, file] of Object.entries(files)) {
    if (!TS_HANDLER.test(file)) continue;
    const cache = join(dirname(file), CACHE_FOLDER);
    try {
      mkdirSync(cache, { recursive: true });
      writeFileSync(join(cache, ".gitignore"), "*\n");
    } catch (err) {
      log.warn({ handler: name, folder: cache, err: (err as Error).message }, "cannot write the TypeScript cache: nodes load tsx instead");
      continue;
    }
    compiled[name] = cached(cache, name, file) ?? (await build(cache, name, file));
  }
  return compiled;
}

/** The compiled file when its manifest says every input is unchanged, else null. */
function cached(cache: string, name: string, file: string): string | null {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(join(cache, `${name}.json`), "utf8")) as Manifest;
  } catch {
    return null;
  }
  if (manifest.format !== CACHE_FORMAT || manifest.source !== file) return null;
  for (const [input, [mtimeMs, size]] of Object.entries(manifest.inputs)) {
    const now = statOrNull(input);
    if (!now || now.mtimeMs !== mtimeMs || now.size !== size) return null;
  }
  const output = join(cache, manifest.output);
  return statOrNull(output) ? output : null;
}

async function build(cache: string, name: string, file: string): Promise<string> {
  const esbuild = await import("esbuild");
  const url = pathToFileURL(file).href;
  let result: import("esbuild").BuildResult<{ write: false; metafile: true }>;
  try {
    result = await esbuild.build({
      entryPoints: [file],
      bundle: true,
      write: false,
      metafile: true,
      format: "esm",
      platform: "node",
      target: `node${process.versions.node}`,
      outfile: join(cache, `${name}.mjs`),
      sourcemap: "inline",
      sourcesContent: false,
      logLevel: "silent",
      define: {
        "import.meta.url": JSON.stringify(url),
        "import.meta.filename": JSON.stringify(file),
        "import.meta.dirname": JSON.stringify(dirname(file)),
      },
      plugins: [keepJavaScriptImports],
    });
  } catch (err) {
    throw new HandlerLoadError(`${file}: does not compile: ${describeBuildFailure(err)}`, { cause: err });
  }
  const code = result.outputFiles[0]!.contents;
  const output = `${name}.${createHash("sha256").update(code).digest("hex").slice(0, 16)}.mjs`;
  const inputs: Manifest["inputs"] = {};
  for (const input of Object.keys(result.metafile.inputs)) {
    const path = join(process.cwd(), input); // metafile paths are relative to the working folder
    const s = statOrNull(path);
    if (s) inputs[path] = [s.mtimeMs, s.size];
  }
  writeAtomically(join(cache, output), code);
  writeAtomically(join(cache, `${name}.json`), JSON.stringify({ format: CACHE_FORMAT, source: file, inputs, output } satisfies Manifest));
  return join(cache, output);
}

/**
 * Bundles only TypeScript. A bare specifier (a package, a node: builtin) stays as
 * written; a relative or absolute import that resolves to anything but TypeScript
 * (.js, .mjs, .cjs) becomes an import of that file's URL; JSON is bundled, as Node
 * would need an import attribute for it.
 */
const keepJavaScriptImports: import("esbuild").Plugin = {
  name: "crew-keep-js-imports",
  setup(build) {
    build.onResolve({ filter: /.*/ }, async (args) => {
      if (args.kind === "entry-point" || args.pluginData === SKIP) return undefined;
      if (!/^\.\.?(\/|$)|^\//.test(args.path)) return { path: args.path, external: true };
      const resolved = await build.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: SKIP });
      if (resolved.errors.length > 0 || BUNDLED.test(resolved.path)) return undefined;
      return { path: pathToFileURL(resolved.path).href, external: true };
    });
  },
};
const SKIP = Symbol("resolving");
const BUNDLED = /\.([cm]?ts|tsx|json)$/;

/** "file:line:column: text" for each of esbuild's errors. */
function describeBuildFailure(err: unknown): string {
  const errors = (err as { errors?: import("esbuild").Message[] }).errors;
  if (!errors?.length) return (err as Error).message;
  return errors
    .map((e) => (e.location ? `${join(process.cwd(), e.location.file)}:${e.location.line}:${e.location.column + 1}: ${e.text}` : e.text))
    .join("; ");
}

function writeAtomically(path: string, data: string | Uint8Array): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

function statOrNull(path: string): { mtimeMs: number; size: number } | null {
  try {
    return statSync(path);
  } catch {
    return null;
  }
}
