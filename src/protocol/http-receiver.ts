/**
 * The HTTP front: DESIGN.md's endpoints over node:http, feeding the same dispatcher as
 * the TCP receiver. Every request is bounded: headers by time, the body by
 * maxFrameBytes and by time, so a slow or greedy client costs a socket and nothing more.
 *
 *   POST /v1/run/:handler     body = payload JSON; x-crew-key, x-crew-timeout-ms, x-crew-priority, Idempotency-Key
 *   GET  /healthz             200, or 503 while draining
 *   GET  /v1/status           cluster.status() as JSON
 *   GET  /v1/requests         cluster.requests() as JSON (?limit=N: the N oldest)
 *   GET  /metrics             Prometheus text
 *   GET  /, /v1/events        the dashboard and its live stream (src/dashboard/)
 *   POST /v1/nodes/:id/kill   admin: loopback peers, or anyone with the admin token (Bearer)
 */
import { isUtf8 } from "node:buffer";
import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import {
  BadRequestError,
  type CrewError,
  ForbiddenError,
  MethodNotAllowedError,
  NotFoundError,
  OverloadedError,
} from "../errors.js";
import type { Front, HttpPort, ListenOptions } from "../primary/cluster-view.js";
import type { Job, Outcome } from "../primary/job.js";
import { type ClusterMetrics, metricsFor } from "../primary/metrics.js";
import { Dashboard, isDashboardPath } from "../dashboard/dashboard.js";
import type { UnreadReplies } from "./unread-replies.js";
import { DEFAULT_HOST, DEFAULT_HTTP_PORT } from "./address.js";
import { checkRunFields, frameTooLarge, type RunField } from "./frames.js";
import { checkJson, JsonSyntaxError, MAX_DEPTH } from "./json-scan.js";
import { clientOf, HttpClient, onPeerEnd } from "./http-connection.js";
import { grown } from "./ndjson.js";
import { browserRefusal, contentTypeRefusal, type GuardOptions } from "./http-guard.js";

/** A client has this long to send its headers, and this long for the whole request. */
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;
/** An idle keep-alive connection is closed after this. */
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
const TIMEOUT_CHECK_MS = 1_000;
/**
 * After a 413 the rest of the body is read and dropped (closing at once would reset the
 * connection and could destroy the 413 before the client reads it), but only this long
 * and only this much beyond the limit; past either the connection is cut.
 */
const LINGER_MS = 2_000;
const LINGER_MIN_BYTES = 64 * 1024;

const JSON_TYPE = "application/json; charset=utf-8";
const RUN_PREFIX = "/v1/run/";
const KILL_ROUTE = /^\/v1\/nodes\/([^/]+)\/kill$/;

export async function startHttpFront(cluster: HttpPort, options: ListenOptions, unread: UnreadReplies): Promise<{ front: Front; port: number }> {
  const host = options.host ?? DEFAULT_HOST;
  const guard = { allowedHosts: cluster.options.allowedHosts, listenHost: host };
  const receiver = new HttpReceiver(cluster, metricsFor(cluster), options.adminToken, guard, unread);
  const port = await receiver.listen(options.httpPort ?? DEFAULT_HTTP_PORT, host);
  return { front: receiver, port };
}

/**
 * The admin token a request presents: `Authorization: Bearer TOKEN` (DESIGN.md), or the
 * older `x-crew-admin-token: TOKEN` header; undefined when it sends neither.
 */
export function presentedAdminToken(headers: IncomingHttpHeaders): string | string[] | undefined {
  const bearer = /^Bearer +(\S+)$/i.exec(headers.authorization ?? "");
  return bearer ? bearer[1] : headers["x-crew-admin-token"];
}

/**
 * Whether a peer may use the admin endpoints: loopback peers always; others only with an
 * admin token configured and presented (presentedAdminToken), compared in constant time.
 */
