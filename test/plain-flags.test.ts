/**
 * `crew start` reads plain flag lines without yargs (commands/plain-flags.ts). It must
 * read exactly what yargs, set up as the CLI sets it up, reads — or decline and leave the
 * line to yargs. Checked over generated lines of START_FLAGS' flags in every spelling,
 * mixed with words only yargs understands.
 */
import fc from "fast-check";
import yargs from "yargs";
import { describe, expect, it } from "vitest";
import { declareFlags, kebab, PARSER_CONFIGURATION, START_FLAGS } from "../dist/commands/flags.js";
import type { FlagTable } from "../dist/commands/flags.js";
import { readPlainFlags } from "../dist/commands/plain-flags.js";

const TABLE: FlagTable = START_FLAGS;

/** yargs' reading of `args` as `crew start` declares its flags; throws what yargs refuses. */
function yargsRead(args: string[]): Record<string, unknown> {
  const y = yargs(args).parserConfiguration(PARSER_CONFIGURATION).help(false).version(false).exitProcess(false);
  return declareFlags(y, TABLE)
    .strict()
    .fail((message, err) => {
      throw err ?? new Error(message);
    })
    .parseSync() as Record<string, unknown>;
}

/** The table's keys yargs gave a value for, as plain-flags.ts gives them. */
function flagsOf(argv: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.keys(TABLE).filter((key) => argv[key] !== undefined).map((key) => [key, argv[key]]));
}

const VALUES = ["2", "0", "1.5", "0x10", "1..4", "-3", "info", "weighted", "./workers", "a b", "true", "false", "", "=x", "--x", "p=3,t=1"];
const YARGS_ONLY = ["-h", "--help", "--version", "--no-watch", "--maxQueue", "extra", "--", "-t", "-", "--unknown-flag", "-5"];

/** One of `keys`' flags in one of its spellings, or a word only yargs reads. */
const wordOf = (keys: string[]) =>
  fc.oneof(
    {
      weight: 5,
      arbitrary: fc.tuple(fc.constantFrom(...keys), fc.constantFrom(...VALUES), fc.nat(2)).map(([key, value, form]) => {
        const flag = `--${kebab(key)}`;
        if (TABLE[key]!.kind === "boolean") return form === 0 ? [flag] : form === 1 ? [flag, value] : [`${flag}=${value}`];
        return form === 0 ? [flag, value] : form === 1 ? [`${flag}=${value}`] : [flag];
      }),
    },
    { weight: 1, arbitrary: fc.constantFrom(...YARGS_ONLY).map((w) => [w]) },
  );

/** A line of up to 8 words over a few of the table's flags, so that lines often give one twice. */
const line = fc.subarray(Object.keys(TABLE), { minLength: 1, maxLength: 4 }).chain((keys) => fc.array(wordOf(keys), { maxLength: 8 }));

describe("crew start's flags without yargs", () => {
  it("reads a typical line, and the values stay text", () => {
    expect(readPlainFlags(["--threads", "4", "--port=7070", "--watch", "--log-level", "warn", "--handlers", "./w"], TABLE)).toEqual({
      threads: "4",
      port: "7070",
      watch: true,
      logLevel: "warn",
      handlers: "./w",
    });
    expect(readPlainFlags([], TABLE)).toEqual({});
  });

  it("leaves help, version, positionals, negations, camelCase and missing values to yargs", () => {
    for (const args of [["--help"], ["-h"], ["--version"], ["extra"], ["--no-watch"], ["--maxQueue", "5"], ["--port"], ["--port", "--threads", "2"], ["--watch", "true"], ["--seed", "-5"], ["--watch=false"]]) {
      expect(readPlainFlags(args, TABLE), args.join(" ")).toBeNull();
    }
  });

  it("reads a flag given twice as yargs does: a value flag's values for the same refusal, a boolean flag as true", () => {
    for (const args of [["--port", "1", "--port", "2"], ["--watch", "--watch"], ["--handlers="]]) {
      expect(readPlainFlags(args, TABLE), args.join(" ")).toEqual(flagsOf(yargsRead(args)));
    }
    expect(readPlainFlags(["--port", "1", "--port", "2"], TABLE)).toEqual({ port: ["1", "2"] });
  });

  it("reads what yargs reads, whenever it reads a line at all", () => {
    let read = 0;
    fc.assert(
      fc.property(line, (words) => {
        const args = words.flat();
        const plain = readPlainFlags(args, TABLE);
        if (plain === null) return;
        read++;
        expect(flagsOf(yargsRead(args))).toEqual(plain);
      }),
      { numRuns: 2000 },
    );
    // Not a vacuous pass: most generated lines are plain ones.
    expect(read).toBeGreaterThan(200);
  });
});
