import { describe, expect, it } from "vitest";
import { person } from "../agents";
import type { ApiEvent } from "../api/types";
import type { Plan } from "../api/types";
import {
  addMessage,
  applyEvents,
  applyRun,
  emptyView,
  filesTouched,
  fromHistory,
  MAX_LIVE_OUTPUT,
  messageSent,
  runQueued,
  seedPlan,
  type ArtifactItem,
  type SessionView,
  type ToolItem,
} from "./session";
// A real run of the offline scripted provider, as today's gateway streams it (agent ids in
// lowercase; status and tool events without a message_id).
import buildRun from "./testdata/build-run.json";
// A real run of the scripted provider as today's gateway streams it, recorded over the WebSocket:
// arguments streamed as tool_call_delta, shell output as tool_output, the preview screenshot as an
// artifact; and the plan GET /api/sessions/{id}/plan answered after it.
import liveRun from "./testdata/live-run.json";
import livePlan from "./testdata/live-run.plan.json";

const today = buildRun as ApiEvent[];
const live = liveRun as ApiEvent[];
const TEAM = new Set(["mike", "emma", "bob", "alex", "david", "iris"]);

/**
 * The same run as the fixed wire will send it: display names, and a message_id with final on every
 * event a chat shows.
 */
const fixed: ApiEvent[] = today.map((e) => {
  const agent = e.agent && TEAM.has(e.agent) ? e.agent[0]!.toUpperCase() + e.agent.slice(1) : e.agent;
  const chat = ["status", "error", "tool_call"].includes(e.type ?? "");
  return { ...e, agent, ...(chat ? { message_id: `mid-${e.sequence}`, final: true } : {}) };
});

function replay(events: ApiEvent[], batches: number[] = [events.length]): SessionView {
  let v = emptyView();
  let i = 0;
  for (const n of batches) {
    v = applyEvents(v, events.slice(i, i + n));
    i += n;
  }
  return applyEvents(v, events.slice(i));
}

/** A deterministic pseudo-random sequence, so a failure reproduces. */
function rng(seed: number) {
  return () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
}

