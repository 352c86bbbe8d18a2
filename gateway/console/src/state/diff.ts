// A file's unified diff (as the checkpoints API returns it) read into lines a view can number and
// colour. Pure, so the tests pin down what a person sees for each kind of line.

export type DiffLineKind = "add" | "del" | "ctx" | "hunk" | "note";

export interface DiffLine {
  kind: DiffLineKind;
  /** The line without its +/-/space marker (a hunk's whole header for "hunk"). */
  text: string;
  /** Line number on the old side (del, ctx), 0 when none. */
  oldNo: number;
  /** Line number on the new side (add, ctx), 0 when none. */
  newNo: number;
}

export interface ParsedDiff {
  lines: DiffLine[];
  added: number;
  removed: number;
}

const HUNK = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$/;

/**
 * Parses one file's unified diff. File headers (---/+++, diff, index) are dropped: the view shows
 * the path itself. Inside a hunk the line counts decide what a line is, so a removed line that reads
 * "-- x" is not mistaken for a header.
 */
export function parseUnifiedDiff(text: string): ParsedDiff {
  const out: ParsedDiff = { lines: [], added: 0, removed: 0 };
  if (!text) return out;
  const raw = text.split("\n");
  // A diff ends with a newline: the empty piece after it is no line.
  if (raw[raw.length - 1] === "") raw.pop();
  let oldNo = 0;
  let newNo = 0;
  let oldLeft = 0;
  let newLeft = 0;
  for (const line of raw) {
    const inHunk = oldLeft > 0 || newLeft > 0;
    const h = inHunk ? null : HUNK.exec(line);
    if (h) {
      oldNo = Number(h[1]);
      newNo = Number(h[3]);
      oldLeft = h[2] === undefined ? 1 : Number(h[2]);
      newLeft = h[4] === undefined ? 1 : Number(h[4]);
      out.lines.push({ kind: "hunk", text: line, oldNo: 0, newNo: 0 });
      continue;
    }
    if (line.startsWith("\\")) {
      out.lines.push({ kind: "note", text: line.slice(1).trim(), oldNo: 0, newNo: 0 });
      continue;
    }
    if (!inHunk) continue; // file headers, or anything a diff tool wrote between files
    const mark = line[0];
    const body = line.slice(1);
    if (mark === "+") {
      out.lines.push({ kind: "add", text: body, oldNo: 0, newNo: newNo++ });
      newLeft--;
      out.added++;
    } else if (mark === "-") {
      out.lines.push({ kind: "del", text: body, oldNo: oldNo++, newNo: 0 });
      oldLeft--;
      out.removed++;
    } else {
      // " " or an empty line (some tools drop the space of an empty context line).
      out.lines.push({ kind: "ctx", text: body, oldNo: oldNo++, newNo: newNo++ });
      oldLeft--;
      newLeft--;
    }
  }
  return out;
}

/**
 * The diff to show for a checkpoint: from its predecessor to it ("the step's changes"), or from it
 * to the workspace now. The first checkpoint has no predecessor; its changes are not a diff.
 */
export function diffSides(cp: { id: string; parentId: string }, mode: "step" | "now"): { from: string; against: string } | null {
  if (mode === "now") return { from: cp.id, against: "" };
  if (!cp.parentId) return null;
  return { from: cp.parentId, against: cp.id };
}
