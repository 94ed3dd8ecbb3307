/**
 * Typed errors from the service's gRPC status, so a caller writes
 * `if (err instanceof NotFoundError)` and reads the service's stable `reason`
 * ("FLOW_RUN_NOT_FOUND") instead of parsing messages.
 *
 * The service puts a `google.rpc.ErrorInfo` (reason, domain, metadata) in every error's status
 * details, and a `google.rpc.BadRequest` (one violation per bad field) in INVALID_ARGUMENT ones.
 * Those two messages are decoded here by hand: three small, frozen googleapis messages are not
 * worth generating and shipping the googleapis protos for.
 */
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";

/** One invalid field of a request, from the status's `google.rpc.BadRequest` details. */
export interface FieldViolation {
  /** The field's path in the request, e.g. "parameters_json.limit". */
  readonly field: string;
  /** What is wrong with it, in words a person can act on. */
  readonly description: string;
}

/** The gRPC status code names, as grpcurl and every other gRPC library spell them. */
const CODE_NAMES: Record<number, string> = {
  [Code.Canceled]: "CANCELLED",
  [Code.Unknown]: "UNKNOWN",
  [Code.InvalidArgument]: "INVALID_ARGUMENT",
  [Code.DeadlineExceeded]: "DEADLINE_EXCEEDED",
  [Code.NotFound]: "NOT_FOUND",
  [Code.AlreadyExists]: "ALREADY_EXISTS",
  [Code.PermissionDenied]: "PERMISSION_DENIED",
  [Code.ResourceExhausted]: "RESOURCE_EXHAUSTED",
  [Code.FailedPrecondition]: "FAILED_PRECONDITION",
  [Code.Aborted]: "ABORTED",
  [Code.OutOfRange]: "OUT_OF_RANGE",
  [Code.Unimplemented]: "UNIMPLEMENTED",
  [Code.Internal]: "INTERNAL",
  [Code.Unavailable]: "UNAVAILABLE",
  [Code.DataLoss]: "DATA_LOSS",
  [Code.Unauthenticated]: "UNAUTHENTICATED",
};

/**
 * An RPC the service answered with an error status (or that never reached it).
 *
 * `code` is the gRPC code as a number (Connect's `Code` enum), `codeName` its gRPC name
 * ("NOT_FOUND"), `reason` the service's stable `ErrorInfo.reason` (empty when the error did not
 * come from the service, e.g. a refused connection), `metadata` the ErrorInfo's metadata (an
 * ALREADY_EXISTS names the existing object, e.g. `existing_flow_run_id`). `cause` is the
 * original `ConnectError`.
 */
export class HeadwaterError extends Error {
  override name = "HeadwaterError";
  readonly code: Code;
  readonly codeName: string;
  readonly reason: string;
  readonly domain: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly fieldViolations: readonly FieldViolation[];

  constructor(
    message: string,
    options: {
      code: Code;
      reason?: string;
      domain?: string;
      metadata?: Record<string, string>;
      fieldViolations?: FieldViolation[];
      cause?: unknown;
    },
  ) {
    super(message, { cause: options.cause });
    this.code = options.code;
    this.codeName = CODE_NAMES[options.code] ?? `CODE_${options.code}`;
    this.reason = options.reason ?? "";
    this.domain = options.domain ?? "";
    this.metadata = options.metadata ?? {};
    this.fieldViolations = options.fieldViolations ?? [];
  }
}

/** INVALID_ARGUMENT: the request is malformed; `fieldViolations` says which fields. */
export class InvalidArgumentError extends HeadwaterError {
  override name = "InvalidArgumentError";
}

/** NOT_FOUND: the run, flow or deployment does not exist. */
export class NotFoundError extends HeadwaterError {
  override name = "NotFoundError";
}

/** ALREADY_EXISTS: e.g. an idempotency key already used; `metadata` names the existing object. */
export class AlreadyExistsError extends HeadwaterError {
  override name = "AlreadyExistsError";
}

