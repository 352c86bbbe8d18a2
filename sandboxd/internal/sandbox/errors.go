package sandbox

import (
	"errors"
	"fmt"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
	"github.com/mgx-ai/mgx/sandboxd/internal/agentclient"
	"github.com/mgx-ai/mgx/sandboxd/internal/instance"
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
)

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
