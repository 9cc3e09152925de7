/**
 * The dashboard's event stream (GET /v1/events): what it sends, that a kill reaches it at
 * once, that it closes with its viewer and is capped, and that a viewer who does not
 * read costs a bounded buffer: it skips messages and catches up, or is dropped.
 */
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import { connect, type AddressInfo, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCluster, type Cluster } from "crew";
import { StreamHub, DEFAULT_STREAM_LIMITS } from "../dist/dashboard/hub.js";
import { Ring } from "../dist/dashboard/ring.js";
import { Series } from "../dist/dashboard/series.js";
import { LogCapture } from "./helpers/cluster.js";

let cluster: Cluster;
let base: string;

beforeAll(async () => {
  cluster = await createCluster({ handlers: "workers", threads: 2, logLevel: "silent" });
  base = `http://127.0.0.1:${(await cluster.listen({ port: 0, httpPort: 0 })).httpPort}`;
});

afterAll(() => cluster.close());

interface Message {
  type: string;
  data: any;
}

/** An EventSource reader over fetch: the messages as they come, parsed. */
class Stream {
  readonly status: number;
  readonly contentType: string | null;
  readonly #controller: AbortController;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array> | null;
  #text = "";

  private constructor(status: number, contentType: string | null, controller: AbortController, reader: ReadableStreamDefaultReader<Uint8Array> | null) {
    this.status = status;
    this.contentType = contentType;
    this.#controller = controller;
    this.#reader = reader;
  }

  static async open(url = `${base}/v1/events`): Promise<Stream> {
    const controller = new AbortController();
    const res = await fetch(url, { signal: controller.signal });
    const reader = res.status === 200 ? res.body!.getReader() : (await res.text(), null);
    return new Stream(res.status, res.headers.get("content-type"), controller, reader);
  }

