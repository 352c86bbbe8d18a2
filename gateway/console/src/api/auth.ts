// Sign-in state: the token pair, its refresh before expiry, and the middleware that puts the access
// token on every API call and retries a call once after a 401.
//
// The refresh token rotates, and the gateway treats a rotated token presented again as stolen
// (it revokes the whole login). Two tabs of the console share one login through localStorage, so a
// refresh must never be done twice with the same token: a tab refreshes under a Web Lock, and first
// re-reads the stored pair — if another tab has rotated it meanwhile, it adopts that pair instead.
import type { Middleware } from "openapi-fetch";
import { REFRESH_MARGIN_MS } from "../config";
import { ApiError, newClient, ok, type ApiClient } from "./http";
import type { TokenPair } from "./types";

const STORAGE_KEY = "mgx.auth";
const LOCK_NAME = "mgx.auth.refresh";

interface Stored {
  access: string;
  refresh: string;
  /** Epoch milliseconds at which the access token expires. */
  expiresAt: number;
  /** Lifetime of the access token in milliseconds, to size the refresh margin. */
  ttl: number;
  email: string;
}

/** Why the console shows the sign-in page, if not at first start. */
export type SignedOutReason = "" | "expired" | "logout";

type Listener = () => void;

/** Paths that take no credential, and a 401 on them is the answer itself. */
const PUBLIC_PATHS = new Set(["/api/auth/login", "/api/auth/register", "/api/auth/refresh", "/api/auth/logout"]);

export class Auth {
  private state: Stored | null;
  private refreshing: Promise<string | null> | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly listeners = new Set<Listener>();
  /** The last reason the user was signed out, for the sign-in page to explain. */
  signedOutReason: SignedOutReason = "";

