package sandbox

import (
	"time"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
	"github.com/mgx-ai/mgx/sandboxd/internal/store"
)

// Sandbox is a session's sandbox as callers see it.
type Sandbox struct {
	SessionID string
	OwnerID   string
	// InstanceID and InstanceName are the container's (or local agent's) id and name.
	InstanceID   string
	InstanceName string
	// Workspace is the workspace path shown to the user.
	Workspace string
	Driver    string
	// State is "creating", "running" or "stopping".
	State      string
	Created    time.Time
	LastActive time.Time
}

// StateStopping is the state of a sandbox being destroyed.
const StateStopping = "stopping"

func toSandbox(r store.Record) Sandbox {
	sb := Sandbox{SessionID: r.SessionID, OwnerID: r.OwnerID, InstanceID: r.InstanceID, InstanceName: r.InstanceName,
		Workspace: r.Workspace, Driver: r.Driver, State: r.State, Created: r.Created, LastActive: r.LastActive}
	if r.State == store.StateReaping {
		sb.State = StateStopping
	}
	return sb
}

// What the agent reports about a sandbox's processes, ports and files is the domain's own answer:
// one type per concept on the way to the wire (the agent's contract is sandboxd's own package), so
// these are the contract's types under the domain's names rather than twins converted field by
// field. Callers of the domain never import the contract.
type (
	// Process is a named background process.
	Process = agentapi.Process
	// Port is a TCP port listening inside the sandbox.
	Port = agentapi.Port
	// Tree is a listing of the workspace; TreeEntry one node of it.
	Tree      = agentapi.Tree
	TreeEntry = agentapi.TreeEntry
	// File is a file read from the workspace.
	File = agentapi.File
	// WriteResult and DeleteResult answer a write and a delete.
	WriteResult  = agentapi.WriteFileResult
	DeleteResult = agentapi.DeleteFileResult
	// Changes is what changed in the workspace after a cursor; Change one path of it.
	Changes = agentapi.Changes
	Change  = agentapi.Change
	// SearchResult is a content search's answer; SearchMatch one line of it.
	SearchResult = agentapi.SearchResult
	SearchMatch  = agentapi.SearchMatch
)

// Process states.
const (
	ProcessRunning = agentapi.StateRunning
	ProcessExited  = agentapi.StateExited
)
