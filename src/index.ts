/** crew's public API. Everything a user imports comes through this list. */
export { createCluster, Cluster } from "./primary/cluster.js";
export type { ClusterStatus, ListenInfo, ListenOptions, NodeStatus, RunOptions } from "./primary/cluster.js";
export type { ReloadResult } from "./primary/reloader.js";
export type { RequestStatus } from "./primary/request-status.js";
export type { ClusterOptions } from "./options.js";
export { Client } from "./protocol/client.js";
export type { CallResult, ClientOptions, ReplyError, RunOptions as ClientRunOptions } from "./protocol/client.js";
export type { Handler, HandlerConfig, HandlerContext, HandlerModule, IsolationMode, NodeKind } from "./types.js";
export type { ReplyMeta, RequestId } from "./protocol/frames.js";
export type { BalancerName } from "./primary/balancers/balancer.js";
export {
  CrewError,
  WIRE_ERRORS,
  LOCAL_ERRORS,
  BadRequestError,
  UnknownHandlerError,
  FrameTooLargeError,
  DuplicateIdError,
  OverloadedError,
  NoNodeError,
  HandlerError,
  CrashedError,
  TimeoutError,
  CancelledError,
  ShuttingDownError,
  IdempotencyConflictError,
  UnavailableError,
  NotFoundError,
  MethodNotAllowedError,
  ForbiddenError,
  InvalidOptionError,
  HandlerLoadError,
  CheckpointTooLargeError,
  ConnectionError,
  JournalError,
  errorFromWire,
} from "./errors.js";
export type { ErrorCode, WireErrorCode, WireError } from "./errors.js";
