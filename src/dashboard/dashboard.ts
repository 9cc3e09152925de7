/**
 * The dashboard on the HTTP front: `GET /` (the page and its files) and `GET /v1/events`
 * (its live stream). The front mounts it with `isDashboardPath` and `serve`; the page's
 * admin buttons use the front's own admin endpoints, under their rules.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ClusterView } from "../primary/cluster-view.js";
import { isAsset, sendAsset } from "./assets.js";
import { StreamHub, type StreamLimits } from "./hub.js";
import { DashboardModel } from "./model.js";

export const EVENTS_PATH = "/v1/events";

/** Whether the dashboard serves `path` (GET and HEAD only). */
export function isDashboardPath(path: string): boolean {
  return path === EVENTS_PATH || isAsset(path);
}

export class Dashboard {
  readonly model: DashboardModel;
  readonly hub: StreamHub;

  constructor(cluster: ClusterView, limits: Partial<StreamLimits> = {}) {
    this.model = new DashboardModel(cluster);
    this.hub = new StreamHub(this.model, cluster.log, limits);
    this.model.onEvent = () => this.hub.notify();
  }

  /** Serves one of the dashboard's paths (isDashboardPath said yes). */
  async serve(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (path === EVENTS_PATH) return this.hub.open(req, res);
    await sendAsset(res, path, req.method === "HEAD");
  }

  /** Ends the streams and stops sampling. */
  close(): void {
    this.hub.close();
    this.model.close();
  }
}
