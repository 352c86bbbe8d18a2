// The typed HTTP client (openapi-fetch over the generated paths) and the one way errors leave it.
import createClient, { type Middleware } from "openapi-fetch";
import type { paths } from "./schema.gen";

export type ApiClient = ReturnType<typeof createClient<paths>>;

/** An API call that failed; message is the server's `detail`, the line a person should read. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly status: number,
    detail: string,
    readonly code = "",
    readonly reason = "",
  ) {
    super(detail);
  }
}

/** The API's own origin: the console is served by the gateway it talks to. */
export function newClient(...middleware: Middleware[]): ApiClient {
  const client = createClient<paths>({ baseUrl: "" });
  for (const m of middleware) client.use(m);
  return client;
}

/**
 * Reads a failed response's body: the gateway's `{detail, code, message, reason}`, grpc-gateway's
 * stream error `{error: {code, message}}`, or whatever a proxy in between wrote.
 */
export function toApiError(status: number, body: unknown): ApiError {
  if (body && typeof body === "object") {
    const b = body as Record<string, unknown>;
    if (typeof b.detail === "string" && b.detail) {
      return new ApiError(status, b.detail, str(b.code), str(b.reason));
    }
    const inner = b.error && typeof b.error === "object" ? (b.error as Record<string, unknown>) : b;
    if (typeof inner.message === "string" && inner.message) {
      return new ApiError(status, inner.message, str(inner.code));
    }
  }
  if (typeof body === "string" && body.trim() && body.length < 300 && !body.trimStart().startsWith("<")) {
    return new ApiError(status, body.trim());
  }
  return new ApiError(status, fallbackDetail(status));
}

function str(v: unknown): string {
  return typeof v === "string" ? v : typeof v === "number" ? String(v) : "";
}

function fallbackDetail(status: number): string {
  if (status === 0) return "The server cannot be reached. Check that MGX is running and try again.";
  if (status === 401) return "Your sign-in has expired. Please sign in again.";
  if (status === 429) return "Too many requests; wait a moment and try again.";
  if (status >= 500) return `The server failed (HTTP ${status}). Try again in a moment.`;
  return `The request failed (HTTP ${status}).`;
}

export function isAbort(err: unknown): boolean {
  return err instanceof DOMException && err.name === "AbortError";
}

/**
 * ok awaits an openapi-fetch call and returns its data, or throws an ApiError carrying the server's
 * detail. A network failure becomes an ApiError with status 0; an abort stays an AbortError.
 */
export async function ok<D>(call: Promise<{ data?: D; error?: unknown; response: Response }>): Promise<D> {
  let res: { data?: D; error?: unknown; response: Response };
  try {
    res = await call;
  } catch (err) {
    if (isAbort(err) || err instanceof ApiError) throw err;
    throw new ApiError(0, fallbackDetail(0));
  }
  if (!res.response.ok) throw toApiError(res.response.status, res.error);
  return res.data as D;
}
