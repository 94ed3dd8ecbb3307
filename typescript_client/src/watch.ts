/**
 * A run's events as an async iterator that survives a dropped stream.
 *
 * `WatchFlowRun` replays the events after a sequence number and then goes live, and every event
 * carries its per-run sequence, so a stream that breaks (the server restarted, a proxy cut an
 * idle connection) is resumed by watching again after the last sequence seen: the caller sees
 * every event once, in order, with no gap. The iterator ends when the run has reached a
 * terminal state and the server has ended the stream.
 */
import { Code, type Client } from "@connectrpc/connect";

import { HeadwaterError, UnavailableError, toHeadwaterError } from "./errors.js";
import type { FlowRunEvent, FlowRunService } from "./gen/headwater/v1/flow_runs_pb.js";
import { StateType } from "./gen/headwater/v1/states_pb.js";

/** The state types a run never leaves. */
const TERMINAL = new Set<StateType>([
  StateType.COMPLETED,
  StateType.FAILED,
  StateType.CANCELLED,
  StateType.CRASHED,
]);

/** Whether a run in this state type has ended (COMPLETED, FAILED, CANCELLED or CRASHED). */
export function isTerminal(type: StateType): boolean {
  return TERMINAL.has(type);
}

/** How a watch follows a run. */
export interface WatchOptions {
  /** Replay only events with a greater sequence; 0 (the default) replays the whole history. */
  afterSequence?: bigint | number;
  /** Only the run's own state changes, not its task runs' events or log lines. */
  flowRunStatesOnly?: boolean;
  /** Stops the watch: the iterator throws a CANCELLED `HeadwaterError`. */
  signal?: AbortSignal;
  /**
   * How long to keep reconnecting after the stream broke before giving up with the last
   * error, in milliseconds (default 60 000, as the Python engine's client retry timeout).
   */
  resumeTimeoutMs?: number;
}

// Reconnect backoff: quick first retries (a local server restarts in about a second), capped
// low so the watch is back soon after the server is.
const FIRST_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 2000;
const DEFAULT_RESUME_TIMEOUT_MS = 60_000;

/**
 * Follows a run's events to its end, resuming after a dropped stream.
 *
 * Errors that say the stream or the connection broke (UNAVAILABLE, and the INTERNAL, UNKNOWN
 * or CANCELLED a reset HTTP/2 stream surfaces as) are retried; the others (NOT_FOUND,
 * INVALID_ARGUMENT, ...) are thrown at once as typed errors. A stream the server ended before
 * the run reached a terminal state (a server shutting down ends its watches) is resumed too.
 */
export async function* watchFlowRunEvents(
  service: Client<typeof FlowRunService>,
  flowRunId: string,
  options: WatchOptions = {},
): AsyncGenerator<FlowRunEvent, void, undefined> {
  const { signal, flowRunStatesOnly = false } = options;
  const resumeTimeoutMs = options.resumeTimeoutMs ?? DEFAULT_RESUME_TIMEOUT_MS;
  let after = BigInt(options.afterSequence ?? 0);
  let ended = false;
  let brokenSince: number | undefined;
  let backoff = FIRST_BACKOFF_MS;
  for (;;) {
    let lastError: HeadwaterError;
    try {
      const stream = service.watchFlowRun(
        { flowRunId, afterSequence: after, flowRunStatesOnly },
        { signal },
      );
      for await (const message of stream) {
        brokenSince = undefined;
        backoff = FIRST_BACKOFF_MS;
        const kind = message.kind;
        if (kind.case === "snapshot") {
          ended = kind.value.state !== undefined && isTerminal(kind.value.state.type);
        } else if (kind.case === "event" && kind.value.sequence > after) {
          after = kind.value.sequence;
          const change = kind.value.kind;
          if (change.case === "stateChanged") {
            ended = isTerminal(change.value.type);
          }
          yield kind.value;
        }
      }
      if (ended) {
        return;
      }
      // The server ended the stream before the run ended (it is shutting down): resume.
      lastError = new UnavailableError(
        `The service ended the watch of flow run ${flowRunId} before the run ended.`,
        { code: Code.Unavailable },
      );
    } catch (error) {
      lastError = toHeadwaterError(error);
      if (signal?.aborted || !isStreamBreak(lastError)) {
        throw lastError;
      }
    }
    brokenSince ??= Date.now();
    if (Date.now() - brokenSince > resumeTimeoutMs) {
      throw lastError;
    }
    await sleep(backoff, signal);
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
  }
}

/** Whether an error means the stream or the connection broke, not that the request was bad. */
function isStreamBreak(error: HeadwaterError): boolean {
  if (error.code === Code.Unavailable) {
    return true;
  }
  // Without a reason the service did not answer: the stream was reset under the call.
  return (
    !error.reason &&
    [Code.Internal, Code.Unknown, Code.Canceled, Code.Aborted].includes(error.code)
  );
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(toHeadwaterError(signal.reason));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(toHeadwaterError(signal?.reason));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
