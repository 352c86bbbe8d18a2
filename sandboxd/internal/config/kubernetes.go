package config

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// K8s configures SANDBOXD_DRIVER=kubernetes. Every variable is listed in the README. CPU, memory, the
// user and the runtime (as the pods' runtime class) come from the common SANDBOX_* settings.
type K8s struct {
	// Namespace is the Kubernetes namespace sandbox pods, their workspace claims and secrets live in.
	Namespace string `env:"SANDBOX_K8S_NAMESPACE" envDefault:"mgx-sandboxes"`
	// Kubeconfig is a kubeconfig file; empty means $KUBECONFIG, else the in-cluster service account.
	Kubeconfig string `env:"SANDBOX_K8S_KUBECONFIG"`
	// AgentImage carries the static sandbox-agent at AgentPath (sandboxd's own image does); each pod's
	// init container copies it into the sandbox container.
	AgentImage string `env:"SANDBOX_K8S_AGENT_IMAGE" envDefault:"mgx/sandboxd:latest"`
	AgentPath  string `env:"SANDBOX_K8S_AGENT_PATH" envDefault:"/usr/local/bin/sandbox-agent"`
	AgentPort  int    `env:"SANDBOX_K8S_AGENT_PORT" envDefault:"7070"`
	// AgentRoute is how sandboxd reaches agents: pod-ip (sandboxd on the cluster's pod network) or
	// port-forward (through the API server, for a sandboxd outside the cluster).
	AgentRoute string `env:"SANDBOX_K8S_AGENT_ROUTE" envDefault:"pod-ip"`
	// PullPolicy of the sandbox and agent images: Always, IfNotPresent or Never.
	PullPolicy string `env:"SANDBOX_K8S_PULL_POLICY" envDefault:"IfNotPresent"`
	// StorageClass of workspace claims; empty means the cluster's default class.
	StorageClass string `env:"SANDBOX_K8S_STORAGE_CLASS"`
	// WorkspaceSize is what each workspace's files claim requests (/workspace; reported as the
	// workspace's limit, which the storage class enforces); MetaSize what its meta claim requests (the
	// marker and the checkpoint history, which leaves heavy folders such as node_modules out).
	WorkspaceSize string `env:"SANDBOX_K8S_WORKSPACE_SIZE" envDefault:"10Gi"`
	MetaSize      string `env:"SANDBOX_K8S_META_SIZE" envDefault:"2Gi"`
	// ServiceAccount the sandbox pods run as (its token is never mounted); empty means the namespace's
	// default.
	ServiceAccount string `env:"SANDBOX_K8S_SERVICE_ACCOUNT"`
}

func (k K8s) validate() error {
	if errs := validation.IsDNS1123Label(k.Namespace); len(errs) > 0 {
		return fmt.Errorf("SANDBOX_K8S_NAMESPACE=%q: %w: %v", k.Namespace, ErrK8s, errs)
	}
	if k.AgentImage == "" || k.AgentPath == "" {
		return fmt.Errorf("SANDBOX_K8S_AGENT_IMAGE and SANDBOX_K8S_AGENT_PATH: %w: both are required", ErrK8s)
	}
	if k.AgentPort < 1 || k.AgentPort > 65535 {
		return fmt.Errorf("SANDBOX_K8S_AGENT_PORT=%d: %w: not a port", k.AgentPort, ErrK8s)
	}
	if k.AgentRoute != "pod-ip" && k.AgentRoute != "port-forward" {
		return fmt.Errorf("SANDBOX_K8S_AGENT_ROUTE=%q: %w: want pod-ip or port-forward", k.AgentRoute, ErrK8s)
	}
	switch k.PullPolicy {
	case "Always", "IfNotPresent", "Never":
	default:
		return fmt.Errorf("SANDBOX_K8S_PULL_POLICY=%q: %w: want Always, IfNotPresent or Never", k.PullPolicy, ErrK8s)
	}
	if k.StorageClass != "" {
		if errs := validation.IsDNS1123Subdomain(k.StorageClass); len(errs) > 0 {
			return fmt.Errorf("SANDBOX_K8S_STORAGE_CLASS=%q: %w: %v", k.StorageClass, ErrK8s, errs)
		}
	}
	if _, err := k.Size(); err != nil {
		return err
	}
	if _, err := k.MetaQuantity(); err != nil {
		return err
	}
	if k.ServiceAccount != "" {
		if errs := validation.IsDNS1123Subdomain(k.ServiceAccount); len(errs) > 0 {
			return fmt.Errorf("SANDBOX_K8S_SERVICE_ACCOUNT=%q: %w: %v", k.ServiceAccount, ErrK8s, errs)
		}
	}
	return nil
}

// Size parses SANDBOX_K8S_WORKSPACE_SIZE (a Kubernetes quantity: 10Gi, 500Mi).
func (k K8s) Size() (resource.Quantity, error) {
	q, err := resource.ParseQuantity(k.WorkspaceSize)
	if err != nil || q.Sign() <= 0 {
		return resource.Quantity{}, fmt.Errorf("SANDBOX_K8S_WORKSPACE_SIZE=%q: %w: want a positive quantity such as 10Gi", k.WorkspaceSize, ErrK8s)
	}
	return q, nil
}

// MetaQuantity parses SANDBOX_K8S_META_SIZE.
func (k K8s) MetaQuantity() (resource.Quantity, error) {
	q, err := resource.ParseQuantity(k.MetaSize)
	if err != nil || q.Sign() <= 0 {
		return resource.Quantity{}, fmt.Errorf("SANDBOX_K8S_META_SIZE=%q: %w: want a positive quantity such as 2Gi", k.MetaSize, ErrK8s)
	}
	return q, nil
}