export function adminAllowed(remoteAddress: string | undefined, token: string | undefined, header: string | string[] | undefined): boolean {
  if (isLoopback(remoteAddress)) return true;
  if (typeof token !== "string" || token === "" || typeof header !== "string") return false;
  // Hashing first gives equal lengths, so the comparison leaks neither content nor length.
  return timingSafeEqual(sha256(header), sha256(token));
}

function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  return address.startsWith("127.") || address === "::1" || address.startsWith("::ffff:127.");
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

class HttpReceiver implements Front {
  readonly #server: Server;
  readonly #cluster: HttpPort;
  readonly #metrics: ClusterMetrics;
  readonly #adminToken: string | undefined;
  readonly #maxBody: number;
  readonly #guard: GuardOptions;
  readonly #dashboard: Dashboard;
  readonly #unread: UnreadReplies;

  constructor(cluster: HttpPort, metrics: ClusterMetrics, adminToken: string | undefined, guard: GuardOptions, unread: UnreadReplies) {
    this.#guard = guard;
    this.#cluster = cluster;
    this.#metrics = metrics;
    this.#adminToken = adminToken;
    this.#maxBody = cluster.options.maxFrameBytes;
    this.#dashboard = new Dashboard(cluster);
    this.#unread = unread;
    this.#server = createServer(
      {
        keepAlive: true,
        noDelay: true,
        headersTimeout: HEADERS_TIMEOUT_MS,
        requestTimeout: REQUEST_TIMEOUT_MS,
        keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
        // Node checks the two timeouts above on this interval (default 30 s, which made
        // them ~30 s and ~50 s): checked every second, they are what they say.
        connectionsCheckingInterval: TIMEOUT_CHECK_MS,
      },
      (req, res) => this.#route(req, res),
    );
    this.#server.maxConnections = cluster.options.maxConnections;
    // A client that half-closes after its request (shutdown(SHUT_WR)) still gets its
    // responses, and the socket closes after the last one (Node's default aborts them).
    (this.#server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
    this.#server.on("connection", (socket: Socket) => socket.on("end", () => onPeerEnd(socket)));
    // With a listener here Node no longer answers `Expect: 100-continue` itself: a body
    // that is too large by its Content-Length is refused before the client sends it.
    this.#server.on("checkContinue", (req: IncomingMessage, res: ServerResponse) => {
      const refusal = browserRefusal(req, this.#guard);
      if (refusal) return sendError(res, refusal, { connection: "close" });
      if (req.url?.startsWith(RUN_PREFIX) && declaredLength(req) > this.#maxBody) {
        // The client still holds the body we did not ask for: this connection is done.
        const error = frameTooLarge("body", this.#maxBody);
        return this.#refuse(res, req.url.slice(RUN_PREFIX.length), error, { connection: "close" });
      }
      res.writeContinue();
      this.#route(req, res);
    });
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(port, host, () => {
        this.#server.off("error", reject);
        resolve((this.#server.address() as AddressInfo).port);
      });
    });
  }

  /**
   * The drain begins: the HTTP front keeps listening, so load balancers and operators
   * still get /healthz (503), /v1/status and /metrics; new runs answer E_SHUTTING_DOWN.
   */
  stopAccepting(): void {}

