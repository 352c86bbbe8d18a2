package tools

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // decoders for imageSize
	_ "image/jpeg"
	_ "image/png"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mgx-ai/mgx/agentd/internal/browser"
	"github.com/mgx-ai/mgx/agentd/internal/store"
	"github.com/mgx-ai/mgx/pkg/previewhost"
)

// previewCheckWait is how long preview_check waits for the port to listen before it gives up.
const previewCheckWait = 10 * time.Second

type previewCheckArgs struct {
	Port   int32  `json:"port"`
	Path   string `json:"path"`
	WaitMS int    `json:"wait_ms"`
}

var browserSpecs = []*Spec{
	define(Spec{Name: PreviewCheck,
		Description: "Open the app's live preview in a headless browser, as the user sees it: loads the page served on port " +
			"(and path, e.g. /about) and reports the HTTP status, title, visible text, console errors, uncaught exceptions " +
			"and failed requests; a screenshot is shown to the user. wait_ms gives client-side rendering extra time (at most " +
			"10000). Use it after starting or changing a web app, and fix what it reports before saying the app works.",
		Schema: `{"type":"object","properties":{"port":{"type":"integer","minimum":1,"maximum":65535},"path":{"type":"string","maxLength":2048},"wait_ms":{"type":"integer","minimum":0,"maximum":10000}},"required":["port"],"additionalProperties":false}`},
		previewCheck),
}

// internalPreviewURL turns the public preview URL sandboxd hands out into one on sandboxd's own
// preview listener (SANDBOXD_PREVIEW_URL): the browser reaches the sandbox the way the gateway does,
// never through a container address and never out through the public edge. The preview is named by
// its host's first label (p<port>-<capability>, the capability being the credential), which works
// under previewhost.Loopback on any listener: chromium resolves *.localhost to loopback by itself,
// and the listener (or the relay in front of it) sees the Host it checks. Without a listener the
// public URL is used as it is (the browser refuses it unless it is on this host).
func internalPreviewURL(listener, public string) (string, error) {
	if public == "" {
		return "", errors.New("previews are off on this deployment: MGX_PUBLIC_URL names no host to put them under")
	}
	if listener == "" {
		return public, nil
	}
	lu, err := url.Parse(listener)
	if err != nil || lu.Host == "" {
		return "", fmt.Errorf("SANDBOXD_PREVIEW_URL %q is not a URL", listener)
	}
	pu, err := url.Parse(public)
	if err != nil {
		return "", fmt.Errorf("preview URL: %w", err)
	}
	label, _, ok := strings.Cut(pu.Hostname(), ".")
	if !ok || label == "" {
		return "", fmt.Errorf("preview URL %q has no preview host", public)
	}
	out := url.URL{Scheme: lu.Scheme, Host: label + "." + previewhost.Loopback, Path: "/", RawQuery: pu.RawQuery}
	if p := lu.Port(); p != "" {
		out.Host += ":" + p
	}
	return out.String(), nil
}

func previewCheck(ctx context.Context, x *Executor, c *Call, a *previewCheckArgs) (Result, error) {
	urls, err := x.waitPreview(ctx, c.SessionID, a.Port, previewCheckWait)
	if err != nil {
		return Result{}, err
	}
	public, ok := urls[a.Port]
	if !ok {
		return fail("nothing listens on port %d in the sandbox (waited %s), so there is no page to check: start the server with process_start, then read process_logs to see whether it came up.",
			a.Port, previewCheckWait), nil
	}
	base, err := internalPreviewURL(x.opts.PreviewURL, public)
	if err != nil {
		return Result{}, err
	}
	page, err := browser.JoinPath(base, a.Path)
	if err != nil {
		return fail("%v", err), nil
	}
	r, err := x.opts.Browser.Check(ctx, browser.Request{URL: page, Wait: time.Duration(a.WaitMS) * time.Millisecond})
	switch {
	case ctx.Err() != nil:
		return Result{}, ctx.Err()
	case errors.Is(err, browser.ErrURLRefused), errors.Is(err, browser.ErrBusy), errors.Is(err, browser.ErrBrowserExited),
		errors.Is(err, browser.ErrUnavailable), errors.Is(err, browser.ErrClosed):
		return fail("the preview could not be checked: %v", err), nil
	case err != nil:
		return Result{}, err
	}
	out := r.Report()
	res := Result{IsError: r.LoadError != "" || r.Status >= 400 || r.Status == 0 || len(r.Exceptions) > 0 || r.Crashed}
	if len(r.Screenshot) > 0 {
		where := "/" + strings.TrimPrefix(strings.TrimSpace(a.Path), "/")
		art, err := x.opts.Artifacts.SaveArtifact(ctx, store.Artifact{SessionID: c.SessionID, RunID: c.RunID, Agent: c.Agent, Tool: c.Tool,
			CallID: c.ID, Name: fmt.Sprintf("preview-%d%s.png", a.Port, slug(where)), ContentType: "image/png",
			Width: r.ScreenshotWidth, Height: r.ScreenshotHeight, Source: "port " + strconv.Itoa(int(a.Port)) + " " + where}, r.Screenshot)
		if err != nil {
			out += "\nThe screenshot could not be kept: " + describe(err)
		} else {
			res.Artifacts = append(res.Artifacts, art)
			out += "\nThe screenshot is shown to the user (artifact " + art.ID + ")."
		}
	}
	res.Output = out
	return res, nil
}

// slug turns a page path into a file-name part: "/" is "", "/todo/list" is "-todo-list".
func slug(p string) string {
	var b strings.Builder
	for _, r := range strings.Trim(p, "/") {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
		if b.Len() >= 40 {
			break
		}
	}
	if b.Len() == 0 {
		return ""
	}
	return "-" + strings.Trim(b.String(), "-")
}

// imageSize reads an image's dimensions from its header (0, 0 when unknown).
func imageSize(b []byte) (int, int) {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return 0, 0
	}
	return cfg.Width, cfg.Height
}
