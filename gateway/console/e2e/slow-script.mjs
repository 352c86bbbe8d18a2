// Writes the offline provider's default script with a pause before Mike's first answer, so a run
// lasts long enough for the journey to cancel it (the plain script finishes a repeat run in well
// under a second). Start agentd with AGENTD_SCRIPT_FILE pointing at the output.
//
//   node e2e/slow-script.mjs /tmp/slow.yaml [delay_ms]
import { readFileSync, writeFileSync } from "node:fs";

const [out, delay = "2500"] = process.argv.slice(2);
if (!out) {
  console.error("usage: node e2e/slow-script.mjs <output.yaml> [delay_ms]");
  process.exit(2);
}
const source = new URL("../../../agentd/internal/llm/scripts/build_web_app.yaml", import.meta.url);
const script = readFileSync(source, "utf8");
const first = /^( {2}mike:\n {4}- text: .*\n)/m;
if (!first.test(script)) throw new Error(`no first turn of mike in ${source.pathname}`);
writeFileSync(out, script.replace(first, `$1      delay_ms: ${Number(delay)}\n`));
