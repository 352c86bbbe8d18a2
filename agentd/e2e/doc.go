// Package e2e holds agentd's end-to-end tests: real sandboxd and agentd processes started by the
// harness (pkg/stacktest), real Redis, the scripted provider driving the team through a real build
// in a real sandbox, and cancellation reaching the sandbox. (Replica takeover is proved once, with
// three replicas behind the gateway: deploy/local/internal/stack/scaleout_test.go.)
package e2e