  constructor(
    private readonly raw: ApiClient = newClient(),
    private readonly storage: Storage = localStorage,
  ) {
    this.state = this.read();
    this.schedule();
    // Another tab signed in, rotated the pair, or signed out.
    addEventListener("storage", (e) => {
      if (e.key !== STORAGE_KEY) return;
      const next = this.read();
      if (!next && this.state) this.signedOutReason = "logout";
      this.state = next;
      this.schedule();
      this.emit();
    });
    // Timers sleep with the laptop; on wake the token may be stale already.
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && this.state && this.expiresSoon()) void this.refresh().catch(() => {});
    });
  }

  get signedIn(): boolean {
    return this.state !== null;
  }

  get email(): string {
    return this.state?.email ?? "";
  }

  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  async login(email: string, password: string): Promise<void> {
    const pair = await ok(this.raw.POST("/api/auth/login", { body: { email, password } }));
    this.adopt(pair, email);
  }

  async register(email: string, password: string, name: string): Promise<void> {
    const body = name.trim() ? { email, password, name: name.trim() } : { email, password };
    const pair = await ok(this.raw.POST("/api/auth/register", { body }));
    this.adopt(pair, email);
  }

  /** Revokes the login on the server (best effort) and forgets it here and in every tab. */
  async logout(): Promise<void> {
    const refresh = this.state?.refresh;
    // Logout is an authenticated call: take a valid access token before the pair is forgotten.
    const access = await this.token().catch(() => null);
    this.clear("logout");
    if (refresh && access) {
      try {
        await ok(
          this.raw.POST("/api/auth/logout", {
            body: { refresh_token: refresh },
            headers: { Authorization: `Bearer ${access}` },
          }),
        );
      } catch {
        // The pair is gone from this browser either way; it expires on its own.
      }
    }
  }

  /** An access token that is valid for a while yet, refreshing first if needed; null when signed out. */
  async token(): Promise<string | null> {
    if (!this.state) return null;
    if (this.expiresSoon()) {
      try {
        return await this.refresh();
      } catch {
        // The server is unreachable: the current token may still work; the call will tell.
        return this.state?.access ?? null;
      }
    }
    return this.state.access;
  }

  /**
   * Rotates the pair once, however many callers ask at the same time. Resolves to the new access
   * token, or null when the login is no longer valid (the user is signed out). Throws ApiError when
   * the server cannot be reached, leaving the pair as it was.
   */
  refresh(): Promise<string | null> {
    this.refreshing ??= this.locked(() => this.rotate()).finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async rotate(): Promise<string | null> {
    const held = this.state;
    const stored = this.read();
    if (!stored) {
      if (held) this.clear("expired");
      return null;
    }
    if (held?.refresh !== stored.refresh && stored.expiresAt - Date.now() > this.margin(stored)) {
      // Another tab rotated it while this one waited: use its pair.
      this.state = stored;
      this.schedule();
      this.emit();
      return stored.access;
    }
    try {
      const pair = await ok(this.raw.POST("/api/auth/refresh", { body: { refresh_token: stored.refresh } }));
      this.adopt(pair, stored.email);
      return this.state?.access ?? null;
    } catch (err) {
      // Refused (not throttled, not unreachable): the login is over.
      if (err instanceof ApiError && [400, 401, 403, 404].includes(err.status)) {
        this.clear("expired");
        return null;
      }
      throw err;
    }
  }

  /** Runs fn under a lock shared by every tab of this origin, where the browser has Web Locks. */
  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const locks = (navigator as Navigator & { locks?: LockManager }).locks;
    return locks ? (locks.request(LOCK_NAME, fn) as Promise<T>) : fn();
  }

  /** The middleware of the API client: the bearer token, and one retry after a refresh on 401. */
  middleware(): Middleware {
    // A request's body can be read once; the copy is what a retry sends.
    const copies = new WeakMap<Request, Request>();
    return {
      onRequest: async ({ request, schemaPath }) => {
        if (PUBLIC_PATHS.has(schemaPath)) return request;
        const token = await this.token();
        if (token) request.headers.set("Authorization", `Bearer ${token}`);
        copies.set(request, request.clone());
        return request;
      },
      onResponse: async ({ request, response, schemaPath }) => {
        const copy = copies.get(request);
        copies.delete(request);
        if (response.status !== 401 || !copy || PUBLIC_PATHS.has(schemaPath) || !this.state) return response;
        const token = await this.refresh().catch(() => null);
        if (!token) return response;
        copy.headers.set("Authorization", `Bearer ${token}`);
        return fetch(copy);
      },
    };
  }

  /** fetch with the same credentials and retry, for the calls openapi-fetch does not make. */
  async fetch(input: string, init: RequestInit = {}): Promise<Response> {
    const send = (token: string | null) => {
      const headers = new Headers(init.headers);
      if (token) headers.set("Authorization", `Bearer ${token}`);
      return fetch(input, { ...init, headers });
    };
    const res = await send(await this.token());
    if (res.status !== 401 || !this.state) return res;
    const token = await this.refresh().catch(() => null);
    return token ? send(token) : res;
  }

  private adopt(pair: TokenPair, email: string): void {
    if (!pair.access_token || !pair.refresh_token) throw new ApiError(500, "The server sent no token.");
    const ttl = Math.max(1, pair.expires_in ?? 900) * 1000;
    this.state = { access: pair.access_token, refresh: pair.refresh_token, expiresAt: Date.now() + ttl, ttl, email };
    this.signedOutReason = "";
    this.storage.setItem(STORAGE_KEY, JSON.stringify(this.state));
    this.schedule();
    this.emit();
  }

  private clear(reason: SignedOutReason): void {
    this.state = null;
    this.signedOutReason = reason;
    this.storage.removeItem(STORAGE_KEY);
    this.schedule();
    this.emit();
  }

  private read(): Stored | null {
    try {
      const v = JSON.parse(this.storage.getItem(STORAGE_KEY) ?? "null") as Partial<Stored> | null;
      if (v && typeof v.access === "string" && typeof v.refresh === "string" && typeof v.expiresAt === "number") {
        return { access: v.access, refresh: v.refresh, expiresAt: v.expiresAt, ttl: v.ttl ?? 900_000, email: v.email ?? "" };
      }
    } catch {
      // A damaged entry is a signed-out browser.
    }
    return null;
  }

  private margin(s: Stored): number {
    return Math.min(REFRESH_MARGIN_MS, s.ttl / 5);
  }

  private expiresSoon(): boolean {
    return !!this.state && this.state.expiresAt - Date.now() <= this.margin(this.state);
  }

  /** Sets the refresh timer. The jitter keeps tabs that share a pair from firing together. */
  private schedule(): void {
    clearTimeout(this.timer);
    if (!this.state) return;
    const due = this.state.expiresAt - this.margin(this.state) - Date.now() - Math.random() * 5000;
    this.timer = setTimeout(
      () => {
        this.refresh().catch(() => {
          // Offline: try again shortly; the token may still be accepted meanwhile.
          this.timer = setTimeout(() => this.schedule(), 10_000);
        });
      },
      Math.max(0, due),
    );
  }

  private emit(): void {
    for (const fn of this.listeners) fn();
  }
}
