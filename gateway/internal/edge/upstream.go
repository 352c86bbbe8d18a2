package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/mgx-ai/mgx/gateway/internal/auth"
	"github.com/mgx-ai/mgx/pkg/authn"
	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
)

// MDUserRole carries the caller's role upstream; sandboxd's all-users
// variants require "operator".
const MDUserRole = "x-mgx-user-role"

// identify puts the request's identity on an outgoing call: the user id
// (authn.WithUser replaces any), the role, and for the in-process auth
// service the client address and how the caller authenticated. It runs
// inside grpc-gateway's handler, after runtime.AnnotateContext replaced the
// outgoing metadata, which is why this cannot be done on the request context
// in HTTP middleware.
func identify(ctx context.Context, self bool) context.Context {
	p, ok := auth.FromContext(ctx)
	if ok {
		ctx = authn.WithUser(ctx, p.UserID)
		md, _ := metadata.FromOutgoingContext(ctx)
		md = md.Copy()
		md.Delete(MDUserRole)
		if p.Role != "" {
			md.Set(MDUserRole, p.Role)
		}
		ctx = metadata.NewOutgoingContext(ctx, md)
	}
	if !self {
		return ctx
	}
	if ip := auth.ClientIPFromContext(ctx); ip != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, auth.MDClientIP, ip)
	}
	if ok {
		ctx = auth.WithCredential(ctx, p)
	}
	return ctx
}

// Deadlines bounds unary upstream calls that carry no deadline of their own. The gateway knows no
// method's semantics: a call that legitimately runs long (creating a sandbox, a command) is listed
// by its full method name with its ceiling from the configuration, and the service enforces its own
// tighter bound (an exec's timeout is sandboxd's to default and cap; it answers 408 first).
type Deadlines struct {
	// Default applies to every unary call not listed in Methods.
	Default time.Duration
	// Methods maps a full method name to its deadline.
	Methods map[string]time.Duration
}

func (d Deadlines) forMethod(method string) time.Duration {
	if t, ok := d.Methods[method]; ok {
		return t
	}
	return d.Default
}

// StreamSlots bounds the streams a user keeps open (see stream.Slots).
type StreamSlots interface {
	// Acquire takes one of the user's stream slots until release is called or ctx ends; when every
	// slot is taken it fails with the error to answer.
	Acquire(ctx context.Context, userID string) (release func(), err error)
}

// Upstream configures the client side of a connection the gateway forwards to.
type Upstream struct {
	Deadlines Deadlines
	// Self marks the connection to the gateway's own in-process services, which also get the
	// client's address (login throttling) and how the caller authenticated (logout revokes the
	// access token; API keys are managed from a session only).
	Self bool
	// Streams counts the long-lived streams opened through the connection (streamed commands,
	// followed process logs) against the user's stream slots; nil counts none.
	Streams StreamSlots
}

// UpstreamInterceptors returns the client interceptors of a connection the
// gateway forwards to. Streams get identity and, when long-lived, a stream
// slot; no deadline: a stream lives as long as its client.
func UpstreamInterceptors(u Upstream) []grpc.DialOption {
	d := u.Deadlines
	unary := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		ctx = identify(ctx, u.Self)
		if _, has := ctx.Deadline(); !has {
			if t := d.forMethod(method); t > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, t)
				defer cancel()
			}
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	stream := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		ctx = identify(ctx, u.Self)
		serverStream := desc.ServerStreams && !desc.ClientStreams
		var counted *countedStream
		if u.Streams != nil && serverStream {
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			counted = &countedStream{slots: u.Streams, ctx: ctx, cancel: cancel}
		}
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if counted != nil {
			if err != nil {
				counted.cancel()
				return cs, err
			}
			counted.ClientStream = cs
			cs = counted
		}
		if err != nil || !serverStream {
			return cs, err
		}
		if out, ok := outputType(method); ok {
			return &peekStream{ClientStream: cs, out: out}, nil
		}
		return cs, nil
	}
	return []grpc.DialOption{grpc.WithChainUnaryInterceptor(unary), grpc.WithChainStreamInterceptor(stream)}
}

// countedStream holds one of the user's stream slots while a long-lived stream is open: a streamed
// command, or a process log followed to its end. Which one it is shows only in the request, so the
// slot is taken when the request is sent; a refusal cancels the stream and is the call's error,
// which the error funnel answers (429 TOO_MANY_STREAMS with Retry-After).
type countedStream struct {
	grpc.ClientStream
	slots   StreamSlots
	ctx     context.Context
	cancel  context.CancelFunc
	release func()
}

// longLived reports whether a request opens a stream that lasts as long as its client wants.
func longLived(req any) bool {
	switch r := req.(type) {
	case *sandboxdv1.ExecStreamRequest:
		return true
	case *sandboxdv1.GetProcessLogsRequest:
		return r.GetFollow()
	}
	return false
}

func (s *countedStream) SendMsg(m any) error {
	if s.release == nil && longLived(m) {
		p, ok := auth.FromContext(s.ctx)
		if ok {
			release, err := s.slots.Acquire(s.ctx, p.UserID)
			if err != nil {
				s.cancel()
				return err
			}
			s.release = release
			// The slot also goes when the client does (grpc-gateway's handler returns and the
			// request's context ends), not only when the stream ends.
			context.AfterFunc(s.ctx, release)
		}
	}
	return s.ClientStream.SendMsg(m)
}

func (s *countedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil {
		// The stream is over (io.EOF included): its slot and context go with it.
		s.cancel()
		if s.release != nil {
			s.release()
		}
	}
	return err
}

// peekStream makes a server stream's Header wait for the stream's first message. grpc-go's Header
// reports no error for a stream that fails before sending anything (the error comes with the first
// Recv), so grpc-gateway would answer such a failure with its own status table and body. With the
// first message (or the error) in hand before Header returns, a stream that fails before any output
// — an exec that times out silently, the logs of an unknown process — is answered by the error
// funnel like a unary call: the reason's status (408 for EXEC_TIMEOUT) and the one error body.
// Nothing else changes: grpc-gateway writes no byte before the first message anyway. (The event
// stream bridges call Recv directly and never Header, so they are untouched.)
type peekStream struct {
	grpc.ClientStream
	out    protoreflect.MessageType
	peeked proto.Message
	once   bool
}

func (s *peekStream) Header() (metadata.MD, error) {
	if !s.once {
		s.once = true
		m := s.out.New().Interface()
		switch err := s.ClientStream.RecvMsg(m); {
		case err == nil:
			s.peeked = m
		case !errors.Is(err, io.EOF):
			return nil, err
		}
	}
	return s.ClientStream.Header()
}

func (s *peekStream) RecvMsg(m any) error {
	if s.peeked != nil {
		dst, ok := m.(proto.Message)
		if !ok {
			return fmt.Errorf("edge: stream message %T is not a proto message", m)
		}
		proto.Reset(dst)
		proto.Merge(dst, s.peeked)
		s.peeked = nil
		return nil
	}
	return s.ClientStream.RecvMsg(m)
}

// outputType is the response message type of a full method name ("/pkg.Service/Method"), from the
// registry the generated code fills.
func outputType(method string) (protoreflect.MessageType, bool) {
	svc, name, ok := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	if !ok {
		return nil, false
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil, false
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, false
	}
	md := sd.Methods().ByName(protoreflect.Name(name))
	if md == nil {
		return nil, false
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	return mt, err == nil
}