describe("applyEvents on a real run", () => {
  for (const [wire, events] of [
    ["today's wire", today],
    ["the fixed wire", fixed],
  ] as const) {
    describe(wire, () => {
      const v = replay(events);

      it("shows the chat in order, each line once", () => {
        const kinds = v.items.map((it) => (it.kind === "tool" ? `tool:${it.tool}` : it.kind === "message" ? `${it.kind}:${person(it.agent || it.sender).name}` : it.kind));
        expect(kinds.slice(0, 6)).toEqual(["message:You", "status", "message:Mike", "tool:plan_append", "message:Mike", "tool:send_message"]);
        expect(kinds).toContain("message:Alex");
        expect(kinds.filter((k) => k === "tool:file_write")).toHaveLength(4);
        expect(kinds.at(-1)).toBe("tool:end");
        expect(new Set(v.items.map((it) => it.key)).size).toBe(v.items.length);
        expect(v.lastSeq).toBe(52);
      });

      it("names the agents by their display names", () => {
        const names = new Set(v.items.flatMap((it) => (it.kind === "message" && it.sender !== "user" ? [person(it.agent).name] : [])));
        expect(names).toEqual(new Set(["Mike", "Alex"]));
      });

      it("replaces streamed tokens with the final text", () => {
        const first = v.items.find((it) => it.kind === "message" && it.agent === "mike");
        expect(first).toMatchObject({ streaming: false, content: "(Offline scripted provider: no LLM key is configured.) Let me plan this." });
      });

      it("settles every tool call: results attached, control calls done, replies shown as messages", () => {
        const tools = v.items.filter((it): it is ToolItem => it.kind === "tool");
        expect(tools.every((t) => t.output !== null && !t.interrupted)).toBe(true);
        expect(tools.find((t) => t.tool === "sandbox_shell")?.output).toMatch(/^exit_code: 0/);
        expect(tools.some((t) => t.tool === "reply_to_human")).toBe(false);
        expect(tools.find((t) => t.tool === "plan_update")?.control).toBe(true);
        const last = v.items.filter((it) => it.kind === "message").at(-1);
        expect(last?.kind === "message" && last.content).toMatch(/^Your app is built/);
      });

      it("puts changed files on the call that wrote them", () => {
        const writes = v.items.filter((it): it is ToolItem => it.kind === "tool" && it.tool === "file_write");
        expect(writes.map((t) => t.paths)).toEqual([["index.html"], ["server.js"], ["server.py"], ["start.sh"]]);
        expect(v.files).toEqual({ version: 4, changed: ["start.sh"] });
        expect(v.items.some((it) => it.kind === "files")).toBe(false);
      });

      it("follows the plan and the run", () => {
        expect(v.plan?.tasks).toEqual([
          { id: "build", title: "Build the page and a small server, start it and share the preview", assignee: "alex", status: "done", note: "", dependsOn: [] },
        ]);
        expect(v.run).toMatchObject({ status: "completed", active: false });
        expect(v.workspaceVersion).toBeGreaterThan(0);
        expect(v.usage).toMatchObject({ inputTokens: 3450, outputTokens: 189 });
      });
    });
  }

  it("gives the same view however the events are batched, and ignores replays of what it has", () => {
    const whole = replay(today);
    const next = rng(7);
    for (let round = 0; round < 50; round++) {
      // Reconnects resume after a sequence the client already passed, so batches overlap.
      let v = emptyView();
      let at = 0;
      while (at < today.length) {
        const from = Math.max(0, at - Math.floor(next() * 6));
        const to = Math.min(today.length, at + 1 + Math.floor(next() * 9));
        v = applyEvents(v, today.slice(from, to));
        at = to;
      }
      expect(v).toEqual(whole);
    }
  });

  it("tracks the run through its intermediate states", () => {
    const upTo = (seq: number) => replay(today.filter((e) => (e.sequence ?? 0) <= seq));
    expect(upTo(2).run).toMatchObject({ status: "running", active: true });
    const mid = upTo(5);
    expect(mid.items.at(-1)).toMatchObject({ kind: "message", streaming: true, content: "(Offline scripted provider: no LLM key is configured.) Let me plan this." });
    expect(upTo(8).plan?.tasks[0]?.status).toBe("todo");
    expect(upTo(12).plan?.tasks[0]?.status).toBe("in_progress");
    expect(upTo(16).items.at(-1)).toMatchObject({ kind: "tool", tool: "file_write", output: null });
  });

  it("keeps two runs apart although the provider reuses call ids", () => {
    const second = today.map((e) => ({ ...e, sequence: (e.sequence ?? 0) + 100, run_id: "run-2", message_id: e.message_id ? `${e.message_id}-2` : "" }));
    const v = replay([...today, ...second]);
    const writes = v.items.filter((it) => it.kind === "tool" && it.tool === "file_write");
    expect(writes).toHaveLength(8);
  });
});

