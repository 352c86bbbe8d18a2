package browser

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"strings"
	"time"
	"unicode"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

const (
	// quietPeriod is how long the network must stay idle for a page to count as settled.
	quietPeriod = 500 * time.Millisecond
	// pollEvery re-checks time-based conditions (quiet period, wait) between events.
	pollEvery = 50 * time.Millisecond
)

// Check loads req.URL in a fresh page and reports what it shows. It returns an error only when no
// check could be made: ErrURLRefused, ErrBusy, ErrUnavailable, ErrBrowserExited, ErrClosed or the
// context's error. A page that is slow, broken or missing is a Result (TimedOut, LoadError,
// Status 404…), never an error.
func (b *Browser) Check(ctx context.Context, req Request) (*Result, error) {
	u, err := b.policy.check(req.URL)
	if err != nil {
		return nil, err
	}
	wait := min(max(req.Wait, 0), b.cfg.MaxWait)

	if err := b.acquire(ctx); err != nil {
		return nil, err
	}
	inst, err := b.begin()
	if err != nil {
		b.release()
		return nil, err
	}
	// The page's browser context has a proxy listener of its own: the page may reach its own
	// target (the preview's port) and nothing else on this host, and its refusals are its own.
	sc, err := b.egress.open(checkKey(u))
	if err != nil {
		b.closing.Done()
		b.release()
		return nil, err
	}
	start := time.Now()
	deadline := start.Add(b.cfg.CheckTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}

	col := newCollector()
	proxied := func(p *target.CreateBrowserContextParams) {
		p.ProxyServer, p.ProxyBypassList = "http://"+sc.addr(), proxyBypassList
	}
	tabCtx, closeTab := chromedp.NewContext(inst.ctx, chromedp.WithNewBrowserContext(proxied), chromedp.WithListener(col.onEvent))
	runCtx, cancelRun := context.WithDeadline(tabCtx, deadline)
	stopOnCaller := context.AfterFunc(ctx, cancelRun)
	defer func() {
		stopOnCaller()
		cancelRun()
		// Closing the page and disposing its browser context can take a moment; the caller does not
		// wait for it, but the page keeps its slot until it is gone (and Close waits for it).
		go func() {
			defer b.closing.Done()
			closeTab()
			sc.close()
			b.release()
		}()
	}()

	res := &Result{URL: u.String()}
	p := &pageCheck{b: b, col: col, res: res, url: u.String(), wait: wait, start: start, deadline: deadline}
	err = chromedp.Do(runCtx, chromedp.Func(p.run))
	col.fill(res)
	b.reportBlocked(res, col, sc)
	if res.FinalURL == "" {
		res.FinalURL = res.URL
	}
	res.Duration = time.Since(start)

	// A run that ended before the deadline without the caller cancelling it means the page or the
	// browser went away. A command can fail on the broken connection just before chromium's death is
	// noted, so the browser gets a moment to report it.
	early := (err != nil || runCtx.Err() != nil) && ctx.Err() == nil && time.Now().Before(deadline)
	if early && !b.isClosed() {
		select {
		case <-inst.ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
	switch {
	case b.isClosed():
		return nil, ErrClosed
	case inst.ctx.Err() != nil:
		return nil, ErrBrowserExited
	case errors.Is(ctx.Err(), context.Canceled):
		return nil, ctx.Err()
	case err == nil:
	case !early && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)):
		// The deadline (ours or the caller's, whichever came first) ended the capture: what was seen
		// by then is the result.
		res.TimedOut = true
		res.Notes = append(res.Notes, fmt.Sprintf("The check stopped at its deadline (%s) before the page was fully captured.", deadline.Sub(start).Round(100*time.Millisecond)))
	default:
		return nil, fmt.Errorf("browser: check of %s failed: %w", redact(res.URL), err)
	}
	return res, nil
}

