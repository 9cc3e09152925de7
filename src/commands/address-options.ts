/** The cluster-address flags every command shares: one set of defaults and words. */
import { DEFAULT_HOST, DEFAULT_HTTP_PORT, DEFAULT_PORT } from "../protocol/address.js";

export const hostOption = { type: "string", default: DEFAULT_HOST, describe: "The cluster's address" } as const;
export const portOption = { type: "number", default: DEFAULT_PORT, describe: "The cluster's TCP (NDJSON) port" } as const;
export const httpPortOption = { type: "number", default: DEFAULT_HTTP_PORT, describe: "The cluster's HTTP port" } as const;
