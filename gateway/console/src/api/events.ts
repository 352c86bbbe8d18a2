// A session's live event stream: WS /api/ws/sessions/{id}?after_seq=N, kept open across network
// drops, server restarts and token expiry. Sequences are per session and strictly increasing, so
// resuming after the last applied one misses nothing, and anything at or below it is a duplicate
// (a replay overlapping what arrived before the drop) and is dropped here.
import { WS_TOKEN_TRANSPORT, wsProtocols } from "../config";
import type { Auth } from "./auth";
import type { ApiEvent } from "./types";

export type StreamStatus =
  | "connecting" // first attempt
  | "live" // open and following
  | "reconnecting" // dropped; trying again with backoff
  | "gone" // the session no longer exists
  | "signed-out" // no valid login
  | "stopped";

/** What a failed handshake means; a browser hides the HTTP status of a refused WebSocket. */
export type Probe = () => Promise<"ok" | "gone" | "signed-out" | "unknown">;

export interface StreamOptions {
  sessionId: string;
  /** The last sequence already applied; the stream resumes after it. */
  afterSeq: number;
  auth: Auth;
  /** Called with events in sequence order, batched so a burst renders once. */
  onEvents: (events: ApiEvent[]) => void;
  onStatus: (status: StreamStatus) => void;
  probe?: Probe;
  /** How long events are gathered before onEvents (ms). */
  batchMs?: number;
}

/** Close codes of the gateway's bridge (4000 + HTTP status). */
const CLOSE_NOT_FOUND = 4404;
const CLOSE_UNAUTHORIZED = 4401;

/** The URL and subprotocols of a session's stream; the token travels as WS_TOKEN_TRANSPORT says. */
export function streamTarget(sessionId: string, afterSeq: number, token: string, base: Location | URL = location) {
  const url = new URL(`/api/ws/sessions/${encodeURIComponent(sessionId)}`, base.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("after_seq", String(afterSeq));
  if (WS_TOKEN_TRANSPORT === "query") {
    url.searchParams.set("token", token);
    return { url: url.href, protocols: undefined };
  }
  return { url: url.href, protocols: wsProtocols(token) };
}

export class EventStream {
  private ws: WebSocket | null = null;
  private lastSeq: number;
  private attempt = 0;
  private refusedHandshakes = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private flushTimer: ReturnType<typeof setTimeout> | undefined;
  private pending: ApiEvent[] = [];
  private stopped = false;
  private readonly onOnline = () => {
    if (!this.ws && !this.stopped) {
      clearTimeout(this.retryTimer);
      void this.connect();
    }
  };

  constructor(private readonly o: StreamOptions) {
    this.lastSeq = o.afterSeq;
  }

  /** The last sequence received. */
  get sequence(): number {
    return this.lastSeq;
  }

  start(): void {
    addEventListener("online", this.onOnline);
    void this.connect();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    removeEventListener("online", this.onOnline);
    clearTimeout(this.retryTimer);
    this.flush();
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000, "client left");
    this.o.onStatus("stopped");
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.o.onStatus(this.attempt === 0 ? "connecting" : "reconnecting");
    const token = await this.o.auth.token();
    if (this.stopped) return;
    if (!token) {
      this.o.onStatus("signed-out");
      return;
    }
    const { url, protocols } = streamTarget(this.o.sessionId, this.lastSeq, token);
    let ws: WebSocket;
    try {
      ws = new WebSocket(url, protocols);
    } catch {
      this.retry();
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.attempt = 0;
      this.refusedHandshakes = 0;
      this.o.onStatus("live");
    };
    ws.onmessage = (m) => this.receive(m.data);
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.flush();
      if (!this.stopped) void this.closed(e.code, opened);
    };
  }

  private receive(data: unknown): void {
    if (typeof data !== "string") return;
    let ev: ApiEvent;
    try {
      ev = JSON.parse(data) as ApiEvent;
    } catch {
      return;
    }
    const seq = ev.sequence ?? 0;
    if (seq > 0) {
      if (seq <= this.lastSeq) return;
      this.lastSeq = seq;
    }
    this.pending.push(ev);
    this.flushTimer ??= setTimeout(() => this.flush(), this.o.batchMs ?? 16);
  }

  private flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.o.onEvents(batch);
  }

  private async closed(code: number, opened: boolean): Promise<void> {
    if (code === CLOSE_NOT_FOUND) {
      this.o.onStatus("gone");
      return;
    }
    if (code === CLOSE_UNAUTHORIZED) {
      const token = await this.o.auth.refresh().catch(() => undefined);
      if (token === null) {
        this.o.onStatus("signed-out");
        return;
      }
    } else if (!opened) {
      // Refused before the upgrade (401, 404, 429…) or the network is down: after a second refusal
      // ask the REST API what is wrong, which also refreshes an expired token on the way.
      this.refusedHandshakes++;
      if (this.refusedHandshakes >= 2 && this.o.probe) {
        const verdict = await this.o.probe();
        if (this.stopped) return;
        if (verdict === "gone" || verdict === "signed-out") {
          this.o.onStatus(verdict);
          return;
        }
      }
    }
    this.retry();
  }

  private retry(): void {
    if (this.stopped) return;
    this.o.onStatus("reconnecting");
    // 0.5 s doubling to 15 s, with jitter so that a restarted gateway is not hit by every tab at once.
    const base = Math.min(15_000, 500 * 2 ** this.attempt);
    this.attempt++;
    this.retryTimer = setTimeout(() => void this.connect(), base / 2 + Math.random() * (base / 2));
  }
}
