package app_test

import (
	"maps"
	"testing"

	"github.com/mgx-ai/mgx/pkg/stacktest"
)

// The cross-service tests run the real agentd and sandboxd as processes (built before the tests, see
// stacktest.Main), with a real redis-server, and the gateway under test in this process in front.

// stack is the whole product: Redis, sandboxd (local driver), agentd with
// its scripted offline LLM, and the gateway in front.
type stack struct {
	*gateway
	*stacktest.Stack
}

func startStack(t *testing.T, gatewayEnv map[string]string) *stack {
	t.Helper()
	st := stacktest.StartStack(t, stacktest.Spec{NoGateway: true})
	env := st.GatewayEnv()
	// The limits of the gateway's own tests, not the stack's.
	env["GATEWAY_RATE_LIMIT"] = "100000"
	maps.Copy(env, gatewayEnv)
	return &stack{gateway: startGateway(t, env), Stack: st}
}