describe("applyEvents edge cases", () => {
  const base = { session_id: "s", timestamp: "2026-01-01T00:00:00Z" };

  it("ignores a late token after the final text", () => {
    const v = replay([
      { ...base, sequence: 1, type: "token", message_id: "m", agent: "mike", sender: "mike", content: "Hel" },
      { ...base, sequence: 2, type: "message", message_id: "m", agent: "mike", sender: "mike", content: "Hello.", final: true },
      { ...base, sequence: 3, type: "token", message_id: "m", agent: "mike", sender: "mike", content: "lo" },
    ]);
    expect(v.items).toHaveLength(1);
    expect(v.items[0]).toMatchObject({ content: "Hello.", streaming: false });
  });

  it("accepts a final token event as the whole text", () => {
    const v = replay([
      { ...base, sequence: 1, type: "token", message_id: "m", agent: "Alex", content: "a" },
      { ...base, sequence: 2, type: "token", message_id: "m", agent: "Alex", content: "b" },
      { ...base, sequence: 3, type: "token", message_id: "m", agent: "Alex", content: "the whole text", final: true },
    ]);
    expect(v.items[0]).toMatchObject({ content: "the whole text", streaming: false, agent: "alex" });
  });

  it("replaces a retried attempt's text and keeps the message streaming", () => {
    const v = replay([
      { ...base, sequence: 1, type: "token", message_id: "m", agent: "Alex", content: "half an ans" },
      { ...base, sequence: 2, type: "token", message_id: "m", agent: "Alex", content: "", final: true, data: { reset: true } },
      { ...base, sequence: 3, type: "status", message_id: "s", sender: "status", content: "retrying (attempt 2 of 4)" },
      { ...base, sequence: 4, type: "token", message_id: "m", agent: "Alex", content: "The " },
      { ...base, sequence: 5, type: "token", message_id: "m", agent: "Alex", content: "answer" },
    ]);
    expect(v.items[0]).toMatchObject({ content: "The answer", streaming: true });
    const settled = replay([...[], { ...base, sequence: 1, type: "token", message_id: "m", agent: "Alex", content: "x" },
      { ...base, sequence: 2, type: "token", message_id: "m", agent: "Alex", content: "", final: true, data: { reset: true } },
      { ...base, sequence: 3, type: "message", message_id: "m", agent: "Alex", sender: "agent", content: "Done.", final: true }]);
    expect(settled.items[0]).toMatchObject({ content: "Done.", streaming: false });
  });

  it("settles what was in flight when the run is cancelled", () => {
    const v = replay([
      { ...base, sequence: 1, type: "run", run_id: "r", content: "started", data: { status: "started" } },
      { ...base, sequence: 2, type: "token", run_id: "r", message_id: "m", agent: "alex", content: "Writ" },
      { ...base, sequence: 3, type: "tool_call", run_id: "r", agent: "alex", tool: "sandbox_shell", content: '{"command":"sleep 60"}', data: { call_id: "c1" } },
      { ...base, sequence: 4, type: "status", run_id: "r", sender: "status", content: "Run cancelled.", data: { status: "cancelled" } },
    ]);
    expect(v.run).toMatchObject({ status: "cancelled", active: false });
    expect(v.items[0]).toMatchObject({ kind: "message", streaming: false, content: "Writ" });
    expect(v.items[1]).toMatchObject({ kind: "tool", interrupted: true, output: "" });
    expect(v.items[2]).toMatchObject({ kind: "status", content: "Run cancelled." });
  });

  it("waits for the user's answer with the question", () => {
    const v = replay([
      { ...base, sequence: 1, type: "run", run_id: "r", data: { status: "started" } },
      { ...base, sequence: 2, type: "tool_call", run_id: "r", agent: "mike", tool: "ask_human", content: '{"question":"Which colour?"}', data: { call_id: "c" } },
      { ...base, sequence: 3, type: "message", run_id: "r", agent: "mike", sender: "mike", message_id: "q", content: "Which colour?", final: true, data: { question: true, call_id: "c" } },
      { ...base, sequence: 4, type: "status", run_id: "r", sender: "status", content: "Waiting for your answer.", data: { status: "waiting", question: "Which colour?" } },
    ]);
    expect(v.run).toEqual({ id: "r", status: "waiting", active: true, question: "Which colour?" });
    expect(v.items.map((it) => it.kind)).toEqual(["message", "status"]);
    expect(v.items[0]).toMatchObject({ question: true });
  });

  it("shows a failed run's error", () => {
    const v = replay([
      { ...base, sequence: 1, type: "run", run_id: "r", data: { status: "started" } },
      { ...base, sequence: 2, type: "error", run_id: "r", sender: "status", content: "The run failed: model provider failed", data: { status: "failed" } },
    ]);
    expect(v.items).toEqual([expect.objectContaining({ kind: "error", content: "The run failed: model provider failed" })]);
    expect(v.run).toMatchObject({ status: "failed", active: false });
  });

  it("shows a file change that follows no call of the same agent on a line of its own", () => {
    const v = replay([{ ...base, sequence: 1, type: "file_change", agent: "alex", paths: ["a.txt", "b/c.txt"], content: "a.txt, b/c.txt" }]);
    expect(v.items).toEqual([expect.objectContaining({ kind: "files", paths: ["a.txt", "b/c.txt"] })]);
  });

  it("skips unknown event types but keeps their sequence", () => {
    const v = replay([{ ...base, sequence: 9, type: "checkpoint", content: "x" }]);
    expect(v.items).toEqual([]);
    expect(v.lastSeq).toBe(9);
  });
});