func (b *Browser) acquire(ctx context.Context) error {
	timer := time.NewTimer(b.cfg.CheckTimeout)
	defer timer.Stop()
	select {
	case b.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-b.done:
		return ErrClosed
	case <-timer.C:
		return fmt.Errorf("%w: %d pages stayed open for %s", ErrBusy, b.cfg.MaxPages, b.cfg.CheckTimeout)
	}
}

func (b *Browser) release() { <-b.slots }

func (b *Browser) isClosed() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// pageCheck is one check's run against its page.
type pageCheck struct {
	b        *Browser
	col      *collector
	res      *Result
	url      string
	wait     time.Duration
	start    time.Time
	deadline time.Time
}

// captureReserve is the part of the check's budget kept for reading the page and taking the
// screenshot after loading and settling were cut short.
func (p *pageCheck) captureReserve() time.Duration {
	budget := p.deadline.Sub(p.start)
	return min(max(budget/5, time.Second), 5*time.Second, budget/2)
}

func (p *pageCheck) run(ctx context.Context, t *chromedp.Target) error {
	cfg := p.b.cfg
	c := chromedp.FromContext(ctx)
	// A navigation that turns into a download must not write files.
	if _, err := cdp.Call(ctx, c.Browser, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorDeny, BrowserContextID: c.BrowserContextID,
	}); err != nil {
		return err
	}
	if _, err := cdp.Call(ctx, t, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
		Width: int64(cfg.ViewportWidth), Height: int64(cfg.ViewportHeight), DeviceScaleFactor: 1,
	}); err != nil {
		return err
	}
	// alert/confirm/prompt block the page until answered; they are dismissed (a check confirms
	// nothing) and reported.
	go func() {
		for {
			select {
			case <-p.col.dialogs:
				_, _ = cdp.Call(ctx, t, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
			case <-ctx.Done():
				return
			}
		}
	}()

	loadCtx, cancel := context.WithDeadline(ctx, p.deadline.Add(-p.captureReserve()))
	defer cancel()
	nav, err := cdp.Call(loadCtx, t, page.Navigate, page.NavigateParams{URL: p.url})
	switch {
	case loadCtx.Err() != nil && ctx.Err() == nil:
		p.res.TimedOut = true
		p.note("No response from the server within %s.", time.Since(p.start).Round(100*time.Millisecond))
		return nil
	case err != nil:
		return err
	case nav.ErrorText != "":
		p.res.LoadError = nav.ErrorText
		return nil
	case nav.IsDownload:
		p.res.LoadError = "the URL answered with a file download, not a page"
		return nil
	}
	p.col.setMainFrame(nav.FrameID)

	// Load, then settle: wait at least p.wait after the load event and until the network has been
	// quiet for a moment. Both end at the load deadline, keeping time to capture what is there.
	loaded := p.waitFor(loadCtx, nav.LoaderID, func(s state) bool { return s.loaded || s.crashed })
	s := p.col.state(nav.LoaderID)
	p.res.Loaded = s.loaded
	if s.crashed {
		return nil
	}
	if !loaded {
		p.res.TimedOut = true
		p.note("The page had not finished loading (no load event) when the check stopped waiting; %d requests were still in flight.", s.inflight)
	} else {
		until := time.Now().Add(p.wait)
		p.res.Settled = p.waitFor(loadCtx, nav.LoaderID, func(s state) bool {
			return s.crashed || (!time.Now().Before(until) && s.idleFor >= quietPeriod)
		})
		if !p.res.Settled {
			s := p.col.state(nav.LoaderID)
			if !s.crashed {
				p.res.TimedOut = true
				p.note("The network did not go quiet before the deadline (%d requests in flight); the page may still have been loading data.", s.inflight)
			}
		}
	}
	if p.col.state(nav.LoaderID).crashed {
		return nil
	}
	if p.col.docRefused() {
		// The page is the egress proxy's answer (a refusal, or a preview that is down), not one the
		// server made: there is nothing of the app to read or show.
		return nil
	}
	return p.capture(ctx, t)
}

