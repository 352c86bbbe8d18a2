import { describe, expect, it } from "vitest";
import { person } from "../agents";
import { streamTarget } from "./events";
import { toApiError } from "./http";
import { ndjson } from "./ndjson";

describe("toApiError", () => {
  it.each([
    ["the gateway's error body", 404, { detail: "session not found", code: "NOT_FOUND", message: "session not found", reason: "SESSION_NOT_FOUND" }, "session not found", "SESSION_NOT_FOUND"],
    ["grpc-gateway's stream error", 200, { error: { code: 5, message: "process not found", details: [] } }, "process not found", ""],
    ["a proxy's plain text", 502, "upstream connect error", "upstream connect error", ""],
    ["a proxy's HTML page", 502, "<html><body>Bad Gateway</body></html>", "The server failed (HTTP 502). Try again in a moment.", ""],
    ["nothing at all", 401, undefined, "Your sign-in has expired. Please sign in again.", ""],
  ])("reads %s", (_, status, body, detail, reason) => {
    const e = toApiError(status, body);
    expect(e.message).toBe(detail);
    expect(e.status).toBe(status);
    expect(e.reason).toBe(reason);
  });
});

describe("streamTarget", () => {
  it("resumes after the last sequence, with the token as a subprotocol and never in the URL", () => {
    const t = streamTarget("abc/def", 41, "tok.en", new URL("https://mgx.example.com/s/abc"));
    const u = new URL(t.url);
    expect(u.protocol).toBe("wss:");
    expect(u.pathname).toBe("/api/ws/sessions/abc%2Fdef");
    expect(u.searchParams.get("after_seq")).toBe("41");
    expect(u.searchParams.has("token")).toBe(false);
    expect(t.url).not.toContain("tok.en");
    expect(t.protocols).toEqual(["mgx.bearer", "tok.en"]);
    expect(new URL(streamTarget("s", 0, "t", new URL("http://localhost:8000/")).url).protocol).toBe("ws:");
  });
});

describe("ndjson", () => {
  it("yields values split across chunks, multi-byte characters included", async () => {
    const bytes = new TextEncoder().encode('{"result":{"data":"aGk="}}\n{"result":{"text":"héllo"}}\n{"error":{"message":"x"}}');
    const chunks = [bytes.slice(0, 5), bytes.slice(5, 33), bytes.slice(33, 34), bytes.slice(34)];
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (const ch of chunks) c.enqueue(ch);
        c.close();
      },
    });
    const out = [];
    for await (const v of ndjson(body)) out.push(v);
    expect(out).toEqual([{ result: { data: "aGk=" } }, { result: { text: "héllo" } }, { error: { message: "x" } }]);
  });
});

describe("person", () => {
  it.each([
    ["mike", "Mike", "Team Leader"],
    ["Mike", "Mike", "Team Leader"],
    ["ALEX", "Alex", "Engineer"],
    ["iris", "Iris", "Researcher"],
    ["user", "You", ""],
    ["zoe", "Zoe", ""],
  ])("%s is %s", (raw, name, role) => {
    expect(person(raw)).toMatchObject({ name, role });
  });

  it("gives every team member a colour of their own", () => {
    const colours = ["mike", "emma", "bob", "alex", "david", "iris"].map((n) => person(n).color);
    expect(new Set(colours).size).toBe(6);
  });
});
