// Package testservice is a tiny gRPC service for testing the server and
// client factories over a real connection without code generation: its
// messages are built at init from a descriptor (dynamicpb), including a
// protovalidate rule, so the validation interceptor can be exercised too.
package testservice

import (
	"context"
	"fmt"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/mgx-ai/mgx/pkg/authn"
	"github.com/mgx-ai/mgx/pkg/requestid"
)

// Method names.
const (
	ServiceName      = "mgx.test.v1.EchoService"
	EchoMethod       = "/" + ServiceName + "/Echo"
	EchoStreamMethod = "/" + ServiceName + "/EchoStream"
)

// MaxTextLen is the validation bound on EchoRequest.text (min is 1).
const MaxTextLen = 100

var reqDesc, respDesc protoreflect.MessageDescriptor

func init() {
	textRules := &descriptorpb.FieldOptions{}
	proto.SetExtension(textRules, validate.E_Field, &validate.FieldRules{
		Type: &validate.FieldRules_String_{String_: &validate.StringRules{
			MinLen: proto.Uint64(1),
			MaxLen: proto.Uint64(MaxTextLen),
		}},
	})
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
	boolean := descriptorpb.FieldDescriptorProto_TYPE_BOOL.Enum()
	optional := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	field := func(name string, num int32, typ *descriptorpb.FieldDescriptorProto_Type, opts *descriptorpb.FieldOptions) *descriptorpb.FieldDescriptorProto {
		return &descriptorpb.FieldDescriptorProto{
			Name: proto.String(name), JsonName: proto.String(name), Number: proto.Int32(num),
			Type: typ, Label: optional, Options: opts,
		}
	}
	fdp := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("mgx/test/v1/echo.proto"),
		Package: proto.String("mgx.test.v1"),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{
			{
				Name: proto.String("EchoRequest"),
				Field: []*descriptorpb.FieldDescriptorProto{
					field("text", 1, str, textRules),
					field("panic", 2, boolean, nil),
				},
			},
			{
				Name: proto.String("EchoResponse"),
				Field: []*descriptorpb.FieldDescriptorProto{
					field("text", 1, str, nil),
					field("user_id", 2, str, nil),
					field("request_id", 3, str, nil),
				},
			},
		},
	}
	fd, err := protodesc.NewFile(fdp, nil)
	if err != nil {
		panic(fmt.Sprintf("testservice: build descriptor: %v", err))
	}
	reqDesc = fd.Messages().ByName("EchoRequest")
	respDesc = fd.Messages().ByName("EchoResponse")
}

// NewRequest returns an EchoRequest. With panicking set the handler panics.
func NewRequest(text string, panicking bool) proto.Message {
	m := dynamicpb.NewMessage(reqDesc)
	m.Set(reqDesc.Fields().ByName("text"), protoreflect.ValueOfString(text))
	m.Set(reqDesc.Fields().ByName("panic"), protoreflect.ValueOfBool(panicking))
	return m
}

// Reply is what the handler saw.
type Reply struct {
	Text      string
	UserID    string // authn.UserID in the handler's context
	RequestID string // requestid.FromContext in the handler's context
}

func handle(ctx context.Context, in proto.Message) proto.Message {
	m := in.ProtoReflect()
	if m.Get(reqDesc.Fields().ByName("panic")).Bool() {
		panic("testservice: asked to panic")
	}
	userID, _ := authn.UserID(ctx)
	out := dynamicpb.NewMessage(respDesc)
	out.Set(respDesc.Fields().ByName("text"), m.Get(reqDesc.Fields().ByName("text")))
	out.Set(respDesc.Fields().ByName("user_id"), protoreflect.ValueOfString(userID))
	out.Set(respDesc.Fields().ByName("request_id"), protoreflect.ValueOfString(requestid.FromContext(ctx)))
	return out
}

func toReply(m proto.Message) Reply {
	r := m.ProtoReflect()
	return Reply{
		Text:      r.Get(respDesc.Fields().ByName("text")).String(),
		UserID:    r.Get(respDesc.Fields().ByName("user_id")).String(),
		RequestID: r.Get(respDesc.Fields().ByName("request_id")).String(),
	}
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: ServiceName,
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := dynamicpb.NewMessage(reqDesc)
			if err := dec(in); err != nil {
				return nil, err
			}
			h := func(ctx context.Context, req any) (any, error) { return handle(ctx, req.(proto.Message)), nil }
			if interceptor == nil {
				return h(ctx, in)
			}
			return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: EchoMethod}, h)
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "EchoStream",
		ServerStreams: true,
		Handler: func(_ any, stream grpc.ServerStream) error {
			in := dynamicpb.NewMessage(reqDesc)
			if err := stream.RecvMsg(in); err != nil {
				return err
			}
			return stream.SendMsg(handle(stream.Context(), in))
		},
	}},
	Metadata: "mgx/test/v1/echo.proto",
}

// Register adds the echo service to s.
func Register(s grpc.ServiceRegistrar) {
	s.RegisterService(&serviceDesc, struct{}{})
}

// Echo calls the unary method.
func Echo(ctx context.Context, cc grpc.ClientConnInterface, req proto.Message, opts ...grpc.CallOption) (Reply, error) {
	out := dynamicpb.NewMessage(respDesc)
	if err := cc.Invoke(ctx, EchoMethod, req, out, opts...); err != nil {
		return Reply{}, err
	}
	return toReply(out), nil
}

// EchoStream calls the server-streaming method and reads its one reply. A
// grpc.Header call option is honoured as for unary calls, which gRPC itself
// does not do for streams.
func EchoStream(ctx context.Context, cc grpc.ClientConnInterface, req proto.Message, opts ...grpc.CallOption) (Reply, error) {
	stream, err := cc.NewStream(ctx, &serviceDesc.Streams[0], EchoStreamMethod, opts...)
	if err != nil {
		return Reply{}, err
	}
	if err := stream.SendMsg(req); err != nil {
		return Reply{}, err
	}
	if err := stream.CloseSend(); err != nil {
		return Reply{}, err
	}
	out := dynamicpb.NewMessage(respDesc)
	if err := stream.RecvMsg(out); err != nil {
		return Reply{}, err
	}
	for _, o := range opts {
		if h, ok := o.(grpc.HeaderCallOption); ok {
			md, err := stream.Header()
			if err != nil {
				return Reply{}, err
			}
			*h.HeaderAddr = md
		}
	}
	return toReply(out), nil
}
