package browser

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestJoinPath(t *testing.T) {
	const host = "http://p5173-s1.preview.localhost:8000/?token=abc.def"
	tests := []struct {
		base, path, want string
		bad              bool
	}{
		{base: host, path: "", want: host},
		{base: host, path: "/", want: host},
		{base: host, path: "/about", want: "http://p5173-s1.preview.localhost:8000/about?token=abc.def"},
		{base: host, path: "todos?done=1#top", want: "http://p5173-s1.preview.localhost:8000/todos?done=1&token=abc.def#top"},
		{base: host, path: "/x?token=forged", want: "http://p5173-s1.preview.localhost:8000/x?token=abc.def"},
		{base: "http://localhost:8000/preview/s1/5173/?token=t", path: "/api/items", want: "http://localhost:8000/preview/s1/5173/api/items?token=t"},
		{base: host, path: "http://evil.example/", bad: true},
		{base: host, path: "//evil.example/x", bad: true},
	}
	for _, tt := range tests {
		got, err := JoinPath(tt.base, tt.path)
		if tt.bad {
			require.ErrorIs(t, err, ErrURLRefused, tt.path)
			continue
		}
		require.NoError(t, err, tt.path)
		require.Equal(t, tt.want, got, tt.path)
	}
}
