// Package e2e holds agentd's end-to-end tests: real sandboxd processes (built from the sibling module),
// real agentd binaries, real Redis, the scripted provider driving the team through a real build, and
// the takeover of a run whose replica is killed with SIGKILL.
package e2e
