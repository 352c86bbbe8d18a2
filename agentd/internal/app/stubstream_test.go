package app_test

import (
	"context"

	"google.golang.org/grpc"

	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
)

// ExecStream is the stub's streamed exec, which sandbox_shell uses: the stub's Exec, streamed.
func (s *sandboxStub) ExecStream(r *sandboxdv1.ExecStreamRequest, st grpc.ServerStreamingServer[sandboxdv1.ExecStreamResponse]) error {
	return streamExec(s.Exec, r, st)
}

// streamExec answers an ExecStream with what a stub's Exec answers: its stdout and stderr, then the
// exit. A stub that overrides Exec gives itself an ExecStream through this too.
func streamExec(exec func(context.Context, *sandboxdv1.ExecRequest) (*sandboxdv1.ExecResponse, error),
	r *sandboxdv1.ExecStreamRequest, st grpc.ServerStreamingServer[sandboxdv1.ExecStreamResponse]) error {
	res, err := exec(st.Context(), &sandboxdv1.ExecRequest{SessionId: r.GetSessionId(), Command: r.GetCommand(), Cwd: r.GetCwd(),
		Env: r.GetEnv(), Timeout: r.GetTimeout()})
	if err != nil {
		return err
	}
	for _, ev := range []*sandboxdv1.ExecStreamResponse{
		{Event: &sandboxdv1.ExecStreamResponse_Stdout{Stdout: []byte(res.GetStdout())}},
		{Event: &sandboxdv1.ExecStreamResponse_Stderr{Stderr: []byte(res.GetStderr())}},
		{Event: &sandboxdv1.ExecStreamResponse_Exit{Exit: &sandboxdv1.ExecExit{ExitCode: res.GetExitCode(), Truncated: res.GetTruncated()}}},
	} {
		if err := st.Send(ev); err != nil {
			return err
		}
	}
	return nil
}

// ExecStream streams the rich stub's own commands (big steps, polls).
func (s *richStub) ExecStream(r *sandboxdv1.ExecStreamRequest, st grpc.ServerStreamingServer[sandboxdv1.ExecStreamResponse]) error {
	return streamExec(s.Exec, r, st)
}