describe("state from the REST API", () => {
  it("shows the user's message at once, and its event updates it in place", () => {
    const sent = { id: "10043d20-3d42-451c-8ebd-6e9018de4fc4", sender: "user", content: "Build a hello page", timestamp: "2026-11-30T02:04:27Z" };
    let v = runQueued(addMessage(emptyView(), sent), "79e417f4-19df-4602-9748-308aecad0a40");
    expect(v.run).toMatchObject({ status: "queued", active: true });
    v = applyEvents(v, today);
    expect(v.items.filter((it) => it.key === `m:${sent.id}`)).toHaveLength(1);
    expect(v.items[0]?.key).toBe(`m:${sent.id}`);
  });

  it("takes the run from GET /run only where the events know nothing newer", () => {
    const done = replay(today);
    const stale = { id: "79e417f4-19df-4602-9748-308aecad0a40", status: "running", active: true };
    expect(applyRun(done, stale)).toBe(done);
    const queued = { id: "next-run", status: "queued", active: true };
    expect(applyRun(done, queued).run).toMatchObject({ id: "next-run", status: "queued", active: true });
    expect(applyRun(emptyView(), stale).run).toMatchObject({ status: "running", active: true });
  });

  it("renders the stored history, status lines included", () => {
    const items = fromHistory([
      { id: "1", sender: "user", content: "hi" },
      { id: "2", sender: "mike", agent: "Mike", content: "hello" },
      { id: "3", sender: "status", content: "Run cancelled." },
    ]);
    expect(items.map((it) => it.kind)).toEqual(["message", "message", "status"]);
    expect(items[1]).toMatchObject({ agent: "mike" });
  });
});

describe("live events of today's wire", () => {
  const v = replay(live);
  const tools = v.items.filter((it): it is ToolItem => it.kind === "tool");
  const seqOf = (type: string, tool: string) => live.find((e) => e.type === type && e.tool === tool)?.sequence ?? 0;
  const upTo = (seq: number) => replay(live.filter((e) => (e.sequence ?? 0) <= seq));

  it("settles every call, each once, in the order the model wrote them", () => {
    expect(tools.every((t) => !t.drafting && t.output !== null && !t.interrupted)).toBe(true);
    expect(new Set(v.items.map((it) => it.key)).size).toBe(v.items.length);
    const shown = live.filter((e) => e.type === "tool_call" && !["reply_to_human", "ask_human"].includes(e.tool ?? ""));
    expect(tools.map((t) => t.tool)).toEqual(shown.map((e) => e.tool));
    expect(tools.every((t) => t.key.startsWith("t:") && !t.key.startsWith("t:d:"))).toBe(true);
  });

  it("shows a call while its arguments are being written, then the call in the same place", () => {
    const delta = live.find((e) => e.type === "tool_call_delta" && e.tool === "file_write")!;
    const during = upTo(delta.sequence ?? 0);
    const draft = during.items.at(-1);
    expect(draft).toMatchObject({ kind: "tool", tool: "file_write", drafting: true, output: null, agent: "alex" });
    expect((draft as ToolItem).args).toBe(delta.content);
    const at = during.items.length - 1;
    const after = upTo(seqOf("tool_call", "file_write"));
    expect(after.items[at]).toMatchObject({ kind: "tool", tool: "file_write", drafting: false, callId: "call_alex_1_0" });
  });

  it("keeps parallel calls drafted together in the order they were written", () => {
    // Three file_write calls of one turn: all three drafted, then each call settles its own.
    const drafts = live.filter((e) => e.type === "tool_call_delta" && e.tool === "file_write").slice(1);
    expect(drafts).toHaveLength(3);
    const during = upTo(drafts[2]!.sequence ?? 0);
    const shown = during.items.filter((it): it is ToolItem => it.kind === "tool" && it.drafting);
    expect(shown.map((t) => JSON.parse(t.args + "").path ?? "")).toEqual(["", "", ""].map((_, i) => JSON.parse(drafts[i]!.content ?? "").path ?? ""));
    const paths = tools.filter((t) => t.tool === "file_write").map((t) => (JSON.parse(t.args) as { path: string }).path);
    expect(paths).toEqual(["index.html", "server.js", "server.py", "start.sh"]);
  });

  it("never shows a call whose whole effect is a message of its own", () => {
    const delta = live.find((e) => e.type === "tool_call_delta" && e.tool === "reply_to_human")!;
    expect(upTo(delta.sequence ?? 0).items.some((it) => it.kind === "tool" && it.tool === "reply_to_human")).toBe(false);
    expect(tools.some((t) => t.tool === "reply_to_human")).toBe(false);
  });

  it("streams a command's output into its running call, then the result replaces it", () => {
    const out = live.find((e) => e.type === "tool_output")!;
    const during = upTo(out.sequence ?? 0).items.find((it): it is ToolItem => it.kind === "tool" && it.tool === "sandbox_shell")!;
    expect(during).toMatchObject({ output: null, live: out.content });
    expect(during.live).toContain("Hello from the MGX team");
    const done = tools.find((t) => t.tool === "sandbox_shell")!;
    expect(done.output).toMatch(/^exit code: 0 /);
  });

  it("lists the screenshot as an artifact and shows it in the chat after its call", () => {
    expect(v.artifacts).toHaveLength(1);
    const a = v.artifacts[0]!;
    expect(a).toMatchObject({ contentType: "image/png", tool: "preview_check", agent: "alex", width: 1280, height: 800, callId: "call_alex_8_0" });
    expect(a.name).toMatch(/^preview-\d+\.png$/);
    expect(a.source).toMatch(/^port \d+ \/$/);
    const i = v.items.findIndex((it) => it.kind === "artifact");
    expect((v.items[i] as ArtifactItem).id).toBe(a.id);
    expect(v.items[i - 1]).toMatchObject({ kind: "tool", tool: "preview_check" });
  });

  it("gives the same view however the events are batched, live or replayed", () => {
    const next = rng(7);
    for (let round = 0; round < 20; round++) {
      let u = emptyView();
      for (let at = 0; at < live.length; ) {
        const to = Math.min(live.length, at + 1 + Math.floor(next() * 7));
        // A reconnect replays an overlap: nothing may change twice.
        u = applyEvents(u, live.slice(Math.max(0, at - Math.floor(next() * 3)), to));
        at = to;
      }
      expect(u).toEqual(v);
    }
  });
});

