/**
 * A web page must not drive the cluster: the HTTP front checks Host (DNS rebinding),
 * Origin (cross-site pages), Sec-Fetch-Site on POSTs, and the run body's Content-Type
 * (form and text/plain "simple" requests), on a real socket with the headers a browser sends.
 */
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCluster, type Cluster } from "crew";

let cluster: Cluster;
let port: number;

beforeAll(async () => {
  cluster = await createCluster({ handlers: "workers", threads: 1, logLevel: "silent", allowedHosts: "crew.internal" });
  port = (await cluster.listen({ port: 0, httpPort: 0 })).httpPort!;
});

afterAll(() => cluster.close());

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: any;
}

/** One HTTP request with exactly these headers (node:http lets a test set Host and Origin). */
function call(method: string, path: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, headers, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: text === "" ? null : JSON.parse(text) }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const json = { "content-type": "application/json" };

describe("Host", () => {
  it.each([["127.0.0.1"], ["localhost"], ["LOCALHOST"], ["app.localhost"], ["[::1]"], ["crew.internal"]])("answers Host %s", async (host) => {
    const reply = await call("POST", "/v1/run/echo", { ...json, host: `${host}:${port}` }, '"hi"');
    expect(reply.status).toBe(200);
    expect(reply.body.result).toBe("hi");
  });

  it("refuses a foreign Host (DNS rebinding) with 403 E_FORBIDDEN, on every route", async () => {
    const before = (await cluster.status()).requests.accepted;
    const run = await call("POST", "/v1/run/echo", { ...json, host: `evil.example:${port}` }, '"hi"');
    expect(run.status).toBe(403);
    expect(run.body.error.code).toBe("E_FORBIDDEN");
    expect(run.body.error.message).toContain("--allowed-hosts");
    const status = await call("GET", "/v1/status", { host: `rebind.evil.example:${port}` });
    expect(status.status).toBe(403);
    expect(status.body.error.code).toBe("E_FORBIDDEN");
    expect((await cluster.status()).requests.accepted).toBe(before);
  });
});

describe("Origin", () => {
  it("answers a page served by this very front", async () => {
    const reply = await call("POST", "/v1/run/echo", { ...json, host: `127.0.0.1:${port}`, origin: `http://127.0.0.1:${port}` }, "1");
    expect(reply.status).toBe(200);
  });

  it.each([["https://evil.example"], [`http://localhost:${port + 1}`], ["null"]])("refuses origin %s with 403 E_FORBIDDEN", async (origin) => {
    const reply = await call("POST", "/v1/run/echo", { ...json, origin }, "1");
    expect(reply.status).toBe(403);
    expect(reply.body.error.code).toBe("E_FORBIDDEN");
    expect(reply.headers["access-control-allow-origin"]).toBeUndefined();
  });

  it("refuses an admin call from a foreign origin even from loopback, and kills nothing", async () => {
    const restarts = cluster.nodes[0]!.restarts;
    const reply = await call("POST", "/v1/nodes/t0/kill", { origin: "https://evil.example" });
    expect(reply.status).toBe(403);
    expect(reply.body.error.code).toBe("E_FORBIDDEN");
    const crossSite = await call("POST", "/v1/nodes/t0/kill", { "sec-fetch-site": "cross-site" });
    expect(crossSite.status).toBe(403);
    expect(crossSite.body.error.code).toBe("E_FORBIDDEN");
    expect(cluster.nodes[0]!.state).toBe("up");
    expect(cluster.nodes[0]!.restarts).toBe(restarts);
  });
});

describe("POST /v1/run Content-Type", () => {
  it.each([["text/plain;charset=UTF-8"], ["application/x-www-form-urlencoded"], ["multipart/form-data; boundary=x"], [undefined]])(
    "refuses %s with 400 E_BAD_REQUEST, and nothing runs",
    async (type) => {
      const before = (await cluster.status()).requests.accepted;
      const reply = await call("POST", "/v1/run/echo", type === undefined ? {} : { "content-type": type }, '{"a":1}');
      expect(reply.status).toBe(400);
      expect(reply.body.error.code).toBe("E_BAD_REQUEST");
      expect(reply.body.error.message).toContain("application/json");
      expect((await cluster.status()).requests.accepted).toBe(before);
    },
  );

  it("takes application/json with parameters", async () => {
    const reply = await call("POST", "/v1/run/echo", { "content-type": "Application/JSON; charset=utf-8" }, "[1]");
    expect(reply).toMatchObject({ status: 200, body: { result: [1] } });
  });
});

describe("codes of the routes", () => {
  it("answers 404 E_NOT_FOUND to an unknown path and to a node that is not up", async () => {
    expect(await call("GET", "/nope", {})).toMatchObject({ status: 404, body: { error: { code: "E_NOT_FOUND" } } });
    expect(await call("POST", "/v1/nodes/t9/kill", {})).toMatchObject({ status: 404, body: { error: { code: "E_NOT_FOUND" } } });
  });

  it("answers 405 E_METHOD_NOT_ALLOWED with an Allow header", async () => {
    const reply = await call("DELETE", "/healthz", {});
    expect(reply).toMatchObject({ status: 405, body: { error: { code: "E_METHOD_NOT_ALLOWED" } } });
    expect(reply.headers.allow).toBe("GET, HEAD");
  });
});
