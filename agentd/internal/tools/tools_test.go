package tools

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCaptureKeepsHeadAndTail(t *testing.T) {
	c := newCapture(10, 20)
	c.Write([]byte("short"))
	require.Equal(t, "short", c.String())
	require.Zero(t, c.cut())

	c = newCapture(10, 20)
	for i := range 1000 {
		c.Write([]byte{byte('a' + i%26)})
	}
	c.Write([]byte("THE END"))
	s := c.String()
	require.True(t, strings.HasPrefix(s, "abcdefghij\n[… 977 bytes cut from the middle …]\n"), s)
	require.True(t, strings.HasSuffix(s, "THE END"), s)
	require.EqualValues(t, 1007, c.total)

	// A cut never splits a character.
	c = newCapture(4, 4)
	c.Write([]byte("ééééééééé"))
	require.NotContains(t, c.String(), "\uFFFD")
}

func TestPlural(t *testing.T) {
	for n, want := range map[string]string{"line": "2 lines", "match": "2 matches", "directory": "2 directories", "key": "2 keys", "box": "2 boxes"} {
		require.Equal(t, want, plural(2, n))
	}
	require.Equal(t, "1 match", plural(1, "match"))
}

func TestInternalPreviewURL(t *testing.T) {
	const label = "p3000-abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst"
	public := "http://" + label + ".preview.example.com/"
	for _, tc := range []struct{ listener, want string }{
		{"http://127.0.0.1:8202", "http://" + label + ".preview.localhost:8202/"},
		{"http://localhost:9000", "http://" + label + ".preview.localhost:9000/"},
		{"", public},
	} {
		got, err := internalPreviewURL(tc.listener, public)
		require.NoError(t, err)
		require.Equal(t, tc.want, got)
	}
	_, err := internalPreviewURL("http://127.0.0.1:8202", "")
	require.ErrorContains(t, err, "previews are off")
}

func TestNumberedLinesAndSnippets(t *testing.T) {
	b := []byte("one\ntwo\r\nthree")
	starts := lineStarts(b)
	require.Equal(t, []int{0, 4, 9}, starts)
	require.Equal(t, "     2\ttwo\n     3\tthree\n", numbered(b, starts, 2, 3))
	require.Equal(t, 3, lineAt(starts, 10))
	require.Equal(t, 1, lineAt(starts, 0))
	require.Empty(t, lineStarts(nil))
	require.Len(t, lineStarts([]byte("a\n")), 1, "a final newline starts no line")

	long := []byte(strings.Repeat("x", readMaxLineChars+50))
	require.Contains(t, numbered(long, lineStarts(long), 1, 1), "(line cut: 50 more characters)")
}

func TestNoMatchPointsAtCandidates(t *testing.T) {
	b := []byte("func a() {\n\treturn  1\n}\n\nfunc b() {\n\treturn 2\n}\n")
	msg := noMatch("x.go", b, lineStarts(b), "return 1\n}")
	require.Contains(t, msg, "old_str was not found in x.go")
	require.Contains(t, msg, "     2\t\treturn  1", "a line differing only in spacing is a candidate")
	msg = noMatch("x.go", b, lineStarts(b), "nothing like it")
	require.Contains(t, msg, "No line of the file contains its first line")
}

func TestPythonWrapperTravelsInSingleQuotes(t *testing.T) {
	require.NotContains(t, pythonWrapper, "'")
}

func TestSpecsDecodeIntoTheirTypes(t *testing.T) {
	spec, ok := Lookup(ProcessLogs)
	require.True(t, ok)
	a, err := spec.Decode(`{"name":"web","since":0}`)
	require.NoError(t, err)
	require.NotNil(t, a.(*processLogsArgs).Since, "since=0 is a cursor, not its absence")
	a, err = spec.Decode(`{"name":"web"}`)
	require.NoError(t, err)
	require.Nil(t, a.(*processLogsArgs).Since)
	_, err = spec.Decode(`{"name":"web","tail":0}`)
	require.ErrorContains(t, err, "arguments do not match the schema of process_logs")
	_, err = spec.Decode(`{"name":`)
	require.ErrorContains(t, err, "not valid JSON")

	for _, s := range all {
		require.NotNil(t, s.newArgs, s.Name)
		require.Equal(t, s.Control, s.run == nil, "%s: a handler for every tool but the control ones", s.Name)
		require.NotEmpty(t, s.Description, s.Name)
	}
}

func TestUnavailableToolsAreRefused(t *testing.T) {
	x := NewExecutor(nil, Options{})
	require.Equal(t, []string{FetchURL, PreviewCheck, WebSearch}, x.UnavailableNames())
	res, err := x.Execute(t.Context(), Call{Tool: WebSearch, Args: `{"query":"x"}`})
	require.NoError(t, err)
	require.True(t, res.IsError)
	require.Contains(t, res.Output, "web_search is not available here (no search provider is configured)")
	res, err = x.Execute(t.Context(), Call{Tool: SendMessage, Args: `{}`})
	require.NoError(t, err)
	require.True(t, res.IsError, "control tools are the workflow's")
}

func TestPreviewRelayKeepsTheHost(t *testing.T) {
	var host, uri string
	listener := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, uri = r.Host, r.RequestURI
		_, _ = w.Write([]byte("page"))
	}))
	defer listener.Close()
	require.True(t, IsLoopbackURL(listener.URL))
	require.False(t, IsLoopbackURL("http://sandboxd.mgx.svc:8202"))
	relay, err := StartPreviewRelay(listener.URL, slog.Default())
	require.NoError(t, err)
	defer func() { _ = relay.Close(t.Context()) }()

	page, err := internalPreviewURL(relay.URL(), "http://p3000-cap.preview.example.com/")
	require.NoError(t, err)
	u, err := url.Parse(page)
	require.NoError(t, err)
	// chromium resolves *.localhost itself; the test dials the relay the same way.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+strings.Replace(u.Host, "p3000-cap.preview.localhost", "127.0.0.1", 1)+"/about?token=t.k", nil)
	require.NoError(t, err)
	req.Host = u.Host
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, "page", string(body))
	require.Equal(t, u.Host, host, "the preview's name reaches sandboxd's listener")
	require.Equal(t, "/about?token=t.k", uri)
}
