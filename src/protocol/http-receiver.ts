/** The HTTP front (issue 5 fills this in). */
import { InvalidOptionError } from "../errors.js";
import type { Cluster, Front, ListenOptions } from "../primary/cluster.js";

export async function startHttpFront(_cluster: Cluster, _options: ListenOptions): Promise<{ front: Front; port: number }> {
  throw new InvalidOptionError("httpPort: the HTTP front is not built yet");
}
