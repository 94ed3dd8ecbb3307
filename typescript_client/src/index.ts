/**
 * @headwater/client: start Headwater flow runs from Node, follow them, read their logs.
 *
 * The thin layer (`createHeadwaterClient`) covers what a calling service needs; the generated
 * messages and service descriptors of every `headwater.v1` proto are exported too (and from
 * "@headwater/client/v1").
 */
export { ADDRESS_FORMS } from "./address.js";
export {
  HeadwaterClient,
  createHeadwaterClient,
  type ClientOptions,
  type FlowRef,
  type FlowRunQuery,
  type Page,
  type RunOptions,
  type Services,
} from "./client.js";
export {
  AlreadyExistsError,
  FailedPreconditionError,
  HeadwaterError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  toHeadwaterError,
  type FieldViolation,
} from "./errors.js";
export { traceContextInterceptor } from "./tracing.js";
export { isTerminal, type WatchOptions } from "./watch.js";
export * from "./v1.js";
