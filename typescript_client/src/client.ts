/**
 * The thin hand-written layer over the generated service descriptors: the calls a Node service
 * needs to start runs and follow them, with typed errors, a default deadline and trace context.
 * Everything else is one property away, on `client.services`.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport } from "@connectrpc/connect-node";

import { baseUrlFor } from "./address.js";
import { toHeadwaterError } from "./errors.js";
import { DeploymentService, type Deployment } from "./gen/headwater/v1/deployments_pb.js";
import {
  FlowRunFilterSchema,
  FlowRunService,
  type FlowRun,
  type FlowRunEvent,
  type FlowRunFilter,
} from "./gen/headwater/v1/flow_runs_pb.js";
import { FlowService } from "./gen/headwater/v1/flows_pb.js";
import { LogService, type Log } from "./gen/headwater/v1/logs_pb.js";
import { StateSchema, StateType } from "./gen/headwater/v1/states_pb.js";
import { traceContextInterceptor } from "./tracing.js";
import { watchFlowRunEvents, type WatchOptions } from "./watch.js";

/** How a client reaches the service. */
export interface ClientOptions {
  /**
   * The service address: `host:port`, `[ipv6]:port` or `http://host:port`. Defaults to the
   * `HEADWATER_API_URL` environment variable, as in the Python SDK.
   */
  address?: string;
  /** The deadline of each unary call in milliseconds (default 30 000). Watches have none. */
  timeoutMs?: number;
  /** Headers sent with every call (e.g. a proxy's authorization). */
  headers?: Record<string, string>;
  /** More Connect interceptors, run after the client's own. */
  interceptors?: Interceptor[];
  /**
   * Send the active OpenTelemetry context as W3C `traceparent`/`tracestate` metadata (default
   * true; it costs nothing when no OpenTelemetry propagator is registered).
   */
  traceContext?: boolean;
  /**
   * How often an idle connection is pinged, in milliseconds (default 20 000, as the Python
   * SDK), so long watches survive proxies and a dead server is noticed.
   */
  keepaliveIntervalMs?: number;
}

/** Options shared by the calls that create a run. */
export interface RunOptions {
  /** The run's parameters, sent as a JSON object. */
  parameters?: Record<string, unknown>;
  /** The run's name; the service generates one ("crimson-otter") when absent. */
  name?: string;
  /** Labels to attach. */
  tags?: string[];
  /** A business key that makes the run exist once; a second use is an `AlreadyExistsError`. */
  idempotencyKey?: string;
  /** A client-chosen UUID: retrying the call with it returns the first answer. */
  requestId?: string;
  /** Create the run SCHEDULED for this time instead of at once. */
  scheduledTime?: Date;
  /**
   * This run's own job variables (`runDeployment` only), merged over the deployment's by its
   * worker: `env` key by key (null removes a variable), `working_dir` replaced.
   */
  jobVariables?: Record<string, unknown>;
}

/** Which flow `createFlowRun` runs: by name (registered if new) or by id. */
export type FlowRef = { flowName: string; flowId?: never } | { flowId: string; flowName?: never };

/** A page of a listing and the token for the next one (empty on the last page). */
export interface Page<T> {
  items: T[];
  nextPageToken: string;
}

/** Which runs `listFlowRuns` and `flowRuns` return. */
export type FlowRunQuery = Partial<
  Pick<FlowRunFilter, "flowName" | "stateTypes" | "tags" | "deploymentId" | "name" | "parentFlowRunId">
>;

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_KEEPALIVE_MS = 20_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The generated Connect clients of every service the thin layer uses. */
export interface Services {
  flowRuns: Client<typeof FlowRunService>;
  flows: Client<typeof FlowService>;
  logs: Client<typeof LogService>;
  deployments: Client<typeof DeploymentService>;
}

/**
 * A connection to a Headwater service. Methods throw `HeadwaterError` subclasses
 * (`NotFoundError`, `InvalidArgumentError`, ...) built from the gRPC status; call `close()`
 * when done so the process can exit.
 */
export class HeadwaterClient {
  /** The generated clients, for the calls the thin layer does not wrap (they throw ConnectError). */
  readonly services: Services;
  private readonly session: Http2SessionManager;
  private readonly timeoutMs: number;

