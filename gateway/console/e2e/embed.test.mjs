// A preview embedded in a page of another site: the page, its assets and its WebSocket (a dev
// server's HMR socket) must all work inside an <iframe> of any origin, with nothing but the preview
// URL — no cookie, which a browser may block as third-party, and no token exchange. Run by
// `go test ./e2e` in gateway (TestPreviewEmbedsInAnotherOrigin), which starts the stack, a dev
// server in a sandbox (wsecho serving the app's files and echoing on /ws) and the embedding page.
//
// Environment:
//   EMBED_URL    the embedding page (http://localhost:<port>/, another origin than the gateway)
//   PREVIEW_URL  the preview URL the page frames, as GET /api/sandbox/preview/{id} listed it
//   CHROMIUM     the browser (default /usr/bin/chromium)
//   ARTIFACTS    where screenshots go (default e2e/artifacts)
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";

const EMBED = process.env.EMBED_URL;
const PREVIEW = process.env.PREVIEW_URL;
const ARTIFACTS = process.env.ARTIFACTS ?? new URL("./artifacts", import.meta.url).pathname;
const LONG = 30_000;

let browser;
let context;
let page;
let profile;
const problems = [];

before(async () => {
  assert.ok(EMBED && PREVIEW, "EMBED_URL and PREVIEW_URL must be set (go test ./e2e in gateway sets them)");
  mkdirSync(ARTIFACTS, { recursive: true });
  profile = mkdtempSync(join(tmpdir(), "mgx-embed-"));
  // A persistent context on a fresh profile: the user data dir is ours, and nothing of another run
  // (a cookie, a cache entry) can make the preview work by accident.
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1100, height: 800 },
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
  browser = context.browser();
  page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()} (${m.location().url ?? ""})`));
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
});

after(async () => {
  await context?.close();
  await browser?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

test("the embedding page is another origin than the preview", () => {
  const embed = new URL(EMBED);
  const preview = new URL(PREVIEW);
  assert.notEqual(embed.origin, preview.origin);
  assert.match(preview.hostname, /^p\d+-[a-z2-7]+\.preview\./, "a capability in the preview's host name");
  assert.equal(preview.pathname + preview.search, "/", "nothing but the host carries the credential");
});

test("the framed app renders, loads its assets and echoes over its WebSocket", async () => {
  const responses = [];
  page.on("response", (r) => responses.push({ url: r.url(), status: r.status() }));
  await page.goto(EMBED);
  await page.getByRole("heading", { name: "Another site" }).waitFor();
  const frame = page.frameLocator("iframe#preview");

  // The page itself: the app's HTML, not the preview server's 401.
  await frame.locator("h1#title").waitFor({ timeout: LONG });
  assert.equal(await frame.locator("h1#title").innerText(), "Hello from inside the preview");

  // An asset (app.js) ran, on the preview's origin, and a stylesheet applied.
  await frame.locator("#asset[data-ok]").waitFor({ timeout: LONG });
  assert.equal(await frame.locator("#asset").innerText(), `script loaded on ${new URL(PREVIEW).host}`);
  const color = await frame.locator("h1#title").evaluate((el) => getComputedStyle(el).color);
  assert.equal(color, "rgb(1, 2, 3)", "style.css applied");

  // The WebSocket through the preview: what the app sent came back.
  await frame.locator("#ws[data-ok]").waitFor({ timeout: LONG });
  assert.match(await frame.locator("#ws").innerText(), /^echo: ping-[0-9a-z]+ \(2 round trips\)$/);

  const fromPreview = responses.filter((r) => new URL(r.url).origin === new URL(PREVIEW).origin);
  for (const path of ["/", "/app.js", "/style.css"]) {
    const r = fromPreview.find((x) => new URL(x.url).pathname === path);
    assert.ok(r, `${path} was requested from the preview origin`);
    assert.equal(r.status, 200, `${path}: ${r.status}`);
  }
  await page.screenshot({ path: join(ARTIFACTS, "embedded-preview.png") });
});

test("no cookie was involved", async () => {
  assert.deepEqual(await context.cookies(), [], "the preview works without any cookie");
});

test("no console errors", () => {
  assert.deepEqual(problems, []);
});