// waitFor waits until cond holds or ctx ends, and reports whether cond held.
func (p *pageCheck) waitFor(ctx context.Context, loader cdp.LoaderID, cond func(state) bool) bool {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		if cond(p.col.state(loader)) {
			return true
		}
		select {
		case <-ctx.Done():
			return cond(p.col.state(loader))
		case <-p.col.changed:
		case <-tick.C:
		}
	}
}

// pageInfo is what the page reports about itself. The text is cut in the page already, so a huge
// document never crosses the protocol whole.
type pageInfo struct {
	Title string `json:"title"`
	URL   string `json:"url"`
	Text  string `json:"text"`
}

const pageInfoJS = `(() => {
	const b = document.body;
	const t = b ? b.innerText : (document.documentElement ? document.documentElement.innerText : "");
	return {title: document.title, url: location.href, text: (t || "").slice(0, %d)};
})()`

func (p *pageCheck) capture(ctx context.Context, t *chromedp.Target) error {
	cfg := p.b.cfg
	info, err := chromedp.Evaluate[pageInfo](fmt.Sprintf(pageInfoJS, cfg.MaxTextChars*4))(ctx, t)
	if err != nil {
		if ctx.Err() != nil {
			p.note("The page did not answer (a script may be busy in a loop); no text or screenshot was taken.")
			return nil //nolint:nilerr // a page busy past the deadline is a finding of the check, not its failure
		}
		return fmt.Errorf("reading the page: %w", err)
	}
	p.res.Title = strings.TrimSpace(info.Title)
	p.res.FinalURL = info.URL
	p.res.Text, p.res.TextTruncated = normalizeText(info.Text, cfg.MaxTextChars)

	shot, err := p.screenshot(ctx, t, 1)
	if err == nil && len(shot) > cfg.MaxScreenshotBytes {
		shot, err = p.screenshot(ctx, t, 0.5)
		if err == nil && len(shot) > cfg.MaxScreenshotBytes {
			p.note("The screenshot was larger than %d bytes even at half scale and was left out.", cfg.MaxScreenshotBytes)
			return nil
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			p.note("No screenshot: the page did not render one before the deadline.")
			return nil //nolint:nilerr // as above: what was seen by the deadline is the result
		}
		return fmt.Errorf("taking the screenshot: %w", err)
	}
	img, err := png.DecodeConfig(bytes.NewReader(shot))
	if err != nil {
		return fmt.Errorf("the screenshot is not a PNG: %w", err)
	}
	p.res.Screenshot, p.res.ScreenshotWidth, p.res.ScreenshotHeight = shot, img.Width, img.Height
	return nil
}

func (p *pageCheck) screenshot(ctx context.Context, t *chromedp.Target, scale float64) ([]byte, error) {
	params := page.CaptureScreenshotParams{Format: page.CaptureScreenshotFormatPng, FromSurface: new(true)}
	if scale != 1 {
		params.Clip = &page.Viewport{Width: float64(p.b.cfg.ViewportWidth), Height: float64(p.b.cfg.ViewportHeight), Scale: scale}
	}
	r, err := cdp.Call(ctx, t, page.CaptureScreenshot, params)
	if err != nil {
		return nil, err
	}
	return r.Data, nil
}

func (p *pageCheck) note(format string, args ...any) {
	p.res.Notes = append(p.res.Notes, fmt.Sprintf(format, args...))
}

// normalizeText collapses whitespace the way a reader sees it — runs of blanks become one space,
// runs containing a line break become one line break — and cuts the result at limit characters.
func normalizeText(s string, limit int) (string, bool) {
	var b strings.Builder
	pending, newline := false, false
	n := 0
	for _, r := range s {
		if unicode.IsSpace(r) {
			pending = true
			newline = newline || r == '\n' || r == '\r'
			continue
		}
		if pending && b.Len() > 0 {
			if newline {
				b.WriteByte('\n')
			} else {
				b.WriteByte(' ')
			}
			n++
		}
		pending, newline = false, false
		if n >= limit {
			return strings.TrimSpace(b.String()), true
		}
		b.WriteRune(r)
		n++
	}
	return b.String(), false
}
