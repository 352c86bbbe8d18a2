import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Auth } from "./auth";
import { EventStream, type StreamStatus } from "./events";
import type { ApiEvent } from "./types";

// The gateway's end of a session's stream as a browser's WebSocket shows it (node has no WebSocket
// of its own): a connection replays the log after its after_seq a few frames at a time, then
// follows what is appended. A test can cut a connection after it has delivered a given event, as a
// dropped network does — in the middle of the replay, before the console has even applied what it
// received.
class Gateway {
  log = 0;
  sockets: FakeSocket[] = [];
  /** Events each connection delivers per millisecond while it replays. */
  perTick = 20;
  /** Connections start this many events before their after_seq (a server replaying an overlap). */
  overlap = 0;
  /** Cut connection i once it has delivered event cuts[i]. */
  cuts = new Map<number, number>();

  append(n: number) {
    this.log += n;
  }
}

let gw: Gateway;

class FakeSocket {
  onopen: (() => void) | null = null;
  onmessage: ((m: { data: unknown }) => void) | null = null;
  onclose: ((e: { code: number }) => void) | null = null;
  readonly after: number;
  private sent: number;
  private closed = false;
  private readonly n: number;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(url: string) {
    this.after = Number(new URL(url).searchParams.get("after_seq"));
    this.sent = Math.max(0, this.after - gw.overlap);
    this.n = gw.sockets.length;
    gw.sockets.push(this);
    setTimeout(() => {
      if (this.closed) return;
      this.onopen?.();
      this.timer = setInterval(() => this.pump(), 1);
    }, 5);
  }

  private pump() {
    for (let i = 0; i < gw.perTick && this.sent < gw.log && !this.closed; i++) {
      this.sent++;
      const ev: ApiEvent = { type: "token", sequence: this.sent, content: `event ${this.sent}` };
      this.onmessage?.({ data: JSON.stringify(ev) });
      if (gw.cuts.get(this.n) === this.sent) this.end(1006);
    }
  }

  private end(code: number) {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.onclose?.({ code });
  }

  close(code = 1000) {
    this.end(code);
  }
}

const auth = { token: async () => "token", refresh: async () => "token" } as unknown as Auth;

function follow(afterSeq = 0) {
  const got: number[] = [];
  const statuses: StreamStatus[] = [];
  const s = new EventStream({
    sessionId: "0b5f7c1e-7a53-4c1a-9d0e-3f1b2c4d5e6f",
    afterSeq,
    auth,
    onEvents: (evs) => got.push(...evs.map((e) => e.sequence ?? 0)),
    onStatus: (st) => statuses.push(st),
  });
  s.start();
  return { s, got, statuses };
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** Runs timers until cond holds (or fails after a simulated minute). */
async function until(cond: () => boolean) {
  for (let t = 0; t < 60_000 && !cond(); t += 5) await vi.advanceTimersByTimeAsync(5);
  expect(cond()).toBe(true);
}

beforeEach(() => {
  gw = new Gateway();
  vi.useFakeTimers();
  vi.stubGlobal("WebSocket", FakeSocket);
  vi.stubGlobal("location", new URL("http://console.test/"));
  vi.stubGlobal("addEventListener", () => {});
  vi.stubGlobal("removeEventListener", () => {});
});

afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

describe("EventStream across a drop", () => {
  for (const [name, from, cut] of [
    ["in the middle of the replay", 0, 173],
    ["in the replay of a stream resumed partway", 120, 301],
    ["on the replay's last event, at the switch to the tail", 0, 500],
  ] as const) {
    it(`resumes after the last event received when cut ${name}: every event once, in order`, async () => {
      gw.append(500);
      gw.cuts.set(0, cut);
      const { s, got, statuses } = follow(from);
      await until(() => gw.sockets.length === 2);
      // Everything received before the cut was applied, although the cut came within a batch.
      expect(got).toEqual(range(from + 1, cut));
      expect(gw.sockets[1]!.after).toBe(cut);
      expect(statuses).toContain("reconnecting");
      gw.append(50);
      await until(() => got.at(-1) === 550);
      gw.append(50);
      await until(() => got.at(-1) === 600);
      expect(got).toEqual(range(from + 1, 600));
      expect(statuses.at(-1)).toBe("live");
      s.stop();
    });
  }

  it("drops what a server replays again after a resume, and keeps the rest", async () => {
    gw.append(400);
    gw.overlap = 60;
    gw.cuts.set(0, 150);
    gw.cuts.set(1, 220);
    const { s, got } = follow();
    await until(() => got.at(-1) === 400);
    gw.append(30);
    await until(() => got.at(-1) === 430);
    expect(gw.sockets.map((w) => w.after)).toEqual([0, 150, 220]);
    expect(got).toEqual(range(1, 430));
    s.stop();
  });

  it("hands over what it received when stopped mid-replay, so a new stream resumes exactly there", async () => {
    gw.append(500);
    gw.perTick = 7;
    const first = follow();
    await until(() => first.got.length >= 100);
    first.s.stop();
    const applied = first.got.at(-1)!;
    expect(first.s.sequence).toBe(applied);
    const second = follow(applied);
    await until(() => second.got.at(-1) === 500);
    expect([...first.got, ...second.got]).toEqual(range(1, 500));
    second.s.stop();
  });
});