describe("live events, edge cases", () => {
  const base = { session_id: "s", timestamp: "2026-01-01T00:00:00Z", run_id: "r", agent: "Alex", sender: "agent" };

  it("takes back a retried turn's drafted calls", () => {
    const v = replay([
      { ...base, sequence: 1, type: "tool_call_delta", message_id: "m1", tool: "file_write", content: '{"path":"a', data: { partial: true } },
      { ...base, sequence: 2, type: "tool_call_delta", message_id: "m1", tool: "file_write", content: "", final: true, data: { reset: true } },
      { ...base, sequence: 3, type: "status", sender: "status", message_id: "st", content: "retrying" },
      { ...base, sequence: 4, type: "tool_call_delta", message_id: "m1", tool: "file_write", content: '{"path":"b.txt"}', data: { partial: true } },
      { ...base, sequence: 5, type: "tool_call", message_id: "m1", tool: "file_write", content: '{"path":"b.txt"}', final: true, data: { call_id: "c1" } },
    ]);
    expect(v.items.map((it) => it.kind)).toEqual(["status", "tool"]);
    expect(v.items[1]).toMatchObject({ key: "t:r:c1", args: '{"path":"b.txt"}', drafting: false });
  });

  it("appends argument pieces and marks a call the run never made as interrupted", () => {
    const v = replay([
      { ...base, sequence: 1, type: "run", data: { status: "started" } },
      { ...base, sequence: 2, type: "tool_call_delta", message_id: "m", tool: "sandbox_shell", content: '{"comm', data: { partial: true } },
      { ...base, sequence: 3, type: "tool_call_delta", message_id: "m", content: 'and":"ls"}', data: { partial: true } },
    ]);
    expect(v.items[0]).toMatchObject({ tool: "sandbox_shell", args: '{"command":"ls"}', drafting: true });
    const cancelled = applyEvents(v, [{ ...base, sequence: 4, type: "status", sender: "status", message_id: "x", content: "Run cancelled.", data: { status: "cancelled" } }]);
    expect(cancelled.items[0]).toMatchObject({ drafting: false, interrupted: true, output: "" });
  });

  it("keeps the tail of a long running output, and ignores output after the result", () => {
    const piece = "x".repeat(1000) + "\n";
    const evs: ApiEvent[] = [{ ...base, sequence: 1, type: "tool_call", tool: "sandbox_shell", message_id: "m", content: "{}", data: { call_id: "c" } }];
    for (let i = 0; i < 100; i++) evs.push({ ...base, sequence: 2 + i, type: "tool_output", tool: "sandbox_shell", message_id: "o", content: i === 99 ? "the end\n" : piece, data: { call_id: "c", stream: "stdout" } });
    let v = replay(evs);
    const t = v.items[0] as ToolItem;
    expect(t.live.length).toBeLessThanOrEqual(MAX_LIVE_OUTPUT + 40);
    expect(t.live.startsWith("… (earlier output not shown)\n")).toBe(true);
    expect(t.live.endsWith("the end\n")).toBe(true);
    v = applyEvents(v, [
      { ...base, sequence: 200, type: "tool_result", tool: "sandbox_shell", content: "exit_code: 0", data: { call_id: "c" } },
      { ...base, sequence: 201, type: "tool_output", tool: "sandbox_shell", content: "late", data: { call_id: "c" } },
    ]);
    expect(v.items[0]).toMatchObject({ output: "exit_code: 0" });
    expect((v.items[0] as ToolItem).live).not.toContain("late");
  });

  it("announces an artifact once, however often its event is replayed", () => {
    const ev: ApiEvent = { ...base, sequence: 1, type: "artifact", tool: "preview_check", message_id: "a", content: "shot.png (port 3000 /)",
      data: { artifact_id: "id-1", name: "shot.png", content_type: "image/png", size: 10, url: "/api/sessions/s/artifacts/id-1", call_id: "c" } };
    const v = applyEvents(applyEvents(emptyView(), [ev]), [ev, { ...ev, sequence: 2 }]);
    expect(v.artifacts.map((a) => a.id)).toEqual(["id-1"]);
    expect(v.items.filter((it) => it.kind === "artifact")).toHaveLength(1);
  });
});

