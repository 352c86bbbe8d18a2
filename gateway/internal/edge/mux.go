package edge

import (
	"context"
	"net/http"
	"reflect"
	"strconv"

	openapiv2 "github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2/options"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/mgx-ai/mgx/gateway/internal/httperr"
	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"
	gatewayv1 "github.com/mgx-ai/mgx/proto/gen/mgx/gateway/v1"
	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
)

// JSON is the one JSON encoding of the public API: snake_case field names,
// zero values present, proto3 optional fields absent when unset, and unknown
// request fields refused (a typo is a 400, not a silently ignored field).
var JSON = protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: true}

// jsonMarshaler is runtime.JSONPb with one fix: a top-level repeated field
// selected by `response_body` marshals as [] when empty, not null, because
// the REST table promises JSON arrays (JSONPb only does so with
// EmitUnpopulated, which would also emit unset optional fields as null).
type jsonMarshaler struct {
	*runtime.JSONPb
}

func (m jsonMarshaler) Marshal(v any) ([]byte, error) {
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice && rv.IsNil() {
		return []byte("[]"), nil
	}
	// A stream that fails after its first chunk ends with grpc-gateway's error chunk; it is given the
	// one error shape here, the only place that sees it.
	if chunk, ok := httperr.StreamErrorChunk(v); ok {
		return m.JSONPb.Marshal(chunk)
	}
	return m.JSONPb.Marshal(v)
}

// statusOf is the REST status of every RPC that does not answer 200, by full method name.
var statusOf = SuccessStatuses(gatewayv1.File_mgx_gateway_v1_gateway_proto, agentdv1.File_mgx_agentd_v1_agentd_proto,
	sandboxdv1.File_mgx_sandboxd_v1_sandboxd_proto)

// SuccessStatuses reads, from the proto annotations of files, the success status of every RPC that
// declares one other than 200 (an openapiv2_operation response 201, 204…). The OpenAPI document
// states the same declarations, so what is served and what is documented cannot disagree.
func SuccessStatuses(files ...protoreflect.FileDescriptor) map[string]int {
	out := map[string]int{}
	for _, f := range files {
		for i := range f.Services().Len() {
			svc := f.Services().Get(i)
			for j := range svc.Methods().Len() {
				m := svc.Methods().Get(j)
				op, _ := proto.GetExtension(m.Options(), openapiv2.E_Openapiv2Operation).(*openapiv2.Operation)
				for code := range op.GetResponses() {
					if n, err := strconv.Atoi(code); err == nil && n >= 200 && n < 300 && n != http.StatusOK {
						out["/"+string(svc.FullName())+"/"+string(m.Name())] = n
					}
				}
			}
		}
	}
	return out
}

// setStatus is the forward-response option that gives an RPC its REST
// status. A 204 has no body: the header is sent here, and the body
// grpc-gateway writes next is refused by net/http (and ignored by it).
func setStatus(ctx context.Context, w http.ResponseWriter, resp proto.Message) error {
	method, _ := runtime.RPCMethod(ctx)
	code, ok := statusOf[method]
	if h, isHealth := resp.(*gatewayv1.CheckResponse); isHealth && h.GetStatus() != "ok" {
		code, ok = http.StatusServiceUnavailable, true
	}
	if !ok {
		return nil
	}
	if code == http.StatusNoContent {
		w.Header().Del("Content-Type")
	}
	w.WriteHeader(code)
	return nil
}

// NewServeMux returns the grpc-gateway mux with the gateway's marshaler,
// error funnel and status codes. No HTTP header is turned into gRPC metadata
// and no upstream metadata into HTTP headers: identity reaches upstreams
// only through UpstreamInterceptors, so a client cannot smuggle
// x-mgx-user-id or the internal token in a Grpc-Metadata-* header.
func NewServeMux(errs httperr.Writer) *runtime.ServeMux {
	none := func(string) (string, bool) { return "", false }
	pb := &runtime.JSONPb{
		MarshalOptions:   JSON,
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}
	return runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{Marshaler: jsonMarshaler{pb}}),
		runtime.WithErrorHandler(errs.GatewayHandler),
		runtime.WithStreamErrorHandler(errs.StreamErrorHandler),
		runtime.WithRoutingErrorHandler(errs.RoutingHandler),
		runtime.WithIncomingHeaderMatcher(none),
		runtime.WithOutgoingHeaderMatcher(none),
		runtime.WithOutgoingTrailerMatcher(none),
		runtime.WithForwardResponseOption(setStatus),
	)
}

// RegisterAll registers every service's generated handlers on mux.
func RegisterAll(ctx context.Context, mux *runtime.ServeMux, self, agentd, sandboxd *grpc.ClientConn) error {
	regs := []func() error{
		func() error { return gatewayv1.RegisterAuthServiceHandler(ctx, mux, self) },
		func() error { return gatewayv1.RegisterHealthServiceHandler(ctx, mux, self) },
		func() error { return agentdv1.RegisterSessionServiceHandler(ctx, mux, agentd) },
		func() error { return agentdv1.RegisterChatServiceHandler(ctx, mux, agentd) },
		func() error { return agentdv1.RegisterEventServiceHandler(ctx, mux, agentd) },
		func() error { return agentdv1.RegisterAgentServiceHandler(ctx, mux, agentd) },
		func() error { return agentdv1.RegisterArtifactServiceHandler(ctx, mux, agentd) },
		func() error { return sandboxdv1.RegisterSandboxServiceHandler(ctx, mux, sandboxd) },
		func() error { return sandboxdv1.RegisterFileServiceHandler(ctx, mux, sandboxd) },
		func() error { return sandboxdv1.RegisterProcessServiceHandler(ctx, mux, sandboxd) },
		func() error { return sandboxdv1.RegisterWorkspaceServiceHandler(ctx, mux, sandboxd) },
	}
	for _, r := range regs {
		if err := r(); err != nil {
			return err
		}
	}
	return nil
}
