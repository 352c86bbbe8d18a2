// Package stacktest is the one way tests and benchmarks start the product: the binaries built once
// before the tests, child processes with their logs, free loopback ports, waiting for health, a real
// redis-server (single node, Sentinel, Cluster, a failover pair), the Docker engine check, services in
// process through the same function their main runs, and the whole stack — sandboxd, agentd replicas
// and the gateway — wired on loopback.
//
// A package whose tests use it calls Main from TestMain:
//
//	func TestMain(m *testing.M) { stacktest.Main(m, stacktest.Binaries("sandboxd", "sandbox-agent")) }
//
// Binaries come from $MGX_BIN_DIR when it is set (`make test` builds bin/ first and sets it), so no
// test spends its time budget in `go build`; otherwise Main builds the package's binaries once, with
// its own time bound, before any test runs.
//
// Whatever a test needs that is not installed (redis-server, a Docker engine) skips the test, unless
// CI is true: in CI nothing may be skipped, so the test fails instead.
package stacktest
