/**
 * The service addresses the client accepts, checked before anything dials them, in the same
 * forms the Python SDK accepts (HEADWATER_API_URL means the same thing to both).
 */

/** The forms an address may take, for error messages. */
export const ADDRESS_FORMS =
  "host:port (e.g. 127.0.0.1:4200 or headwater.internal:4200), [ipv6]:port (e.g. [::1]:4200), " +
  "or http://host:port";

const URL_SCHEMES = ["grpc://", "http://", "https://"];
const HOST_PATTERN = /^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$/;

/**
 * The base URL the gRPC transport dials for a service address.
 *
 * Accepted: `host:port`, `[ipv6]:port`, and `http://`, `https://` or `grpc://` followed by
 * `host:port`. The scheme is dropped, as the Python SDK drops it (Headwater speaks gRPC over
 * plaintext HTTP/2 whatever the scheme says; TLS comes with the service's TLS support).
 *
 * @throws {TypeError} The address can never work; the message quotes it and says what form is
 *   expected. Unix sockets are refused here: the Node transport dials TCP only.
 */
export function baseUrlFor(address: string): string {
  const problem = addressProblem(address.trim());
  if (problem) {
    throw new TypeError(`The service address ${JSON.stringify(address)} ${problem}.`);
  }
  return `http://${stripScheme(address.trim())}`;
}

function stripScheme(target: string): string {
  const lowered = target.toLowerCase();
  const scheme = URL_SCHEMES.find((s) => lowered.startsWith(s));
  return scheme ? target.slice(scheme.length).replace(/\/$/, "") : target;
}

function addressProblem(target: string): string | undefined {
  const lowered = target.toLowerCase();
  if (lowered.startsWith("unix:") || lowered.startsWith("unix-abstract:")) {
    return "is a Unix socket, which the TypeScript client cannot dial; give host:port";
  }
  const scheme = URL_SCHEMES.find((s) => lowered.startsWith(s));
  if (scheme) {
    const rest = target.slice(scheme.length);
    const slash = rest.indexOf("/");
    if ((slash >= 0 && rest.slice(slash).replace(/\/+$/, "")) || /[?#]/.test(rest)) {
      return (
        "is a URL with a path; Headwater speaks gRPC at host:port, not HTTP, so give only " +
        "the server's host and port (e.g. 127.0.0.1:4200)"
      );
    }
    return hostPortProblem(slash >= 0 ? rest.slice(0, slash) : rest);
  }
  if (target.includes("://")) {
    return `has a scheme Headwater does not speak; use ${ADDRESS_FORMS}`;
  }
  return hostPortProblem(target);
}

function hostPortProblem(target: string): string | undefined {
  if (target.startsWith("[")) {
    const close = target.indexOf("]");
    if (close < 0 || target[close + 1] !== ":") {
      return `must be [ipv6]:port (${ADDRESS_FORMS})`;
    }
    return portProblem(target.slice(close + 2));
  }
  const colon = target.lastIndexOf(":");
  if (colon < 0) {
    return HOST_PATTERN.test(target)
      ? `has no port; Headwater needs one, e.g. ${target}:4200`
      : `is not an address; expected ${ADDRESS_FORMS}`;
  }
  const host = target.slice(0, colon);
  const port = target.slice(colon + 1);
  if (host.includes(":")) {
    return `looks like an IPv6 address; put it in brackets: [${host}]:${port}`;
  }
  if (!HOST_PATTERN.test(host)) {
    return `does not start with a host name or IP address; expected ${ADDRESS_FORMS}`;
  }
  return portProblem(port);
}

function portProblem(text: string): string | undefined {
  const port = Number(text);
  if (!/^\d+$/.test(text) || port < 1 || port > 65535) {
    return `has port ${JSON.stringify(text)}; a port is a number from 1 to 65535`;
  }
  return undefined;
}
