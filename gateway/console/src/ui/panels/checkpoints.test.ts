// What a person sees of one file's diff, rendered to HTML with preact-render-to-string (no DOM).
import { h } from "preact";
import { renderToString } from "preact-render-to-string";
import { describe, expect, it } from "vitest";
import { FileDiffView } from "./checkpoints";

const noop = async () => {};

/** Each table row as its class and its cells' text: "diff-add|old no|new no|marker+text". */
function rows(html: string): string[] {
  return [...html.matchAll(/<tr class="([^"]+)">(.*?)<\/tr>/g)].map((m) => {
    const cells = [...m[2]!.matchAll(/<td[^>]*>(.*?)<\/td>/g)].map((c) => c[1]!.replace(/<[^>]+>/g, ""));
    return [m[1], ...cells].join("|");
  });
}

describe("FileDiffView", () => {
  it("numbers both sides and marks added and removed lines for colouring", () => {
    const html = renderToString(
      h(FileDiffView, {
        f: { path: "src/app.js", status: "modified", diff: "--- a/src/app.js\n+++ b/src/app.js\n@@ -1,2 +1,2 @@\n keep <b>\n-old & gone\n+new\n" },
        restorable: true,
        onRestore: noop,
      }),
    );
    expect(html).toContain('data-path="src/app.js"');
    expect(html).toContain('<span class="cp-add">+1</span>');
    expect(html).toContain('<span class="cp-del">−1</span>');
    // Text is escaped, never markup: a diff of HTML shows the HTML.
    expect(html).toContain("keep &lt;b>");
    expect(rows(html)).toEqual([
      "diff-hunk|@@ -1,2 +1,2 @@",
      "diff-ctx|1|1| keep &lt;b>",
      "diff-del|2||−old &amp; gone",
      "diff-add||2|+new",
    ]);
    expect(html).toContain("Restore file");
  });

  it("offers no restore for a file the checkpoint does not hold, and says when a diff is binary or cut", () => {
    const html = renderToString(
      h(FileDiffView, { f: { path: "logo.png", status: "deleted", binary: true, truncated: true }, restorable: false, onRestore: noop }),
    );
    expect(html).not.toContain("Restore file");
    expect(html).toContain("Binary file; no text diff.");
    expect(html).toContain("The diff was cut at its size limit.");
    expect(html).not.toContain("<table");
  });

  it("says an added empty file is empty", () => {
    const html = renderToString(h(FileDiffView, { f: { path: ".keep", status: "added", diff: "" }, restorable: true, onRestore: noop }));
    expect(html).toContain("Empty file.");
  });
});