describe("seedPlan", () => {
  const plan = livePlan as Plan;

  it("shows the plan the API has before the events are replayed", () => {
    const v = seedPlan(emptyView(), plan);
    expect(v.plan).toEqual({ tasks: [expect.objectContaining({ id: "build", status: "done", assignee: "alex" })], finished: false, runId: plan.run_id });
  });

  it("leaves a plan the events built alone, and ignores an empty one", () => {
    const fromEvents = replay(live);
    expect(seedPlan(fromEvents, { ...plan, tasks: [] })).toBe(fromEvents);
    expect(seedPlan(fromEvents, plan)).toBe(fromEvents);
    expect(seedPlan(emptyView(), { session_id: "s", tasks: [], finished: false }).plan).toBeNull();
  });

  it("is replaced by the replayed events, which end where the API's plan is", () => {
    const v = applyEvents(seedPlan(emptyView(), plan), live);
    expect(v.plan).toEqual(replay(live).plan);
  });
});

describe("messageSent", () => {
  const user = { id: "u1", sender: "user", content: "also add a footer" };

  it("queues the run a message starts", () => {
    expect(messageSent(emptyView(), { user, run_id: "r2" }, false).run).toMatchObject({ id: "r2", status: "queued", active: true });
  });

  it("does not queue a run when the message steered the active one", () => {
    const running = replay([{ session_id: "s", sequence: 1, type: "run", run_id: "r1", data: { status: "started" } }]);
    const v = messageSent(running, { user, run_id: "r1", steered: true }, false);
    expect(v.run).toEqual(running.run);
    expect(v.items.at(-1)).toMatchObject({ kind: "message", sender: "user", content: "also add a footer" });
  });

  it("keeps a waiting run waiting for the answer it was given", () => {
    const waiting = replay([{ session_id: "s", sequence: 1, type: "run", run_id: "r1", data: { status: "waiting", question: "Which?" } }]);
    expect(messageSent(waiting, { user, run_id: "r1" }, true).run).toEqual(waiting.run);
  });
});

