package sandbox

import (
	"errors"
	"fmt"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
	"github.com/mgx-ai/mgx/sandboxd/internal/agentclient"
	"github.com/mgx-ai/mgx/sandboxd/internal/instance"
	"github.com/mgx-ai/mgx/sandboxd/internal/store"
)

// Domain errors. The RPC edge (package server) maps each to a gRPC status in
// one funnel; wrap them with detail for the caller.
var (
	// ErrNotFound: no such session for this user (also another user's).
	ErrNotFound = errors.New("sandbox not found")
	// ErrNoUser: a call that needs a user carried none.
	ErrNoUser = errors.New("no user on the call")
	// ErrForbidden: an operator-only variant called by a non-operator.
	ErrForbidden = errors.New("operator role required")
	// ErrInvalidArgument: bad path, cwd escape, bad env, bad port.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrFileNotFound: no such file or process inside the sandbox.
	ErrFileNotFound = errors.New("not found in sandbox")
	// ErrAlreadyExists: a process of that name is running.
	ErrAlreadyExists = errors.New("already exists")
	// ErrFailedPrecondition: a file operation on the wrong kind of file,
	// or a file over the read limit.
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrPermissionDenied: the sandbox's file system refuses access to a
	// path, or the agent does (a hard link shared with a file outside the
	// sandbox).
	ErrPermissionDenied = errors.New("permission denied")
	// ErrExecTimeout: the command hit its timeout and was killed.
	ErrExecTimeout = errors.New("command timed out and was killed")
	// ErrUnavailable: the sandbox could not be created or reached.
	ErrUnavailable = errors.New("sandbox unavailable")
	// ErrNoPort: nothing listens on the previewed port.
	ErrNoPort = errors.New("nothing listening on that port")
	// ErrWorkspaceLost: the session's workspace is missing or not the session's; it was not
	// replaced. Always a *WorkspaceLostError.
	ErrWorkspaceLost = errors.New("workspace lost")
	// ErrCheckpointNotFound: no such checkpoint in the session's workspace.
	ErrCheckpointNotFound = errors.New("checkpoint not found")
)

// WorkspaceLostError says that a session's workspace cannot be used, and why. Its text is for the
// session's owner: it names no host path or volume.
type WorkspaceLostError struct {
	SessionID string
	// State is WorkspaceMissing or WorkspaceForeign.
	State string
	// WorkspaceID names the workspace (for logs and operators).
	WorkspaceID string
}

func (e *WorkspaceLostError) Error() string {
	if e.State == WorkspaceForeign {
		return "this session's workspace is not available: the storage found under its name is not this session's, " +
			"so it was left untouched and not used; reset the workspace to continue with a fresh one"
	}
	return "this session's workspace is missing: its storage was removed outside the product; nothing was put in its " +
		"place; reset the workspace to continue with an empty one (its checkpoints are kept if they survived)"
}

// Unwrap makes errors.Is(err, ErrWorkspaceLost) hold.
func (e *WorkspaceLostError) Unwrap() error { return ErrWorkspaceLost }

func lostError(sessionID, storeState, workspaceID string) error {
	state := WorkspaceMissing
	if storeState == store.WorkspaceForeign {
		state = WorkspaceForeign
	}
	return &WorkspaceLostError{SessionID: sessionID, State: state, WorkspaceID: workspaceID}
}

// agentError turns an agent client error into a domain error.
func agentError(err error) error {
	var ae *agentclient.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case agentapi.CodeInvalid, agentapi.CodeEscape:
			return fmt.Errorf("%w: %s", ErrInvalidArgument, ae.Msg)
		case agentapi.CodeNotFound:
			return fmt.Errorf("%w: %s", ErrFileNotFound, ae.Msg)
		case agentapi.CodeExists:
			return fmt.Errorf("%w: %s", ErrAlreadyExists, ae.Msg)
		case agentapi.CodeIsDir, agentapi.CodeTooLarge, agentapi.CodeFailed:
			return fmt.Errorf("%w: %s", ErrFailedPrecondition, ae.Msg)
		case agentapi.CodeDenied:
			return fmt.Errorf("%w: %s", ErrPermissionDenied, ae.Msg)
		case agentapi.CodeNoPort:
			return fmt.Errorf("%w: %s", ErrNoPort, ae.Msg)
		case agentapi.CodeNoCheckpoint:
			return fmt.Errorf("%w: %s", ErrCheckpointNotFound, ae.Msg)
		}
		return fmt.Errorf("sandbox agent: %s: %s", ae.Code, ae.Msg)
	}
	return unavailable(err)
}

// unavailable turns a failure to create or reach an instance into ErrUnavailable, keeping the cause
// for the log (the RPC edge never shows it).
func unavailable(err error) error {
	if errors.Is(err, agentclient.ErrUnavailable) || errors.Is(err, instance.ErrUnavailable) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}
