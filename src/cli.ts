/**
 * The `crew` command line. Each command lives in src/commands/; this file only wires
 * them into yargs. Options are checked by the same resolveOptions as createCluster.
 */
import yargs from "yargs";
import { CrewError } from "./errors.js";
import { UsageError } from "./commands/usage-error.js";
import { startCommand } from "./commands/start.js";
import { runCommand } from "./commands/run.js";
import { statusCommand } from "./commands/status.js";
import { benchCommand } from "./commands/bench.js";
import { reloadCommand } from "./commands/reload.js";

export async function main(argv: string[]): Promise<void> {
  try {
    await yargs(argv)
      .scriptName("crew")
      // Flags from the flag table stay text until config-sources.ts reads them, so a bad
      // one is quoted as typed; options with a yargs type still get it.
      .parserConfiguration({ "parse-numbers": false, "parse-positional-numbers": false })
      .usage("$0 <command> [options]")
      .command(startCommand)
      .command(runCommand)
      .command(statusCommand)
      .command(benchCommand)
      .command(reloadCommand)
      .demandCommand(1, "Name a command: crew start | run | status | reload | bench (crew <command> --help for its options)")
      .strict()
      .recommendCommands()
      .help()
      .alias("h", "help")
      .version()
      .wrap(Math.min(110, process.stdout.columns || 110))
      .fail((message, err, y) => {
        if (err) throw err;
        console.error(`${y.help() && ""}crew: ${message}\nRun crew --help for usage.`);
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