  /** Stops listening; idle connections close, busy ones after their response (cut after LINGER_MS). */
  destroyConnections(): Promise<void> {
    this.#dashboard.close();
    if (!this.#server.listening) {
      this.#server.closeAllConnections();
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.#server.closeAllConnections(), LINGER_MS);
      this.#server.close(() => {
        clearTimeout(timer);
        resolve();
      });
      this.#server.closeIdleConnections();
    });
  }

  #route(req: IncomingMessage, res: ServerResponse): void {
    const refusal = browserRefusal(req, this.#guard);
    if (refusal) return sendError(res, refusal);
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q === -1 ? url : url.slice(0, q);
    if (path.startsWith(RUN_PREFIX)) {
      if (allow(req, res, "POST")) this.#run(req, res, path.slice(RUN_PREFIX.length));
      return;
    }
    switch (path) {
      case "/healthz":
        if (allow(req, res, "GET")) this.#health(res);
        return;
      case "/v1/status":
        if (allow(req, res, "GET")) this.#async(res, this.#status(res));
        return;
      case "/v1/requests":
        if (allow(req, res, "GET")) this.#requests(res, url.slice(path.length));
        return;
      case "/metrics":
        if (allow(req, res, "GET")) this.#async(res, this.#scrape(res));
        return;
      case "/v1/reload":
        if (allow(req, res, "POST") && this.#admin(req, res)) {
          this.#cluster.reload("http").then((done) => send(res, 200, JSON.stringify({ reloaded: done })), (err: CrewError) => sendError(res, err));
        }
        return;
    }
    const kill = KILL_ROUTE.exec(path);
    if (kill) {
      if (allow(req, res, "POST")) this.#kill(req, res, kill[1]!);
      return;
    }
    if (isDashboardPath(path)) {
      if (allow(req, res, "GET")) this.#async(res, this.#dashboard.serve(req, res, path));
      return;
    }
    sendError(res, new NotFoundError(`no route ${req.method} ${path.slice(0, 200)}`));
  }

  #run(req: IncomingMessage, res: ServerResponse, encodedName: string): void {
    let handler: string;
    try {
      handler = decodeURIComponent(encodedName);
    } catch {
      return this.#refuse(res, encodedName, new BadRequestError("the handler name in the path is not valid percent-encoding"));
    }
    const key = req.headers["x-crew-key"];
    const timeoutMs = intHeader(req, "x-crew-timeout-ms");
    const priority = intHeader(req, "x-crew-priority");
    const idempotencyKey = req.headers["idempotency-key"];
    const invalid = checkRunFields(handler, key, timeoutMs, priority, idempotencyKey);
    if (invalid) return this.#refuse(res, handler, new BadRequestError(`${HTTP_SOURCES[invalid.field]}: ${invalid.message}`));
    const untyped = contentTypeRefusal(req);
    if (untyped) return this.#refuse(res, handler, untyped);
    if (declaredLength(req) > this.#maxBody) return this.#tooLarge(res, handler, req);
    // A body in one chunk (the usual case) is read where it lies; a second chunk starts
    // one growing buffer, not a list of chunks: a chunked body sent a byte at a time
    // would otherwise cost a Buffer object per byte, each pinning the socket's read buffer.
    let body: Buffer | null = null;
    let owned = false;
    let size = 0;
    const onData = (chunk: Buffer): void => {
      if (size + chunk.length <= this.#maxBody) {
        if (body === null) body = chunk;
        else {
          if (!owned || body.length < size + chunk.length) body = grown(body, 0, size, size + chunk.length);
          owned = true;
          chunk.copy(body, size);
        }
        size += chunk.length;
        return;
      }
      req.off("data", onData);
      req.off("end", onEnd);
      this.#tooLarge(res, handler, req);
    };
    const onEnd = (): void => {
      // The payload stays JSON text, checked but never built here: the node parses it.
      let payloadJson: string | undefined;
      if (body !== null && size > 0) {
        // Decoded, bytes that are not UTF-8 would turn into U+FFFD: the handler would run on a payload nobody sent.
        if (!isUtf8(body.subarray(0, size))) return this.#refuse(res, handler, new BadRequestError("the body is not valid UTF-8"));
        payloadJson = body.toString("utf8", 0, size);
        try {
          checkJson(payloadJson);
        } catch (err) {
          if (!(err instanceof JsonSyntaxError)) throw err;
          const deep = err.kind === "nesting";
          return this.#refuse(res, handler, new BadRequestError(deep ? `the body is nested deeper than ${MAX_DEPTH}` : `the body is not valid JSON: ${err.message}`));
        }
      }
      // checkRunFields has vouched for the types.
      this.#submit(res, { handler, payloadJson, key: key as string | undefined, timeoutMs: timeoutMs as number | undefined, priority: priority as number | undefined, idempotencyKey: idempotencyKey as string | undefined, bytes: size });
    };
    req.on("data", onData);
    req.on("end", onEnd);
  }

  #submit(res: ServerResponse, request: Parameters<HttpPort["submit"]>[0]): void {
    // A connection's unanswered requests are capped like a TCP connection's. Node's HTTP
    // server resumes a paused socket whenever a body is read, so past the cap a pipelined
    // request is refused rather than left unread.
    const cap = this.#cluster.options.maxConnectionInflight;
    const client = clientOf(res.req.socket, this.#cluster.log, () => this.#newClient());
    if (client.inflight >= cap) {
      return this.#refuse(res, request.handler, new OverloadedError(`${cap} requests already in flight on this connection`));
    }
    if (this.#cluster.queueFull) this.#cluster.shares.makeRoom(client);
    // No per-request 'close' listener: an answered request leaves the client's set, and
    // the socket's one 'close' hangs up the rest (a pipelined request queued behind
    // another's response never gets a 'close' of its own anyway).
    let job: Job | null = null;
    let answered = false;
    job = this.#cluster.submit(request, (outcome) => {
      answered = true;
      if (job) client.remove(job);
      reply(res, outcome);
      // Its connection's socket: a pipelined response waits behind an earlier one without one.
      this.#unread.wrote(res.req.socket, res);
    });
    if (job && !answered) client.add(job);
  }

  #newClient(): HttpClient {
    const shed = (job: Job): boolean => this.#cluster.shed(job, new OverloadedError("queue full, and this connection holds more than its share of it: retry later"));
    // A keyed request runs on after its client hangs up: its client may come back.
    return new HttpClient(this.#cluster.shares, shed, (job) => this.#cluster.hangUp(job));
  }

  /** A run request refused before it reached the dispatcher: counted, answered, never queued. */
  #refuse(res: ServerResponse, handler: string, error: CrewError, headers?: Record<string, string>): void {
    this.#cluster.noteRefused(handler, error.code);
    sendError(res, error, headers);
  }

  /**
   * 413, then the rest of the body is read and dropped, so the client can read the
   * answer: a body that ends within a bounded time and size keeps the connection; past
   * either, the 413 is followed by FIN (never a reset while the client still sends,
   * which could destroy the 413 unread), and the connection is cut LINGER_MS later.
   */
  #tooLarge(res: ServerResponse, handler: string, req: IncomingMessage): void {
    this.#refuse(res, handler, frameTooLarge("body", this.#maxBody));
    if (req.complete) return;
    let dropped = 0;
    const most = Math.max(this.#maxBody, LINGER_MIN_BYTES);
    const socket = req.socket;
    let cutting = false;
    const cut = (): void => {
      if (cutting) return;
      cutting = true;
      clearTimeout(timer);
      const end = (): void => {
        socket.end();
        setTimeout(() => socket.destroy(), LINGER_MS).unref();
      };
      if (res.writableFinished) end();
      else res.once("finish", end);
    };
    const timer = setTimeout(cut, LINGER_MS);
    req.on("data", (chunk: Buffer) => {
      dropped += chunk.length;
      if (dropped > most) cut();
    });
    req.once("end", () => clearTimeout(timer));
    req.once("close", () => clearTimeout(timer));
  }

  #health(res: ServerResponse): void {
    if (this.#cluster.draining) return send(res, 503, '{"ok":false,"draining":true}');
    if (this.#cluster.retired) return send(res, 503, '{"ok":false,"retired":true}');
    send(res, 200, '{"ok":true}');
  }

  async #status(res: ServerResponse): Promise<void> {
    send(res, 200, JSON.stringify(await this.#cluster.status()));
  }

  #requests(res: ServerResponse, query: string): void {
    const limit = new URLSearchParams(query).get("limit");
    if (limit !== null && !/^\d{1,9}$/.test(limit)) return sendError(res, new BadRequestError("limit must be a non-negative integer"));
    const requests = this.#cluster.requests(limit === null ? Infinity : Number(limit));
    send(res, 200, JSON.stringify({ total: this.#cluster.active, requests }));
  }

  async #scrape(res: ServerResponse): Promise<void> {
    const { text, contentType } = await this.#metrics.scrape();
    send(res, 200, text, contentType);
  }

  /** Whether `req` may use an admin endpoint; answers E_FORBIDDEN when not. */
  #admin(req: IncomingMessage, res: ServerResponse): boolean {
    if (adminAllowed(req.socket.remoteAddress, this.#adminToken, presentedAdminToken(req.headers))) return true;
    sendError(res, new ForbiddenError("admin endpoints answer loopback peers, or the admin token (Authorization: Bearer TOKEN)"));
    return false;
  }

  #kill(req: IncomingMessage, res: ServerResponse, encodedId: string): void {
    if (!this.#admin(req, res)) return;
    let id: string;
    try {
      id = decodeURIComponent(encodedId);
    } catch {
      return sendError(res, new BadRequestError("the node id in the path is not valid percent-encoding"));
    }
    if (!this.#cluster.killNode(id)) {
      return sendError(res, new NotFoundError(`no node ${JSON.stringify(id)} is up`));
    }
    send(res, 202, JSON.stringify({ killed: id }));
  }

  /** An endpoint that awaits: a failure answers 500 instead of leaving the client waiting. */
  #async(res: ServerResponse, work: Promise<void>): void {
    work.catch((err: unknown) => {
      this.#cluster.log.error({ err }, "HTTP endpoint failed");
      sendError(res, new BadRequestError(err instanceof Error ? err.message : String(err)), undefined, 500);
    });
  }
}

/** Checks the method; answers 405 (with Allow) otherwise. GET endpoints take HEAD too. */
function allow(req: IncomingMessage, res: ServerResponse, method: "GET" | "POST"): boolean {
  if (req.method === method || (method === "GET" && req.method === "HEAD")) return true;
  const allowed = method === "GET" ? "GET, HEAD" : "POST";
  sendError(res, new MethodNotAllowedError(`${req.method} is not allowed here: use ${allowed}`), { allow: allowed });
  return false;
}

/** The Content-Length the client declared, or 0 (chunked bodies are counted as they come). */
function declaredLength(req: IncomingMessage): number {
  const value = req.headers["content-length"];
  return value === undefined ? 0 : Number(value);
}

/** An integer header as a number; any other text stays a string, so checkRunFields rejects it. */
/** Where each field checkRunFields names comes from in an HTTP request. */
const HTTP_SOURCES: Record<RunField, string> = {
  handler: "the handler in the path",
  key: "header x-crew-key",
  timeoutMs: "header x-crew-timeout-ms",
  priority: "header x-crew-priority",
  idempotencyKey: "header idempotency-key",
};

function intHeader(req: IncomingMessage, name: string): unknown {
  const value = req.headers[name];
  if (typeof value !== "string") return value;
  return /^-?\d{1,16}$/.test(value.trim()) ? Number(value) : value;
}

/** A run's answer: the result arrives as JSON text and is spliced in, never parsed here. */
function reply(res: ServerResponse, outcome: Outcome): void {
  const meta = JSON.stringify(outcome.meta);
  if (outcome.ok) send(res, 200, `{"result":${outcome.json},"meta":${meta}}`);
  else send(res, outcome.error.status, `{"error":${JSON.stringify(outcome.error.toJSON())},"meta":${meta}}`);
}

/** An error answer, with its code's status unless `status` says otherwise. */
function sendError(res: ServerResponse, error: CrewError, headers?: Record<string, string>, status = error.status): void {
  send(res, status, JSON.stringify({ error: error.toJSON() }), JSON_TYPE, headers);
}

function send(res: ServerResponse, status: number, body: string, type = JSON_TYPE, headers?: Record<string, string>): void {
  if (res.headersSent || res.destroyed) return; // the client left, or a 413 already answered
  const own = { "content-type": type, "content-length": Buffer.byteLength(body) };
  res.writeHead(status, headers === undefined ? own : { ...headers, ...own });
  res.end(body);
}