describe("a message sent while the log is still being replayed", () => {
  // After a page load (or a dropped stream) the console replays the log; the user may send before it
  // has caught up. What the console shows must end up as a full replay shows it.
  const session = today[0]!.session_id!;
  const user = { id: "u2", sender: "user", content: "Now make the heading say hello", timestamp: "2026-11-30T02:05:00Z" };
  const next: ApiEvent[] = [
    { type: "message", sender: "user", content: user.content, message_id: user.id, final: true, session_id: session, timestamp: user.timestamp, sequence: 53, run_id: "r2" },
    { type: "run", sender: "status", content: "started", session_id: session, sequence: 54, run_id: "r2", data: { status: "started" } },
    { type: "message", sender: "mike", agent: "mike", content: "On it.", message_id: "m2", final: true, session_id: session, sequence: 55, run_id: "r2" },
    { type: "run", sender: "status", content: "completed", session_id: session, sequence: 56, run_id: "r2", data: { status: "completed" } },
  ];
  const full = replay([...today, ...next]);

  for (const sentAfter of [1, 20, 51]) {
    it(`sent after event ${sentAfter} of 52: the earlier run never passes for the new one, the line lands where a full replay has it`, () => {
      let v = replay(today.slice(0, sentAfter));
      v = messageSent(v, { user, run_id: "r2" }, false);
      v = applyEvents(v, today.slice(sentAfter));
      // The rest of the replay, the earlier run's start and end included, leaves the new run queued
      // (a "completed" here would read as the new run having finished).
      expect(v.run).toMatchObject({ id: "r2", status: "queued", active: true });
      expect(v.items.at(-1)).toMatchObject({ key: `m:${user.id}`, pending: true });
      v = applyEvents(v, next.slice(0, 2));
      expect(v.run).toMatchObject({ id: "r2", status: "running" });
      v = applyEvents(v, next.slice(2));
      expect(v.items.map((it) => it.key)).toEqual(full.items.map((it) => it.key));
      expect(v).toEqual(full);
    });
  }

  it("keeps two messages sent mid-replay in the order they were sent", () => {
    let v = replay(today.slice(0, 10));
    v = addMessage(v, { id: "a", sender: "user", content: "one" });
    v = addMessage(v, { id: "b", sender: "user", content: "two" });
    v = applyEvents(v, today.slice(10));
    expect(v.items.slice(-2).map((it) => it.key)).toEqual(["m:a", "m:b"]);
    expect(v.items.slice(0, -2).map((it) => it.key)).toEqual(replay(today).items.map((it) => it.key));
  });
});

describe("checkpoint events", () => {
  // As agentd's checkpointEvent writes it after file_write changed index.html (see live-run.json,
  // sequence 26): the snapshot's id, its parent's, the count and the call it follows.
  const fileChange = (live as ApiEvent[]).find((e) => e.type === "file_change")!;
  const checkpoint = (seq: number, id: string, parent: string, files: number): ApiEvent => ({
    type: "checkpoint",
    sender: "agent",
    agent: "Alex",
    invoker: "Alex",
    tool: "file_write",
    content: `checkpoint ${id}: ${files} files changed`,
    session_id: fileChange.session_id,
    run_id: fileChange.run_id,
    timestamp: "2026-11-30T04:52:07.801Z",
    sequence: seq,
    data: { call_id: "call_alex_1_0", checkpoint_id: id, parent_id: parent, files_changed: files, kind: "step" },
  });

  it("lists each announced checkpoint once, oldest first, without a chat line", () => {
    const before = applyEvents(emptyView(), [fileChange]);
    const a = checkpoint(27, "cp-a", "", 1);
    const b = checkpoint(40, "cp-b", "cp-a", 3);
    let v = applyEvents(before, [a]);
    // A reconnect replays what it already has, and a second delivery of the same id changes nothing.
    v = applyEvents(v, [a, b, { ...b, sequence: 41 }]);
    expect(v.checkpoints).toEqual([
      { id: "cp-a", parentId: "", filesChanged: 1, kind: "step", agent: "alex", tool: "file_write", callId: "call_alex_1_0", runId: fileChange.run_id, at: "2026-11-30T04:52:07.801Z" },
      { id: "cp-b", parentId: "cp-a", filesChanged: 3, kind: "step", agent: "alex", tool: "file_write", callId: "call_alex_1_0", runId: fileChange.run_id, at: "2026-11-30T04:52:07.801Z" },
    ]);
    expect(v.items).toEqual(before.items);
    expect(v.files).toEqual(before.files);
    expect(v.run).toEqual(before.run);
  });

  it("ignores a checkpoint event without an id", () => {
    const ev = checkpoint(5, "", "", 0);
    expect(applyEvents(emptyView(), [ev]).checkpoints).toEqual([]);
  });

  it("counts files_changed sent as a string (int64 JSON)", () => {
    const ev = checkpoint(5, "cp", "", 0);
    ev.data = { ...ev.data, files_changed: "12" };
    expect(applyEvents(emptyView(), [ev]).checkpoints[0]?.filesChanged).toBe(12);
  });

  it("a restore marks the restored files changed, as a file_change would", () => {
    const v = filesTouched(applyEvents(emptyView(), [fileChange]), ["src/app.js", "index.html"]);
    expect(v.files).toEqual({ version: 2, changed: ["src/app.js", "index.html"] });
  });
});
