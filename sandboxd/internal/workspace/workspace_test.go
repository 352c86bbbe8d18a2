package workspace

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClean(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      error
	}{
		{"", ".", nil},
		{".", ".", nil},
		{"/workspace", ".", nil},
		{"/workspace/", ".", nil},
		{"src/app", "src/app", nil},
		{"./src//app/", "src/app", nil},
		{"/workspace/src/../lib", "lib", nil},
		{"a/../b", "b", nil},
		{"..", "", ErrEscape},
		{"../x", "", ErrEscape},
		{"a/../../x", "", ErrEscape},
		{"/etc", "", ErrEscape},
		{"/workspace/../etc", "", ErrEscape},
		{"/workspacefoo", "", ErrEscape},
		{"/", "", ErrEscape},
		{"a\x00b", "", ErrInvalid},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Clean(tc.in)
			require.ErrorIs(t, err, tc.err)
			require.Equal(t, tc.want, got)
		})
	}
}
