package app_test

import (
	"strings"

	"google.golang.org/grpc"

	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
)

// ExecStream is the stub's streamed exec, which sandbox_shell uses: it records the command like Exec
// and, for a command starting with "block", runs until its caller goes away.
func (s *sandboxStub) ExecStream(r *sandboxdv1.ExecStreamRequest, st grpc.ServerStreamingServer[sandboxdv1.ExecStreamResponse]) error {
	s.mu.Lock()
	s.execs = append(s.execs, r.GetCommand())
	s.mu.Unlock()
	if strings.HasPrefix(r.GetCommand(), "block") {
		<-st.Context().Done()
		s.execStop <- r.GetCommand()
		return st.Context().Err()
	}
	if err := st.Send(&sandboxdv1.ExecStreamResponse{Event: &sandboxdv1.ExecStreamResponse_Stdout{Stdout: []byte("ran: " + r.GetCommand())}}); err != nil {
		return err
	}
	return st.Send(&sandboxdv1.ExecStreamResponse{Event: &sandboxdv1.ExecStreamResponse_Exit{Exit: &sandboxdv1.ExecExit{}}})
}