/** FAILED_PRECONDITION: e.g. cancelling a run that already finished, or a paused deployment. */
export class FailedPreconditionError extends HeadwaterError {
  override name = "FailedPreconditionError";
}

/** UNAVAILABLE: the service cannot be reached (not started, restarting, network down). */
export class UnavailableError extends HeadwaterError {
  override name = "UnavailableError";
}

const CLASSES: Partial<Record<Code, typeof HeadwaterError>> = {
  [Code.InvalidArgument]: InvalidArgumentError,
  [Code.NotFound]: NotFoundError,
  [Code.AlreadyExists]: AlreadyExistsError,
  [Code.FailedPrecondition]: FailedPreconditionError,
  [Code.Unavailable]: UnavailableError,
};

/**
 * The typed error for anything a call threw. A `HeadwaterError` is returned as is; any other
 * value goes through `ConnectError.from` (an abort becomes CANCELLED, the rest UNKNOWN).
 * Exported for callers of the raw service clients (`client.services`), which throw
 * `ConnectError`.
 */
export function toHeadwaterError(error: unknown): HeadwaterError {
  if (error instanceof HeadwaterError) {
    return error;
  }
  const connectError = ConnectError.from(error);
  const info = { reason: "", domain: "", metadata: {} as Record<string, string> };
  const fieldViolations: FieldViolation[] = [];
  for (const detail of connectError.details) {
    // Incoming details are {type, value: bytes}; outgoing ones (built locally) have a `desc`.
    if (!("type" in detail) || !(detail.value instanceof Uint8Array)) {
      continue;
    }
    try {
      if (detail.type === "google.rpc.ErrorInfo") {
        Object.assign(info, decodeErrorInfo(detail.value));
      } else if (detail.type === "google.rpc.BadRequest") {
        fieldViolations.push(...decodeBadRequest(detail.value));
      }
    } catch {
      // A garbled detail must not hide the error itself.
    }
  }
  const Class = CLASSES[connectError.code] ?? HeadwaterError;
  return new Class(connectError.rawMessage, {
    code: connectError.code,
    ...info,
    fieldViolations,
    cause: connectError,
  });
}

/** `google.rpc.ErrorInfo`: 1 reason, 2 domain, 3 map<string, string> metadata. */
function decodeErrorInfo(bytes: Uint8Array): {
  reason: string;
  domain: string;
  metadata: Record<string, string>;
} {
  const result = { reason: "", domain: "", metadata: {} as Record<string, string> };
  readFields(bytes, (field, reader) => {
    if (field === 1) {
      result.reason = reader.string();
    } else if (field === 2) {
      result.domain = reader.string();
    } else if (field === 3) {
      const [key, value] = readPair(reader.bytes());
      result.metadata[key] = value;
    } else {
      return false;
    }
    return true;
  });
  return result;
}

/** `google.rpc.BadRequest`: 1 repeated FieldViolation { 1 field, 2 description }. */
function decodeBadRequest(bytes: Uint8Array): FieldViolation[] {
  const violations: FieldViolation[] = [];
  readFields(bytes, (field, reader) => {
    if (field !== 1) {
      return false;
    }
    const [name, description] = readPair(reader.bytes());
    violations.push({ field: name, description });
    return true;
  });
  return violations;
}

/** A message whose fields 1 and 2 are strings (a map entry, a FieldViolation). */
function readPair(bytes: Uint8Array): [string, string] {
  const pair: [string, string] = ["", ""];
  readFields(bytes, (field, reader) => {
    if (field !== 1 && field !== 2) {
      return false;
    }
    pair[field - 1] = reader.string();
    return true;
  });
  return pair;
}

/** Calls `read` for each field; a field it does not read (returns false) is skipped. */
function readFields(
  bytes: Uint8Array,
  read: (field: number, reader: BinaryReader) => boolean,
): void {
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    const known = wireType === WireType.LengthDelimited && read(field, reader);
    if (!known) {
      reader.skip(wireType, field);
    }
  }
}
