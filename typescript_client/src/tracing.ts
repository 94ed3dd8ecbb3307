/**
 * W3C trace context from the caller to the service, so the service's spans (and the flow run a
 * call creates) continue the caller's trace.
 *
 * The interceptor asks the OpenTelemetry API's global propagator to write the active context
 * into each call's metadata (`traceparent`, `tracestate`). An application that set up
 * OpenTelemetry (the Node SDK registers the W3C propagator) gets propagation with nothing to
 * configure; one that did not pays one no-op call per RPC and sends nothing.
 */
import { context, propagation, type TextMapSetter } from "@opentelemetry/api";
import type { Interceptor } from "@connectrpc/connect";

const headerSetter: TextMapSetter<Headers> = {
  set(carrier, key, value) {
    carrier.set(key, value);
  },
};

/** Writes the active OpenTelemetry context into every call's request headers. */
export const traceContextInterceptor: Interceptor = (next) => (request) => {
  propagation.inject(context.active(), request.header, headerSetter);
  return next(request);
};
