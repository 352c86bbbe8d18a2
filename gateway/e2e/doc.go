// Package e2e holds the gateway's browser tests: Debian's chromium, driven by playwright-core
// through the console's node scripts (gateway/console/e2e), against the whole product started by
// the harness (pkg/stacktest) with the offline scripted provider — the console's journey, and a
// preview embedded in a page of another origin. The scripts need `make build` (bin/console) and the
// console's npm packages (`make console-test` installs them); under CI=true nothing is skipped.
package e2e
