import { describe, expect, it } from "vitest";
import { diffSides, parseUnifiedDiff, type DiffLine } from "./diff";

const line = (kind: DiffLine["kind"], text: string, oldNo = 0, newNo = 0): DiffLine => ({ kind, text, oldNo, newNo });

describe("parseUnifiedDiff", () => {
  it("numbers and classifies a modified file's lines, dropping the file headers", () => {
    const d = parseUnifiedDiff(
      [
        "--- a/src/app.js",
        "+++ b/src/app.js",
        "@@ -1,3 +1,4 @@ function main()",
        " const a = 1;",
        "-const b = 2;",
        "+const b = 3;",
        "+const c = 4;",
        " export { a };",
        "@@ -10 +11 @@",
        "-old",
        "+new",
        "\\ No newline at end of file",
        "",
      ].join("\n"),
    );
    expect(d.added).toBe(3);
    expect(d.removed).toBe(2);
    expect(d.lines).toEqual([
      line("hunk", "@@ -1,3 +1,4 @@ function main()"),
      line("ctx", "const a = 1;", 1, 1),
      line("del", "const b = 2;", 2, 0),
      line("add", "const b = 3;", 0, 2),
      line("add", "const c = 4;", 0, 3),
      line("ctx", "export { a };", 3, 4),
      line("hunk", "@@ -10 +11 @@"),
      line("del", "old", 10, 0),
      line("add", "new", 0, 11),
      line("note", "No newline at end of file"),
    ]);
  });

  it("keeps removed and added lines that look like headers inside a hunk", () => {
    const d = parseUnifiedDiff("--- a/x.md\n+++ b/x.md\n@@ -1,2 +1,2 @@\n--- a rule\n+++ counter\n-@@ not a hunk @@\n+@@ also not\n");
    expect(d.lines.map((l) => [l.kind, l.text])).toEqual([
      ["hunk", "@@ -1,2 +1,2 @@"],
      ["del", "-- a rule"],
      ["add", "++ counter"],
      ["del", "@@ not a hunk @@"],
      ["add", "@@ also not"],
    ]);
  });

  it("reads an added file (old side empty) and an empty context line without its space", () => {
    const d = parseUnifiedDiff("--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1,2 @@\n+one\n+two\n");
    expect(d.lines.slice(1)).toEqual([line("add", "one", 0, 1), line("add", "two", 0, 2)]);
    const ctx = parseUnifiedDiff("@@ -1,3 +1,3 @@\n a\n\n-b\n+c\n");
    expect(ctx.lines[2]).toEqual(line("ctx", "", 2, 2));
    expect(ctx.lines[3]).toEqual(line("del", "b", 3, 0));
  });

  it("gives nothing for an empty or binary (empty) diff", () => {
    expect(parseUnifiedDiff("")).toEqual({ lines: [], added: 0, removed: 0 });
  });
});

describe("diffSides", () => {
  it("compares a checkpoint with its predecessor, or with now", () => {
    expect(diffSides({ id: "b", parentId: "a" }, "step")).toEqual({ from: "a", against: "b" });
    expect(diffSides({ id: "b", parentId: "a" }, "now")).toEqual({ from: "b", against: "" });
    expect(diffSides({ id: "a", parentId: "" }, "step")).toBeNull();
  });
});
