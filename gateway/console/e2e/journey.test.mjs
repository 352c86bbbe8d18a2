// The console's full journey in a real browser against a running MGX stack with the offline
// scripted provider: register, start a session, watch Mike and Alex work live, the plan, files, a
// command's output, the preview rendering inside the console's frame (and a new link for it), the
// screenshot artifact, reload and find everything again, survive a dropped event stream without
// missing or duplicating anything, cancel a run, sign out. `go test ./e2e` in gateway starts the
// stack and runs it (TestConsoleJourney).
//
//   MGX_URL=http://localhost:8000 node --test e2e/
//
// Environment:
//   MGX_URL          the console's address (the gateway serving it); required
//   CHROMIUM         the browser (default /usr/bin/chromium; a test tool's own download is not used)
//   ARTIFACTS        where screenshots go (default e2e/artifacts)
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";

const BASE = process.env.MGX_URL;
const ARTIFACTS = process.env.ARTIFACTS ?? new URL("./artifacts", import.meta.url).pathname;
const LONG = 90_000;

let browser;
let context;
let page;
let profile;
const problems = [];
let shot = 0;
/** A preview URL the journey revoked itself (its 401 is expected). */
let revoked = "";
/** The id of the session the journey deleted. */
let deleted = "";

async function snap(name) {
  shot++;
  const file = join(ARTIFACTS, `${String(shot).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

/** Every chat line's key, in order; keys are unique per line, so a duplicate event shows here. */
async function chatKeys() {
  return page.locator(".chat [data-key]").evaluateAll((els) => els.map((e) => e.getAttribute("data-key")));
}

function assertUnique(keys, when) {
  const seen = new Set();
  for (const k of keys) {
    assert.ok(!seen.has(k), `duplicate chat line ${k} ${when}`);
    seen.add(k);
  }
}

async function waitRun(status) {
  await page.locator(`.chat-head [data-run-status="${status}"]`).waitFor({ timeout: LONG });
}

before(async () => {
  assert.ok(BASE, "MGX_URL must point at a running MGX (the console at /)");
  mkdirSync(ARTIFACTS, { recursive: true });
  profile = mkdtempSync(join(tmpdir(), "mgx-journey-"));
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-quic",
      "--no-first-run",
    ],
  });
  context = await browser.newContext({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 });
  page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    const where = m.location().url ?? "";
    // The revoked link's 401, which the rotation step asks for on purpose.
    if (revoked && where.startsWith(revoked)) return;
    // A request about the deleted session already under way when it was deleted may find it gone.
    if (deleted && where.includes(deleted) && /status of 404/.test(m.text())) return;
    problems.push(`console: ${m.text()} (${where})`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  // The console's CSP must never get in its own way.
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
});

after(async () => {
  await browser?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

const email = `journey-${Date.now()}@example.com`;
const password = "journey-password-1";
let sessionUrl = "";

test("sign-in page offers the demo account", async () => {
  await page.goto(BASE);
  await page.getByRole("heading", { name: "MGX" }).waitFor();
  const hint = await page.locator(".demo-hint").innerText();
  assert.match(hint, /demo@mgx\.dev/);
  assert.match(hint, /mgx-demo/);
  await snap("sign-in");
});

test("register", async () => {
  await page.getByRole("tab", { name: "Create account" }).click();
  await page.getByLabel("Name").fill("Journey");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.locator("form").getByRole("button", { name: "Create account" }).click();
  await page.getByRole("heading", { name: "What should the team build?" }).waitFor();
  assert.equal(await page.locator(".account-email").innerText(), email);
  await snap("home");
});

test("start a session: Mike and Alex work live", async () => {
  const box = page.getByLabel("Describe what to build");
  await box.fill("Build a small hello page and show me the preview");
  await box.press("Enter");
  await page.waitForURL(/\/s\/[^/]+$/, { timeout: LONG });
  sessionUrl = page.url();
  await page.locator('.chat-head [data-stream="live"]').waitFor({ timeout: LONG });
  // The sidebar lists the new session, titled after the request.
  await page.locator(".session-row.current .session-title", { hasText: "Build a small hello page" }).waitFor();

  await page.locator('.msg.agent[data-agent="Mike"]').first().waitFor({ timeout: LONG });
  await page.locator('.msg.agent[data-agent="Alex"]').first().waitFor({ timeout: LONG });
  await page.locator('.tool-wrap[data-tool="file_write"]').first().waitFor({ timeout: LONG });
  await snap("working");
});

test("plan with task states", async () => {
  await page.getByRole("tab", { name: /Plan/ }).click();
  const task = page.locator('.task[data-task="build"]');
  await task.waitFor({ timeout: LONG });
  assert.match(await task.innerText(), /Build or update the app/);
  await waitRun("completed");
  await page.locator('.task[data-task="build"][data-status="done"]').waitFor({ timeout: LONG });
  await snap("plan");
});

test("files appear and open", async () => {
  await page.getByRole("tab", { name: /Files/ }).click();
  await page.locator('.tree-row[data-path="index.html"]').click({ timeout: LONG });
  const content = page.getByTestId("file-content");
  await content.waitFor({ timeout: LONG });
  assert.match(await content.innerText(), /Hello from the MGX team/);
  await page.locator('.tree-row[data-path="server.js"]').waitFor();
  await page.locator('.tree-row[data-path="start.sh"]').waitFor();
  await snap("files");
});

test("a path in the chat opens the file", async () => {
  await page.getByRole("tab", { name: /Plan/ }).click();
  await page.locator(".path-chip", { hasText: "start.sh" }).first().click();
  await page.locator('.tree-row.selected[data-path="start.sh"]').waitFor();
  assert.match(await page.getByTestId("file-content").innerText(), /busybox httpd/);
});

test("a command's output under its call", async () => {
  const call = page.locator('.tool-wrap[data-tool="sandbox_shell"]').first();
  await call.locator("summary").click();
  const out = call.locator(".tool-body pre.code").last();
  assert.match(await out.innerText(), /exit code: 0[\s\S]*Hello from the MGX team/);
  await call.locator("summary").click();
});

test("background process and its log", async () => {
  await page.getByRole("tab", { name: /Processes/ }).click();
  await page.locator(".proc-row", { hasText: "web" }).waitFor({ timeout: LONG });
  await snap("processes");
});

test("preview in the frame", async () => {
  await page.getByRole("tab", { name: /Preview/ }).click();
  const url = page.getByLabel("Preview URL");
  await url.waitFor({ timeout: LONG });
  const value = await url.inputValue();
  assert.match(value, /^https?:\/\/p\d+-[^.]+\.preview\./, "a host-based preview URL");
  const open = page.getByRole("link", { name: "Open in a new tab" });
  assert.equal(await open.getAttribute("href"), value);
  assert.equal(await open.getAttribute("target"), "_blank");

  // The app's HTML inside the console's frame (another origin: the capability in its host is the
  // whole credential, no cookie), not the preview server's 401.
  const frame = page.frameLocator("iframe.preview-frame");
  await frame.getByRole("heading", { name: "Hello from the MGX team" }).waitFor({ timeout: LONG });
  await snap("preview");
});

test("a new preview link: the old one stops working, the frame follows", async () => {
  const url = page.getByLabel("Preview URL");
  const old = await url.inputValue();
  revoked = new URL(old).origin;
  await page.getByRole("button", { name: "Make a new preview link" }).click();
  await page.waitForFunction(
    (before) => document.querySelector('input[aria-label="Preview URL"]')?.value !== before,
    old,
    { timeout: LONG },
  );
  const fresh = await url.inputValue();
  assert.match(fresh, /^https?:\/\/p\d+-[^.]+\.preview\./);
  assert.equal(await page.locator("iframe.preview-frame").getAttribute("src"), fresh);
  await page.frameLocator("iframe.preview-frame").getByRole("heading", { name: "Hello from the MGX team" }).waitFor({ timeout: LONG });
  // Opened top-level in a tab of their own (chromium resolves *.localhost; node would not): the new
  // link opens the app, the old one nothing.
  const tab = await context.newPage();
  try {
    assert.equal((await tab.goto(fresh)).status(), 200);
    assert.equal((await tab.goto(old)).status(), 401);
  } finally {
    await tab.close();
  }
});

test("the screenshot the team took is an artifact", async () => {
  // In the chat, after the call that took it.
  const line = page.locator(".note.artifact").first();
  await line.waitFor({ timeout: LONG });
  await line.locator("img").waitFor({ timeout: LONG });
  await line.locator("button.link-btn", { hasText: /\.png$/ }).click();
  // The panel shows it large, fetched with the bearer header into a blob: URL.
  const view = page.getByTestId("artifact-view");
  await view.waitFor({ timeout: LONG });
  const img = view.locator(".artifact-stage img");
  await img.waitFor({ timeout: LONG });
  assert.match(await img.getAttribute("src"), /^blob:/);
  const size = await img.evaluate(async (el) => {
    await el.decode();
    return [el.naturalWidth, el.naturalHeight];
  });
  assert.deepEqual(size, [1280, 800], "the preview's screenshot at the browser's viewport");
  await snap("artifact");
});

test("each step that changed files is a checkpoint, with its diff", async () => {
  await page.getByRole("tab", { name: /Checkpoints/ }).click();
  const rows = page.locator(".cp-row");
  await rows.first().waitFor({ timeout: LONG });
  // The team wrote its files over more than one step: a checkpoint with a predecessor has a diff
  // of its own. Events may still be landing on a loaded machine, so wait for it rather than count.
  const stepped = page.locator('.cp-row:not([data-parent=""])').first();
  await stepped.waitFor({ timeout: LONG });
  const id = await stepped.getAttribute("data-checkpoint");
  await stepped.click();
  // This checkpoint's own diff (not the one shown before the click), once it has loaded.
  const diff = page.locator(`[data-testid="checkpoint-diff"][data-checkpoint="${id}"][data-mode="step"]`);
  await diff.locator(".cp-file, .list-note.error").first().waitFor({ timeout: LONG });
  assert.equal(await diff.locator(".list-note.error").count(), 0, await diff.innerText());
  const file = diff.locator(".cp-file").first();
  await file.waitFor({ timeout: LONG });
  assert.ok((await file.getAttribute("data-path"))?.length, "a changed file's path");
  await file.locator("tr.diff-add, tr.diff-del").first().waitFor({ timeout: LONG });
  await snap("checkpoint-diff");
});

test("reload finds everything again", async () => {
  const before = await chatKeys();
  assertUnique(before, "before reload");
  await page.reload();
  await page.locator('.chat-head [data-stream="live"]').waitFor({ timeout: LONG });
  await page.locator('.msg.agent[data-agent="Mike"]').first().waitFor();
  await page.locator('.chat-head [data-run-status="completed"]').waitFor({ timeout: LONG });
  // The replay is complete once the last line is back.
  await page.locator(`.chat [data-key="${before[before.length - 1]}"]`).waitFor({ timeout: LONG });
  const afterReload = await chatKeys();
  assert.deepEqual(afterReload, before, "the same lines in the same order after a reload");
  await page.getByRole("tab", { name: /Plan/ }).click();
  await page.locator('.task[data-task="build"][data-status="done"]').waitFor();
  await snap("reloaded");
});

test("a dropped stream resumes after the last sequence: nothing missed, nothing twice", async () => {
  // Drop the event stream a little while into the next run, once: counting starts when the message
  // is sent, and the message waits for the replay that follows the reload to be complete, so the
  // drop falls in the run (the next test drops it in the replay).
  const replayed = await chatKeys();
  let dropped = false;
  let armed = false;
  await page.routeWebSocket(/\/api\/ws\/sessions\//, (ws) => {
    const server = ws.connectToServer();
    if (dropped) return;
    let seen = 0;
    server.onMessage((m) => {
      ws.send(m);
      if (armed && !dropped && ++seen === 8) {
        dropped = true;
        ws.close({ code: 1011, reason: "journey drops the stream" });
      }
    });
  });
  await page.reload();
  await page.locator('.chat-head [data-stream="live"]').waitFor({ timeout: LONG });
  await page.locator('.chat-head [data-run-status="completed"]').waitFor({ timeout: LONG });
  // The run's status comes from GET /run too, possibly before the replay is through: the last line
  // says it is.
  await page.locator(`.chat [data-key="${replayed[replayed.length - 1]}"]`).waitFor({ timeout: LONG });
  const beforeRun = (await chatKeys()).length;

  const box = page.getByLabel("Message the team");
  await box.fill("Now make the heading say hello again");
  armed = true;
  await box.press("Enter");
  await page.locator('.chat-head [data-run-status="running"], .chat-head [data-run-status="queued"]').first().waitFor({ timeout: LONG });
  await waitRun("completed");
  assert.ok(dropped, "the stream was dropped during the run");
  const live = await chatKeys();
  assertUnique(live, "after a reconnect");
  assert.ok(live.length > beforeRun, "the second run's lines arrived");

  await page.unrouteAll({ behavior: "ignoreErrors" });
  await page.reload();
  await page.locator(`.chat [data-key="${live[live.length - 1]}"]`).waitFor({ timeout: LONG });
  assert.deepEqual(await chatKeys(), live, "what arrived live across the drop equals a full replay");
});

test("a message sent while a reload's replay is under way, and the stream dropped in that replay: the same as a full replay", async () => {
  // The replay after the reload is forwarded slowly, so the message goes out while it is under way;
  // once it has, the stream is dropped in the middle of the replay, and the reconnect resumes the
  // rest at full speed.
  const before = await chatKeys();
  let sent = false;
  let dropped = false;
  await page.routeWebSocket(/\/api\/ws\/sessions\//, (ws) => {
    const server = ws.connectToServer();
    if (dropped) return;
    const queue = [];
    let seen = 0;
    const timer = setInterval(() => {
      const m = queue.shift();
      if (m === undefined) return;
      ws.send(m);
      if (++seen >= 40 && sent) {
        dropped = true;
        clearInterval(timer);
        ws.close({ code: 1011, reason: "journey drops the stream mid-replay" });
      }
    }, 25);
    server.onMessage((m) => queue.push(m));
  });
  await page.reload();
  await page.locator('.chat-head [data-stream="live"]').waitFor({ timeout: LONG });
  await page.locator(".chat [data-key]").first().waitFor({ timeout: LONG });
  const box = page.getByLabel("Message the team");
  await box.fill("And a subtitle under the heading");
  await box.press("Enter");
  await page.locator(".msg.user", { hasText: "And a subtitle under the heading" }).waitFor({ timeout: LONG });
  sent = true;
  assert.ok((await chatKeys()).length <= before.length, "the message went out before the replay caught up");
  await waitRun("completed");
  assert.ok(dropped, "the stream was dropped during the replay");
  const live = await chatKeys();
  assertUnique(live, "after a drop mid-replay");
  assert.deepEqual(live.slice(0, before.length), before, "the replayed lines first, in their order");
  assert.ok(live.length > before.length + 1, "the new run's lines arrived");
  await page.unrouteAll({ behavior: "ignoreErrors" });
  await page.reload();
  await page.locator(`.chat [data-key="${live[live.length - 1]}"]`).waitFor({ timeout: LONG });
  assert.deepEqual(await chatKeys(), live, "what arrived across the drop equals a full replay");
});

test("a message during a run steers it instead of queueing another", async () => {
  const box = page.getByLabel("Message the team");
  await box.fill("Build it one more time");
  await box.press("Enter");
  await page.locator('.chat-head [data-run-status="running"]').waitFor({ timeout: LONG });
  // The box stays open while the team works; what is sent goes to the run under way.
  assert.equal(await box.getAttribute("placeholder"), "Add to what the team is working on…");
  await box.fill("Also add a footer, please");
  await box.press("Enter");
  await page.locator(".msg.user", { hasText: "Also add a footer, please" }).waitFor({ timeout: LONG });
  await waitRun("completed");
  // No second run follows: the message was read by the one that just finished.
  await page.waitForTimeout(2000);
  assert.equal(await page.locator('.chat-head [data-run-status="completed"]').count(), 1, "no run was queued for the steering message");
  await snap("steered");
});

test("cancel a run", async () => {
  const box = page.getByLabel("Message the team");
  await box.fill("Build it once more");
  await box.press("Enter");
  const cancel = page.getByRole("button", { name: "Cancel run" });
  await cancel.click({ timeout: 10_000 }).catch((err) => {
    throw new Error(`${err.message}\nThe run may have ended before it could be cancelled: start agentd with AGENTD_SCRIPT_FILE from e2e/slow-script.mjs.`);
  });
  await waitRun("cancelled");
  await page.locator(".note.status", { hasText: "Run cancelled." }).waitFor({ timeout: LONG });
  assert.equal(await cancel.count(), 0, "no cancel button once the run ended");
  await snap("cancelled");
});

test("restore the first checkpoint: the workspace is as it left it", async () => {
  await page.getByRole("tab", { name: /Checkpoints/ }).click();
  const oldest = page.locator(".cp-row").last();
  await oldest.waitFor({ timeout: LONG });
  const id = await oldest.getAttribute("data-checkpoint");
  await oldest.click();
  await page.getByTestId("checkpoint-restore").click();
  await page.getByTestId("checkpoint-restore-confirm").click();
  await page.locator(".toast", { hasText: /^Restored/ }).waitFor({ timeout: LONG });
  await page.getByRole("radio", { name: /vs now/ }).click();
  const diff = page.locator(`[data-testid="checkpoint-diff"][data-checkpoint="${id}"][data-mode="now"][aria-busy="false"]`);
  await diff.locator(".list-note", { hasText: "The workspace is as this checkpoint left it." }).waitFor({ timeout: LONG });
  await snap("checkpoint-restored");
});

test("delete a session", async () => {
  await page.getByRole("link", { name: "New session" }).click();
  const box = page.getByLabel("Describe what to build");
  await box.fill("A session to throw away");
  await box.press("Enter");
  await page.waitForURL((u) => u.href !== sessionUrl && /\/s\/[^/]+$/.test(u.pathname), { timeout: LONG });
  deleted = new URL(page.url()).pathname.split("/").pop();
  const row = page.locator(".session-row", { hasText: "A session to throw away" });
  await row.hover();
  await row.getByRole("button", { name: /Delete/ }).click();
  await row.getByRole("button", { name: "Delete", exact: true }).click();
  await page.getByRole("heading", { name: "What should the team build?" }).waitFor({ timeout: LONG });
  await row.waitFor({ state: "detached" });
  assert.equal(await page.locator(".session-row").count(), 1, "the first session stays");
  await page.goto(sessionUrl);
});

test("sign out", async () => {
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("tab", { name: "Sign in" }).waitFor();
  await page.goto(sessionUrl);
  await page.getByRole("tab", { name: "Sign in" }).waitFor();
  await snap("signed-out");
  // Signing in again lands on the same session, from the URL.
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.locator("form").getByRole("button", { name: "Sign in" }).click();
  await page.locator('.msg.agent[data-agent="Mike"]').first().waitFor({ timeout: LONG });
});

test("no console errors or CSP violations", () => {
  assert.deepEqual(problems, []);
});
