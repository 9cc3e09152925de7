/**
 * `crew reload`: POST /v1/reload to a running cluster. Prints what changed (handlers
 * added, changed, removed; old node → new node) once every node runs the new code, or
 * the error (the file that did not load, and why) and exits 1; the cluster then keeps
 * serving the code it had.
 */
import type { ArgumentsCamelCase, Argv, CommandModule } from "yargs";
import type { ReloadResult } from "../primary/reloader.js";
import { hostPort } from "../protocol/address.js";
import { clusterAddress } from "./config-sources.js";
import { CLIENT_FLAGS, declareFlags, stringOption } from "./flags.js";

interface ReloadArgs {
  adminToken?: string;
  json: boolean;
}

export const reloadCommand: CommandModule<object, ReloadArgs> = {
  command: "reload",
  describe: "Reload a running cluster's handlers with no downtime (new nodes replace old ones one at a time)",
  builder: (y: Argv) =>
    declareFlags(y, CLIENT_FLAGS)
      .option("admin-token", stringOption("admin-token", "The cluster's --admin-token (needed from other hosts than loopback)"))
      .option("json", { type: "boolean", default: false, describe: "Print the reply's JSON as it is" }) as unknown as Argv<ReloadArgs>,
  handler: async (args: ArgumentsCamelCase<ReloadArgs>) => {
    const { host, httpPort } = clusterAddress(args);
    const url = `http://${hostPort(host, httpPort)}/v1/reload`;
    const headers: Record<string, string> = {};
    if (args.adminToken) headers.authorization = `Bearer ${args.adminToken}`;
    let res: Response;
    try {
      // No timeout: a reload lasts as long as the old nodes take to finish what they hold.
      res = await fetch(url, { method: "POST", headers });
    } catch (err) {
      const cause = (err as Error & { cause?: { code?: string } }).cause;
      console.error(`crew: could not reach ${url}: ${cause?.code ?? (err as Error).message} (is \`crew start\` running there?)`);
      process.exitCode = 1;
      return;
    }
    const text = await res.text();
    let body: { reloaded?: ReloadResult; error?: { code: string; message: string } };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      body = { error: { code: `HTTP ${res.status}`, message: text.slice(0, 500) } };
    }
    if (args.json) process.stdout.write(`${text}\n`);
    if (!res.ok || !body.reloaded) {
      const error = body.error ?? { code: `HTTP ${res.status}`, message: "no reply body" };
      console.error(`crew: reload failed: ${error.code}: ${error.message}\nThe cluster keeps serving the handlers it had.`);
      process.exitCode = 1;
      return;
    }
    if (!args.json) process.stdout.write(`${formatReload(body.reloaded)}\n`);
  },
};

/** A reload's result as lines of text. */
export function formatReload(r: ReloadResult): string {
  const list = (names: string[]) => (names.length === 0 ? "none" : names.join(", "));
  return [
    `reloaded in ${r.ms} ms`,
    `  added:   ${list(r.added)}`,
    `  changed: ${list(r.changed.map((n) => `${n} (${r.versions[n]})`))}`,
    `  removed: ${list(r.removed)}`,
    `  nodes:   ${r.replaced.map((p) => `${p.from} → ${p.to}`).join(", ")}`,
  ].join("\n");
}
