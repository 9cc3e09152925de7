/**
 * The `crew` command line. Each command lives in src/commands/; this file only wires
 * them into yargs. Options are checked by the same resolveOptions as createCluster.
 */
// Only small modules here, loaded before main() forks the thread host: each static import delays the fork.
import type { Argv, CommandModule } from "yargs";
import { CrewError } from "./errors.js";
import { UsageError } from "./commands/usage-error.js";
import { nearest } from "./suggest.js";
import { preforkThreadHost } from "./nodes/host-prefork.js";

/**
 * Each command's module, imported only when it is the one run: `crew start` does not
 * pay for the load generator, the client or the status table (nor they for the cluster).
 */
const COMMANDS: Record<string, () => Promise<CommandModule<object, never>>> = {
  start: async () => (await import("./commands/start.js")).startCommand as CommandModule<object, never>,
  run: async () => (await import("./commands/run.js")).runCommand as CommandModule<object, never>,
  status: async () => (await import("./commands/status.js")).statusCommand as CommandModule<object, never>,
  bench: async () => (await import("./commands/bench.js")).benchCommand as CommandModule<object, never>,
  reload: async () => (await import("./commands/reload.js")).reloadCommand as CommandModule<object, never>,
};

/** The commands to declare: only the one named first, or all (no command, a typo, --help, --version). */
async function commandsFor(argv: string[]): Promise<Array<CommandModule<object, never>>> {
  const first = argv.find((arg) => !arg.startsWith("-"));
  const named = first !== undefined && Object.hasOwn(COMMANDS, first) ? [first] : Object.keys(COMMANDS);
  return Promise.all(named.map((name) => COMMANDS[name]!()));
}

/**
 * `crew run … | head`, `crew status --watch | head`: once the reader of stdout is gone,
 * the command ends quietly (like a program SIGPIPE ends) instead of dying on an unhandled
 * EPIPE with a stack trace. Not for `crew start`: the primary outlives its log reader
 * (logger.ts drops those lines).
 */
function endWhenStdoutCloses(): void {
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE") throw err;
    process.exit(typeof process.exitCode === "number" ? process.exitCode : 0);
  });
}

/**
 * `crew start` followed by plain flags runs without loading yargs (~100 ms of the start;
 * commands/plain-flags.ts); false, having started nothing, when the line needs yargs.
 */
async function startWithoutYargs(argv: string[]): Promise<boolean> {
  const [{ readPlainFlags }, { START_FLAGS }, { startCommand }] = await Promise.all([
    import("./commands/plain-flags.js"),
    import("./commands/flags.js"),
    import("./commands/start.js"),
  ]);
  const flags = readPlainFlags(argv.slice(1), START_FLAGS);
  if (flags === null) return false;
  await startCommand.handler({ _: [], $0: "crew start", ...flags });
  return true;
}

/**
 * yargs' "Unknown argument(s): threds" with the nearest flag the command has, as the
 * config file and createCluster's options say it: "unknown flag --threds (did you mean --threads?)".
 */
function withSuggestions(message: string, cli: Argv, argv: string[]): string {
  const unknown = /^Unknown arguments?: (.+)$/.exec(message);
  if (!unknown) return message;
  // getOptions(): a method of the yargs instance that @types/yargs leaves out.
  const declared = (cli as unknown as { getOptions(): { key: Record<string, unknown> } }).getOptions().key;
  const flags = Object.keys(declared).filter((key) => !/[A-Z]/.test(key) && key.length > 1);
  // yargs names unknown flags and extra words alike: a flag is one the command line has with dashes.
  const given = new Set(argv.filter((arg) => arg.startsWith("-")).flatMap((arg) => {
    const name = arg.replace(/^-+/, "").split("=")[0]!;
    return [name, name.replace(/^no-/, "")];
  }));
  return unknown[1]!
    .split(", ")
    .map((name) => {
      if (!given.has(name)) return `unexpected argument ${JSON.stringify(name)}`;
      const near = nearest(name, flags);
      const flag = name.length > 1 ? `--${name}` : `-${name}`;
      return `unknown flag ${flag}${near ? ` (did you mean --${near}?)` : ""}`;
    })
    .join("; ");
}

export async function main(argv: string[]): Promise<void> {
  const first = argv.find((arg) => !arg.startsWith("-"));
  // The thread host boots while this process loads the rest (host-prefork.ts).
  if (first === "start") preforkThreadHost();
  else endWhenStdoutCloses();
  try {
    if (argv[0] === "start" && (await startWithoutYargs(argv))) return;
    const [{ default: yargs }, { PARSER_CONFIGURATION }, commands] = await Promise.all([import("yargs"), import("./commands/flags.js"), commandsFor(argv)]);
    // `crew <command> …` declares that one command as the default command, under the name
    // "crew <command>": right after running a command that is not the default one, yargs
    // renders and caches its whole help (command.js, cacheHelpMessage), 120–180 ms of
    // cliui and string-width for crew start's flags, on the primary's one thread while
    // its nodes start. No command, a typo or a bare --help declares them all.
    const only = commands.length === 1 ? commands[0]! : null;
    const at = only ? argv.indexOf(first!) : -1;
    const rest = only ? [...argv.slice(0, at), ...argv.slice(at + 1)] : argv;
    let cli = yargs(rest)
      .scriptName(only ? `crew ${first}` : "crew")
      .parserConfiguration(PARSER_CONFIGURATION);
    if (only) {
      cli = cli.command({ ...only, command: String(only.command).replace(/^\S+/, "$0") });
    } else {
      cli = cli.usage("$0 <command> [options]");
      for (const command of commands) cli = cli.command(command);
      cli = cli
        .demandCommand(1, "Name a command: crew start | run | status | reload | bench (crew <command> --help for its options)")
        .recommendCommands();
    }
    await cli
      .strict()
      .help()
      .alias("h", "help")
      .version()
      .wrap(Math.min(110, process.stdout.columns || 110))
      .fail((message, err, y) => {
        // yargs wraps what an option's coerce() throws (a bad --priority) in a YError: a usage error too.
        if (err && err.name !== "YError") throw err;
        console.error(`${y.help() && ""}crew: ${withSuggestions(message ?? err?.message ?? "", cli, argv)}\nRun ${only ? `crew ${first}` : "crew"} --help for usage.`);
        process.exit(2);
      })
      .parseAsync();
  } catch (err) {
    if (err instanceof UsageError) {
      // A bad flag, variable, config key or address: one line that names it.
      console.error(`crew: ${err.message}`);
    } else if (err instanceof CrewError) {
      console.error(`crew: ${err.code}: ${err.message}`);
    } else {
      console.error(`crew: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
    process.exit(1);
  }
}
