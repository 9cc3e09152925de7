/**
 * GET /v1/requests and cluster.requests(): the requests in flight, with their node,
 * attempt, age and checkpoint age, as they really are inside a running cluster.
 */
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCluster, type Cluster, type RequestStatus } from "crew";

const HANDLERS = fileURLToPath(new URL("./fixtures/dashboard", import.meta.url));
let cluster: Cluster;
let base: string;

beforeAll(async () => {
  // One node that runs one request and holds none ahead: a second request waits in the queue.
  cluster = await createCluster({ handlers: HANDLERS, threads: 1, nodePipeline: 0, nodeLookahead: 0, logLevel: "silent", drainTimeoutMs: 1000 });
  base = `http://127.0.0.1:${(await cluster.listen({ port: 0, httpPort: 0 })).httpPort}`;
});

afterAll(() => cluster.close());

type Hooks = Partial<Record<"checkpointStored" | "attemptStarted" | "retry", () => void>>;

/** Resolves once `pred` holds for the cluster's requests: the observer says when something changed. */
function whenRequests(pred: (r: RequestStatus[]) => boolean): Promise<RequestStatus[]> {
  return new Promise((resolve) => {
    const check = (): void => {
      const now = cluster.requests();
      if (pred(now)) {
        hooks.checkpointStored = hooks.attemptStarted = hooks.retry = undefined;
        resolve(now);
      }
    };
    // A hook runs mid-change (a retried request is between its node and the queue): look just after.
    const later = (): void => queueMicrotask(check);
    const hooks: Hooks = { checkpointStored: later, attemptStarted: later, retry: later };
    cluster.observe({ checkpointStored: () => hooks.checkpointStored?.(), attemptStarted: () => hooks.attemptStarted?.(), retry: () => hooks.retry?.() });
    check();
  });
}

async function getRequests(query = ""): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}/v1/requests${query}`);
  return { status: res.status, body: await res.json() };
}

describe("the requests in flight", () => {
  it("lists a running request with its node, attempt and checkpoint age, and a queued one behind it", async () => {
    const running = new AbortController();
    const queued = new AbortController();
    const first = cluster.call("hold", { checkpoint: true }, { signal: running.signal });
    await whenRequests((r) => r.some((x) => x.checkpointAgeMs !== null));
    const second = cluster.call("hold", {}, { signal: queued.signal, priority: 3 });
    await whenRequests((r) => r.length === 2);

    const { status, body } = await getRequests();
    expect(status).toBe(200);
    expect(body.total).toBe(2);
    const [a, b] = body.requests as RequestStatus[];
    expect(a).toMatchObject({ handler: "hold", state: "running", node: "t0", lastNode: "t0", attempt: 1, priority: 0 });
    expect(a!.checkpointAgeMs).toBeGreaterThanOrEqual(0);
    expect(a!.ageMs).toBeGreaterThanOrEqual(a!.checkpointAgeMs!);
    expect(b).toMatchObject({ handler: "hold", state: "queued", node: null, lastNode: null, attempt: 0, priority: 3, checkpointAgeMs: null });
    expect(a!.ageMs).toBeGreaterThanOrEqual(b!.ageMs);
    expect(a!.id).toMatch(/^[0-9a-z]+-[0-9a-f]{8}-\d+$/); // request-id.ts: <boot id>-<n>
    expect(a!.id).not.toBe(b!.id);

    // ?limit=1: the oldest only, and the total still counts both.
    const limited = await getRequests("?limit=1");
    expect(limited.body.total).toBe(2);
    expect(limited.body.requests.map((r: RequestStatus) => r.id)).toEqual([a!.id]);

    running.abort();
    queued.abort();
    expect((await first).ok).toBe(false);
    expect((await second).ok).toBe(false);
    expect(cluster.requests()).toEqual([]);
    expect((await getRequests()).body).toEqual({ total: 0, requests: [] });
  });

  it("shows a retried request's last node while it waits for a node again, then its second attempt", async () => {
    const held = new AbortController();
    const call = cluster.call("hold", { checkpoint: true }, { signal: held.signal });
    await whenRequests((r) => r[0]?.checkpointAgeMs != null);
    expect(cluster.killNode("t0")).toBe(true);
    const [waiting] = await whenRequests((r) => r[0]?.state === "queued");
    // It keeps its checkpoint: the next attempt resumes from it.
    expect(waiting).toMatchObject({ node: null, lastNode: "t0", attempt: 1 });
    expect(waiting!.checkpointAgeMs).toBeGreaterThanOrEqual(0);
    const [again] = await whenRequests((r) => r[0]?.attempt === 2 && r[0].state === "running");
    expect(again).toMatchObject({ node: "t0", lastNode: "t0", attempt: 2 });
    held.abort();
    expect((await call).ok).toBe(false);
  });

  it("refuses a bad limit and methods other than GET", async () => {
    expect((await getRequests("?limit=-1")).status).toBe(400);
    expect((await getRequests("?limit=abc")).status).toBe(400);
    const post = await fetch(`${base}/v1/requests`, { method: "POST" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
  });
});
