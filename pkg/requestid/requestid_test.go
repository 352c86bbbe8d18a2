package requestid

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

func TestValid(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"req-123", true},
		{"01a218e3-a27c-752c-96a9-4b4fba91e08a", true},
		{strings.Repeat("a", 128), true},
		{"", false},
		{strings.Repeat("a", 129), false},
		{"has space", false},
		{"new\nline", false},
		{"tab\t", false},
		{"ünïcode", false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			require.Equal(t, tt.want, Valid(tt.id))
		})
	}
}

func TestNew(t *testing.T) {
	a, b := New(), New()
	require.NotEqual(t, a, b)
	require.True(t, Valid(a))
	u, err := uuid.Parse(a)
	require.NoError(t, err)
	require.Equal(t, uuid.Version(7), u.Version())
}

func TestClientInterceptorForwards(t *testing.T) {
	tests := []struct {
		name     string
		ctx      func(context.Context) context.Context
		wantSent []string
	}{
		{"no id", func(ctx context.Context) context.Context { return ctx }, nil},
		{"context id forwarded", func(ctx context.Context) context.Context { return NewContext(ctx, "r1") }, []string{"r1"}},
		{
			"explicit outgoing id wins",
			func(ctx context.Context) context.Context {
				return metadata.AppendToOutgoingContext(NewContext(ctx, "r1"), MetadataKey, "r2")
			},
			[]string{"r2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sent []string
			invoker := func(ctx context.Context, _ string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
				md, _ := metadata.FromOutgoingContext(ctx)
				sent = md.Get(MetadataKey)
				return nil
			}
			err := UnaryClientInterceptor()(tt.ctx(t.Context()), "/svc/M", nil, nil, nil, invoker)
			require.NoError(t, err)
			require.Equal(t, tt.wantSent, sent)
		})
	}
}