  constructor(options: ClientOptions = {}) {
    const address = options.address ?? process.env.HEADWATER_API_URL;
    if (!address) {
      throw new TypeError(
        "No Headwater service address: pass { address: \"host:port\" } or set HEADWATER_API_URL.",
      );
    }
    const baseUrl = baseUrlFor(address);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const keepalive = options.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_MS;
    this.session = new Http2SessionManager(baseUrl, {
      pingIntervalMs: keepalive,
      pingTimeoutMs: 10_000,
    });
    const interceptors: Interceptor[] = [];
    if (options.traceContext ?? true) {
      interceptors.push(traceContextInterceptor);
    }
    const headers = options.headers;
    if (headers) {
      interceptors.push((next) => (request) => {
        for (const [key, value] of Object.entries(headers)) {
          request.header.set(key, value);
        }
        return next(request);
      });
    }
    interceptors.push(...(options.interceptors ?? []));
    const transport = createGrpcTransport({
      baseUrl,
      sessionManager: this.session,
      interceptors,
    });
    this.services = {
      flowRuns: createClient(FlowRunService, transport),
      flows: createClient(FlowService, transport),
      logs: createClient(LogService, transport),
      deployments: createClient(DeploymentService, transport),
    };
  }

  /** Creates a run of a flow, PENDING (or SCHEDULED with `scheduledTime`), for an engine to run. */
  async createFlowRun(flow: FlowRef, options: RunOptions = {}): Promise<FlowRun> {
    const response = await this.unary(() =>
      this.services.flowRuns.createFlowRun(
        {
          flow: flow.flowId
            ? { case: "flowId", value: flow.flowId }
            : { case: "flowName", value: flow.flowName ?? "" },
          name: options.name ?? "",
          parametersJson: parametersJson(options.parameters),
          tags: options.tags ?? [],
          idempotencyKey: options.idempotencyKey ?? "",
          requestId: options.requestId ?? "",
          state: options.scheduledTime
            ? create(StateSchema, {
                type: StateType.SCHEDULED,
                scheduledTime: timestampFromDate(options.scheduledTime),
              })
            : undefined,
        },
        this.callOptions(),
      ),
    );
    return required(response.flowRun, "CreateFlowRun");
  }

  /**
   * Creates a run of a deployment (named "flow-name/deployment-name", or by id), SCHEDULED for
   * now or `scheduledTime`; its worker or serving process runs it. Parameters are merged over
   * the deployment's defaults.
   */
  async runDeployment(deployment: string, options: RunOptions = {}): Promise<FlowRun> {
    const deploymentId = UUID.test(deployment)
      ? deployment
      : (await this.getDeployment(deployment)).id;
    const response = await this.unary(() =>
      this.services.deployments.createFlowRunFromDeployment(
        {
          deploymentId,
          name: options.name ?? "",
          parametersJson: parametersJson(options.parameters),
          tags: options.tags ?? [],
          idempotencyKey: options.idempotencyKey ?? "",
          requestId: options.requestId ?? "",
          scheduledTime: options.scheduledTime
            ? timestampFromDate(options.scheduledTime)
            : undefined,
          jobVariablesJson: parametersJson(options.jobVariables),
        },
        this.callOptions(),
      ),
    );
    return required(response.flowRun, "CreateFlowRunFromDeployment");
  }

  /** One deployment, by id or by "flow-name/deployment-name". */
  async getDeployment(deployment: string): Promise<Deployment> {
    const response = await this.unary(() =>
      this.services.deployments.getDeployment(
        {
          deployment: UUID.test(deployment)
            ? { case: "deploymentId", value: deployment }
            : { case: "name", value: deployment },
        },
        this.callOptions(),
      ),
    );
    return required(response.deployment, "GetDeployment");
  }

  /** One run with its current state. */
  async getFlowRun(flowRunId: string): Promise<FlowRun> {
    const response = await this.unary(() =>
      this.services.flowRuns.getFlowRun({ flowRunId }, this.callOptions()),
    );
    return required(response.flowRun, "GetFlowRun");
  }

