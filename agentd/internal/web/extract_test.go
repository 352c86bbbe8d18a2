package web

import (
	"net/url"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestExtractRendersStructure(t *testing.T) {
	page, err := url.Parse("https://docs.example.com/guide/install?x=1")
	require.NoError(t, err)
	// Too short for readability to call it an article: the pruned body is rendered.
	src := `<!doctype html><html><head><title>Install</title><base href="https://docs.example.com/v2/"></head><body>
	<nav><a href="/">Docs home</a></nav>
	<h1>Install   the  CLI</h1>
	<ol><li>Download it from <a href="downloads/cli">the downloads page</a>.</li>
	    <li>Run it:<ul><li>on Linux</li><li>on macOS</li></ul></li></ol>
	<blockquote><p>It needs Go 1.26.</p></blockquote>
	<table><tr><th>OS</th><th>Command</th></tr><tr><td>Linux</td><td><code>cli up</code></td></tr></table>
	<p>Questions? <a href="mailto:help@example.com">Mail us</a>, <a href="javascript:void(0)">chat</a>,
	   or read <a href="#faq">the FAQ</a> and <a href="https://docs.example.com/v2/faq"><img src="x.png" alt="FAQ icon"></a>.</p>
	<p hidden>secret</p><div aria-hidden="true">decoration</div>
	<form><input value="search"><button>Go</button></form>
	<footer>© Example</footer>
	</body></html>`
	got := extract(src, page)
	require.Equal(t, "Install", got.title)
	require.Equal(t, `# Install the CLI

1. Download it from the downloads page [1].
2. Run it:
  - on Linux
  - on macOS

> It needs Go 1.26.

OS | Command
Linux | `+"`cli up`"+`

Questions? Mail us [2], chat, or read the FAQ and FAQ icon [3].`, got.text)
	require.Equal(t, []Link{
		{Text: "the downloads page", URL: "https://docs.example.com/v2/downloads/cli"},
		{Text: "Mail us", URL: "mailto:help@example.com"},
		{Text: "FAQ icon", URL: "https://docs.example.com/v2/faq"},
	}, got.links)
}

func TestExtractBoundsLinks(t *testing.T) {
	page, _ := url.Parse("https://example.com/")
	src := "<body><p>"
	for i := range maxLinks + 50 {
		src += `<a href="/p` + string(rune('a'+i%26)) + "/" + strconv.Itoa(i) + `">l</a> `
	}
	src += "</p></body>"
	got := extract(src, page)
	require.Len(t, got.links, maxLinks)
}
