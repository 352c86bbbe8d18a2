package sandbox

import (
	"context"
	"errors"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentclient"
	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
	"github.com/mgx-ai/mgx/sandboxd/internal/store"
)

// agentRef is how sandboxd reaches an instance's agent: a unix socket on this host (Docker, local), or
// a network endpoint behind the per-sandbox secret the driver keeps (Kubernetes pods).
type agentRef struct {
	socket, endpoint string
	instanceID, name string
	pid              int
}

func refOf(in driver.Instance) agentRef {
	return agentRef{socket: in.Socket, endpoint: in.Endpoint, instanceID: in.ID, name: in.Name, pid: in.PID}
}

func recordRef(r store.Record) agentRef {
	return agentRef{socket: r.Socket, endpoint: r.Endpoint, instanceID: r.InstanceID, name: r.InstanceName, pid: r.AgentPID}
}

func (r agentRef) key() string {
	if r.endpoint != "" {
		return "tcp://" + r.endpoint
	}
	return r.socket
}

var errNoAgentSecrets = errors.New("the driver reports a network endpoint but keeps no agent secrets")

func (m *Manager) newClient(r agentRef) *agentclient.Client {
	if r.endpoint == "" {
		return agentclient.New(r.socket, r.pid)
	}
	inst := driver.Instance{ID: r.instanceID, Name: r.name}
	return agentclient.NewNetwork(r.endpoint, func(ctx context.Context) ([]byte, error) {
		s, ok := m.drv.(driver.AgentSecrets)
		if !ok {
			return nil, errNoAgentSecrets
		}
		return s.AgentSecret(ctx, inst)
	})
}