  /** The next message that `pred` accepts (earlier ones are read and passed over). */
  async next(pred: (m: Message) => boolean = () => true): Promise<Message> {
    const decoder = new TextDecoder();
    for (;;) {
      let end: number;
      while ((end = this.#text.indexOf("\n\n")) !== -1) {
        const block = this.#text.slice(0, end);
        this.#text = this.#text.slice(end + 2);
        const type = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (type === undefined || data === undefined) continue;
        const message = { type, data: JSON.parse(data) };
        if (pred(message)) return message;
      }
      const { value, done } = await this.#reader!.read();
      if (done) throw new Error("the stream ended");
      this.#text += decoder.decode(value, { stream: true });
    }
  }

  close(): void {
    this.#controller.abort();
  }
}

describe("GET /v1/events on a cluster", () => {
  it("streams ticks with the nodes, queue, counters and requests, and the chart samples", async () => {
    const stream = await Stream.open();
    try {
      expect(stream.status).toBe(200);
      expect(stream.contentType).toMatch(/^text\/event-stream/);
      await cluster.run("echo", 1);
      const { data } = await stream.next((m) => m.type === "tick" && m.data.samples.some((s: any) => s.ok > 0));
      expect(data.snapshot.hosts).toHaveLength(1);
      expect(data.snapshot.hosts[0].nodes.map((n: any) => n.id)).toEqual(["t0", "t1"]);
      expect(data.snapshot.hosts[0].nodes[0]).toMatchObject({ kind: "thread", state: "up" });
      expect(data.snapshot.queue).toEqual({ length: 0, max: 10_000 });
      expect(data.snapshot.counters.completed).toBeGreaterThanOrEqual(1);
      expect(data.snapshot.requests).toEqual([]);
      const sample = data.samples.find((s: any) => s.ok > 0);
      expect(sample.p50).toBeGreaterThan(0);
      expect(sample.p99).toBeGreaterThanOrEqual(sample.p50);
    } finally {
      stream.close();
    }
  });

  it("sends a kill, the crash, the retry and the restart as they happen", async () => {
    const stream = await Stream.open();
    try {
      await stream.next((m) => m.type === "tick");
      const held = new AbortController();
      const call = cluster.call("sleep", { ms: 60_000 }, { signal: held.signal });
      const { data } = await stream.next((m) => m.type === "tick" && m.data.snapshot.requests.some((r: any) => r.state === "running"));
      const node = data.snapshot.requests[0].node as string;
      const res = await fetch(`${base}/v1/nodes/${node}/kill`, { method: "POST" });
      expect(res.status).toBe(202);
      // `events` messages come between ticks, as entries are added.
      const seen = new Set<string>();
      while (!["kill", "crash", "retry", "restart"].every((k) => seen.has(k))) {
        const { data: more } = await stream.next((m) => m.data.events.length > 0);
        for (const e of more.events) if (e.node === node) seen.add(e.kind);
      }
      held.abort();
      expect((await call).ok).toBe(false);
    } finally {
      stream.close();
    }
  });

  it("caps the streams, and a stream's slot frees when its viewer leaves", async () => {
    const streams = await Promise.all(Array.from({ length: DEFAULT_STREAM_LIMITS.maxClients }, () => Stream.open()));
    try {
      expect(streams.map((s) => s.status)).toEqual(streams.map(() => 200));
      const over = await fetch(`${base}/v1/events`);
      expect(over.status).toBe(503);
      expect(((await over.json()) as any).error.code).toBe("E_OVERLOADED");
      // Each reader has had its first message, then one leaves: its slot comes back.
      await Promise.all(streams.map((s) => s.next()));
      streams.pop()!.close();
      let again: Stream | null = null;
      while (!again || again.status !== 200) again = await Stream.open(); // the close reaches the server in its own time
      streams.push(again);
      expect(again.status).toBe(200);
    } finally {
      for (const s of streams) s.close();
    }
  });
});

describe("the page's files and the stream's ends", () => {
  it("serves the page with a policy that allows only its own origin, and uPlot from its installed package", async () => {
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(page.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(page.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    const html = await page.text();
    for (const file of ["/dashboard/app.js", "/dashboard/app.css", "/dashboard/uplot.js", "/dashboard/uplot.css"]) {
      expect(html).toContain(file);
      const res = await fetch(`${base}${file}`);
      expect(res.status).toBe(200);
      expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(500);
    }
    const uplot = await (await fetch(`${base}/dashboard/uplot.js`)).text();
    expect(uplot).toContain("uPlot");
    expect((await fetch(`${base}/dashboard/nothing.js`)).status).toBe(404);
    expect((await fetch(`${base}/dashboard/../package.json`)).status).toBe(404);
    expect((await fetch(`${base}/`, { method: "POST" })).status).toBe(405);
  });

  it("answers HEAD /v1/events with the stream's headers and no stream", async () => {
    const res = await fetch(`${base}/v1/events`, { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
  });

  it("refuses the stream to a page from another origin", async () => {
    const res = await fetch(`${base}/v1/events`, { headers: { origin: "http://evil.example" } });
    expect(res.status).toBe(403);
  });

  it("ends the streams when the cluster closes", async () => {
    const other = await createCluster({ handlers: "workers", threads: 1, logLevel: "silent" });
    const port = (await other.listen({ port: 0, httpPort: 0 })).httpPort;
    const stream = await Stream.open(`http://127.0.0.1:${port}/v1/events`);
    await stream.next();
    await other.close();
    await expect(stream.next()).rejects.toThrow(/the stream ended|terminated/);
  });
});

/** A hub on its own server, fed ~200 KB snapshots as fast as it asks, so a reader that stops reading falls behind quickly. */
async function bigHub(limits: Partial<typeof DEFAULT_STREAM_LIMITS>) {
  const logs = new LogCapture("warn");
  const series = new Series();
  const ticks: Array<() => void> = [];
  const source = {
    series,
    timeline: new Ring<object>(10),
    async snapshot() {
      series.record(1, true);
      series.sample(0, 0);
      for (const f of ticks.splice(0)) f();
      return { filler: "x".repeat(200_000) };
    },
  };
  const hub = new StreamHub(source, logs.logger, { tickMs: 1, ...limits });
  const server: Server = createServer((req, res) => hub.open(req, res));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  const nextTick = () => new Promise<void>((resolve) => ticks.push(resolve));
  const close = async () => {
    hub.close();
    server.closeAllConnections();
    server.close();
  };
  return { hub, port, logs, series, nextTick, close };
}

/** A raw HTTP client that asks for the stream and does not read it. */
function stalledReader(port: number): Socket {
  const socket = connect(port, "127.0.0.1");
  socket.write("GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  socket.pause();
  socket.on("error", () => {});
  return socket;
}

describe("a viewer that does not read", () => {
  it("costs a bounded buffer, skips messages, and catches up on every sample it missed once it reads", async () => {
    const max = 64 * 1024;
    const { hub, port, series, nextTick, close } = await bigHub({ maxBufferedBytes: max, staleMs: 3_600_000 });
    const socket = stalledReader(port);
    try {
      let most = 0;
      // Until the kernel's buffers are full and the hub skips this viewer's messages.
      while (!hub.viewers[0]?.behind || hub.viewers[0].skipped < 20) {
        await nextTick();
        most = Math.max(most, hub.viewers[0]?.buffered ?? 0);
      }
      // At most the limit plus one message (~200 KB) is ever held for it.
      expect(most).toBeLessThanOrEqual(max + 210_000);
      // Now it reads: the messages it gets carry every sample since the last it had, none lost.
      const seqs: number[] = [];
      let text = "";
      socket.setEncoding("utf8");
      socket.on("data", (chunk: string) => {
        text += chunk;
        let end: number;
        while ((end = text.indexOf("\n\n")) !== -1) {
          const data = /^data: (.*)$/m.exec(text.slice(0, end))?.[1];
          text = text.slice(end + 2);
          if (data) for (const s of JSON.parse(data).samples) seqs.push(s.seq);
        }
      });
      const missed = series.samples.last;
      socket.resume();
      while ((seqs.at(-1) ?? 0) <= missed) await nextTick();
      expect(seqs[0]).toBe(1);
      expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    } finally {
      socket.destroy();
      await close();
    }
  });

  it("is dropped once it has been behind for staleMs, and the hub logs why", async () => {
    const { hub, port, logs, close } = await bigHub({ maxBufferedBytes: 16 * 1024, staleMs: 200 });
    const socket = stalledReader(port);
    try {
      const line = await logs.waitFor("dashboard stream dropped: the viewer does not read");
      expect(line.staleMs).toBe(200);
      expect(line.buffered).toBeGreaterThan(16 * 1024);
      expect(hub.viewers).toEqual([]);
    } finally {
      socket.destroy();
      await close();
    }
  });
});
