package stream_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/gateway/internal/stream"
)

func TestSubprotocolToken(t *testing.T) {
	for _, tc := range []struct {
		name    string
		upgrade string
		headers []string
		want    string
	}{
		{"marker then token", "websocket", []string{"mgx.bearer, tok.en-1"}, "tok.en-1"},
		{"split over header lines", "websocket", []string{"mgx.bearer", "tok"}, "tok"},
		{"other protocols around", "WebSocket", []string{"graphql-ws, mgx.bearer,tok , chat"}, "tok"},
		{"marker in another case", "websocket", []string{"MGX.Bearer, tok"}, "tok"},
		{"no marker", "websocket", []string{"tok"}, ""},
		{"marker last", "websocket", []string{"tok, mgx.bearer"}, ""},
		{"no header", "websocket", nil, ""},
		{"not an upgrade", "", []string{"mgx.bearer, tok"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := http.NewRequest(http.MethodGet, "http://gateway/api/ws/sessions/x", nil)
			require.NoError(t, err)
			if tc.upgrade != "" {
				r.Header.Set("Upgrade", tc.upgrade)
			}
			for _, h := range tc.headers {
				r.Header.Add("Sec-WebSocket-Protocol", h)
			}
			require.Equal(t, tc.want, stream.SubprotocolToken(r))
		})
	}
}