  /** One page of runs, newest first. */
  async listFlowRuns(
    query: FlowRunQuery = {},
    page: { pageSize?: number; pageToken?: string } = {},
  ): Promise<Page<FlowRun>> {
    const response = await this.unary(() =>
      this.services.flowRuns.listFlowRuns(
        {
          filter: create(FlowRunFilterSchema, query),
          pageSize: page.pageSize ?? 0,
          pageToken: page.pageToken ?? "",
        },
        this.callOptions(),
      ),
    );
    return { items: response.flowRuns, nextPageToken: response.nextPageToken };
  }

  /** Every run the query matches, newest first, fetched a page at a time. */
  async *flowRuns(query: FlowRunQuery = {}): AsyncGenerator<FlowRun, void, undefined> {
    let pageToken = "";
    do {
      const page = await this.listFlowRuns(query, { pageToken });
      yield* page.items;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /** One page of a run's log lines (its own and its task runs'), oldest first. */
  async listLogs(
    flowRunId: string,
    options: { minLevel?: number; pageSize?: number; pageToken?: string } = {},
  ): Promise<Page<Log>> {
    const response = await this.unary(() =>
      this.services.logs.listLogs(
        {
          filter: { flowRunId, minLevel: options.minLevel ?? 0 },
          pageSize: options.pageSize ?? 0,
          pageToken: options.pageToken ?? "",
        },
        this.callOptions(),
      ),
    );
    return { items: response.logs, nextPageToken: response.nextPageToken };
  }

  /** Every log line of a run, oldest first, fetched a page at a time. */
  async *logs(
    flowRunId: string,
    options: { minLevel?: number } = {},
  ): AsyncGenerator<Log, void, undefined> {
    let pageToken = "";
    do {
      const page = await this.listLogs(flowRunId, { ...options, pageToken });
      yield* page.items;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /** Cancels a run: CANCELLED at once when it is not running, CANCELLING while its engine stops. */
  async cancelFlowRun(
    flowRunId: string,
    options: { reason?: string; requestId?: string } = {},
  ): Promise<FlowRun> {
    const response = await this.unary(() =>
      this.services.flowRuns.cancelFlowRun(
        { flowRunId, reason: options.reason ?? "", requestId: options.requestId ?? "" },
        this.callOptions(),
      ),
    );
    return required(response.flowRun, "CancelFlowRun");
  }

  /**
   * A run's events (its states, its task runs' states, log lines), replayed from the start (or
   * after `afterSequence`) and then live, ending once the run has ended. A dropped stream is
   * resumed after the last event seen, so none is lost or repeated.
   */
  watchFlowRun(flowRunId: string, options: WatchOptions = {}): AsyncGenerator<FlowRunEvent, void, undefined> {
    return watchFlowRunEvents(this.services.flowRuns, flowRunId, options);
  }

  /** Waits for a run to end (resuming the watch across dropped streams) and returns it. */
  async waitForFlowRun(
    flowRunId: string,
    options: Pick<WatchOptions, "signal" | "resumeTimeoutMs"> = {},
  ): Promise<FlowRun> {
    for await (const event of this.watchFlowRun(flowRunId, { ...options, flowRunStatesOnly: true })) {
      void event;
    }
    return this.getFlowRun(flowRunId);
  }

  /** Closes the connection; calls in flight fail with CANCELLED. */
  close(): void {
    this.session.abort();
  }

  private callOptions(): { timeoutMs: number } {
    return { timeoutMs: this.timeoutMs };
  }

  private async unary<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw toHeadwaterError(error);
    }
  }
}

/** A client for `options.address` (or `HEADWATER_API_URL`); see `ClientOptions`. */
export function createHeadwaterClient(options: ClientOptions = {}): HeadwaterClient {
  return new HeadwaterClient(options);
}

function parametersJson(parameters: Record<string, unknown> | undefined): string {
  return parameters === undefined ? "" : JSON.stringify(parameters);
}

function required<T>(value: T | undefined, rpc: string): T {
  if (value === undefined) {
    throw new TypeError(`${rpc} answered without its object; the service is not Headwater's.`);
  }
  return value;
}
