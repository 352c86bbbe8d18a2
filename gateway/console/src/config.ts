// Settings of the console that a change on the server side may flip. Each has one place.

/**
 * How the event stream's WebSocket carries the access token. A browser WebSocket cannot send an
 * Authorization header, so the gateway takes the token either in the URL (`?token=`) or as a
 * `Sec-WebSocket-Protocol` value, which keeps it out of URLs, so out of access logs, proxy logs and
 * the browser's own network history.
 */
export const WS_TOKEN_TRANSPORT: "query" | "subprotocol" = "subprotocol";

/**
 * The Sec-WebSocket-Protocol values offered when WS_TOKEN_TRANSPORT is "subprotocol": the marker the
 * gateway selects (a browser drops a connection whose server picks no offered protocol) and, after
 * it, the token itself, which the gateway never echoes. A JWT consists of characters a protocol
 * token may hold.
 */
export function wsProtocols(token: string): string[] {
  return ["mgx.bearer", token];
}

/** Refresh the access token this long before it expires (or a fifth of its lifetime, if shorter). */
export const REFRESH_MARGIN_MS = 60_000;

/** The POST /api/chat/messages content bound of the public contract. */
export const MAX_MESSAGE_CHARS = 4000;

/** The offered demo account (the original product's; `make run` seeds it). */
export const DEMO_ACCOUNT = { email: "demo@mgx.dev", password: "mgx-demo" } as const;
