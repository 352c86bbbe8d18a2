// Package browser is the engine of the preview_check tool: one shared headless chromium per agentd,
// driven over the Chrome DevTools Protocol (chromedp), loads a page in a fresh incognito browser
// context and reports what a user would meet — HTTP status, title, visible text, console errors,
// uncaught exceptions, failed requests — with a PNG screenshot of the viewport.
//
// Bounds: every check has a deadline (Config.CheckTimeout) that covers loading, settling and
// capturing, so a slow or hung page returns what was seen by then instead of hanging; at most
// Config.MaxPages pages are open at once (a page still closing counts); renderers run with a capped
// JavaScript heap; every page and its browser context are disposed after the check. The browser
// starts in New (so an absent or broken chromium is reported as ErrUnavailable when agentd starts)
// and is started again by the next check after it died.
//
// Only loopback and *.localhost URLs are loaded unless Config.AllowHosts says otherwise: agentd
// checks previews through sandboxd's preview listener on its own host, never a container address.
// What the page then loads goes through an egress proxy that keeps it off internal addresses
// (egress.go).
package browser

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/chromedp/chromedp"
)

// Errors of Check and New.
var (
	// ErrUnavailable: chromium is absent, disabled or does not start. The caller leaves the tool out
	// (at start) or reports it unavailable (later).
	ErrUnavailable = errors.New("browser: chromium is unavailable")
	// ErrBusy: every page slot stayed taken for a whole check timeout.
	ErrBusy = errors.New("browser: too many checks at once")
	// ErrBrowserExited: chromium died during the check; the next check starts it again.
	ErrBrowserExited = errors.New("browser: chromium exited during the check")
	// ErrClosed: the Browser was closed.
	ErrClosed = errors.New("browser: closed")
)

// Browser owns the shared chromium process. It is safe for concurrent use.
type Browser struct {
	cfg    Config
	log    *slog.Logger
	policy hostPolicy
	// egress is the proxy every request of the pages goes through (see egress.go).
	egress *egress
	// slots holds one token per open page.
	slots chan struct{}
	// closing counts the pages of checks, open or still closing after their check returned.
	closing sync.WaitGroup
	done    chan struct{}

	mu       sync.Mutex
	inst     *instance
	closed   bool
	restarts int
}

// instance is one chromium process.
type instance struct {
	// ctx is the chromedp browser context; it ends when the browser is gone (closed or died).
	ctx context.Context
	// kill ends the process if it still runs, reaps it and removes its temporary profile.
	kill func()
	pid  int
}

// New starts chromium and returns the shared browser. It fails with ErrUnavailable when the
// browser is disabled, absent or does not start within Config.StartTimeout, and with
// ErrInvalidConfig for a bad configuration.
func New(cfg Config, log *slog.Logger) (*Browser, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.Disabled {
		return nil, fmt.Errorf("%w: disabled by AGENTD_BROWSER_DISABLED", ErrUnavailable)
	}
	if _, err := exec.LookPath(cfg.ExecPath); err != nil {
		return nil, fmt.Errorf("%w: %s not found (install Debian's chromium package or set AGENTD_BROWSER_PATH)", ErrUnavailable, cfg.ExecPath)
	}
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "browser")
	eg, err := newEgress(cfg.AllowHosts, cfg.CheckTimeout, log)
	if err != nil {
		return nil, err
	}
	b := &Browser{
		cfg:    cfg,
		log:    log,
		policy: newHostPolicy(cfg.AllowHosts),
		egress: eg,
		slots:  make(chan struct{}, cfg.MaxPages),
		done:   make(chan struct{}),
	}
	b.mu.Lock()
	_, err = b.instanceLocked()
	b.mu.Unlock()
	if err != nil {
		eg.close()
		return nil, err
	}
	return b, nil
}

// PID is the running chromium's process id, 0 when none runs (before a restart, or after Close).
func (b *Browser) PID() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inst == nil || b.inst.ctx.Err() != nil {
		return 0
	}
	return b.inst.pid
}

// Restarts counts how often chromium was started again after it died.
func (b *Browser) Restarts() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.restarts
}

// Close ends chromium (gracefully, then by force), removes its temporary profile and waits for
// pages still closing. Checks in flight fail. It is idempotent.
func (b *Browser) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.done)
	inst := b.inst
	b.inst = nil
	b.mu.Unlock()
	if inst != nil {
		inst.stop()
	}
	b.closing.Wait()
	b.egress.close()
	return nil
}

// begin returns the running browser for a check, starting one when none runs or the last one
// died, and counts the check's page as open until the check closes it. Counting under the lock
// that Close takes keeps Close's wait from racing with a check that is starting.
func (b *Browser) begin() (*instance, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	inst, err := b.instanceLocked()
	if err == nil {
		b.closing.Add(1)
	}
	return inst, err
}

// instanceLocked returns the running browser, starting one when none runs or the last one died.
func (b *Browser) instanceLocked() (*instance, error) {
	if b.closed {
		return nil, ErrClosed
	}
	if b.inst != nil {
		if b.inst.ctx.Err() == nil {
			return b.inst, nil
		}
		b.log.Warn("chromium exited; starting it again", "pid", b.inst.pid)
		// Reap the dead process and remove its profile before a new one starts.
		b.inst.kill()
		b.inst = nil
		b.restarts++
	}
	inst, err := b.start()
	if err != nil {
		return nil, err
	}
	b.inst = inst
	b.log.Info("chromium started", "pid", inst.pid, "path", b.cfg.ExecPath)
	return inst, nil
}

func (b *Browser) start() (*instance, error) {
	// Each process gets a temporary home holding its profile, caches and crash database, so nothing
	// of it lands in agentd's home and one RemoveAll cleans it up.
	home, err := os.MkdirTemp("", "agentd-chromium-")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), b.allocatorOptions(home)...)
	logf := func(format string, args ...any) { b.log.Debug("chromedp: " + fmt.Sprintf(format, args...)) }
	bctx, bcancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(logf), chromedp.WithErrorf(logf))
	// Cancelling the browser context kills the process and waits for it; the allocator's cancel then
	// waits until the temporary profile is removed.
	stop := func() {
		bcancel()
		allocCancel()
		// Helpers (zygote, renderers, crash handler) usually follow the browser out; any left after a
		// crash are found by their command line, which names the temporary home.
		killLeftovers(home)
		if err := removeAllRetry(home); err != nil {
			b.log.Warn("removing chromium's temporary home", "dir", home, "err", err)
		}
	}

	// The first run binds the browser's life to bctx, so the start deadline must not be a context
	// of that run: a timer abandons it instead.
	errc := make(chan error, 1)
	go func() { errc <- chromedp.Do(bctx) }()
	timer := time.NewTimer(b.cfg.StartTimeout)
	defer timer.Stop()
	select {
	case err := <-errc:
		if err != nil {
			stop()
			return nil, fmt.Errorf("%w: %s did not start: %w", ErrUnavailable, b.cfg.ExecPath, err)
		}
	case <-timer.C:
		stop()
		if err := <-errc; err != nil { // the abandoned start ends with the stop; the timeout is the error
			b.log.Debug("abandoned chromium start", "err", err)
		}
		return nil, fmt.Errorf("%w: %s did not start within %s", ErrUnavailable, b.cfg.ExecPath, b.cfg.StartTimeout)
	}
	pid := 0
	if p := chromedp.FromContext(bctx).Browser.Process(); p != nil {
		pid = p.Pid
	}
	return &instance{ctx: bctx, kill: stop, pid: pid}, nil
}

// stop closes the browser gracefully (so it flushes and exits on its own), then makes sure the
// process is gone and its temporary profile removed.
func (i *instance) stop() {
	ctx, cancel := context.WithTimeout(i.ctx, 5*time.Second)
	_ = chromedp.Cancel(ctx)
	cancel()
	i.kill()
}

func (b *Browser) allocatorOptions(home string) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(b.cfg.ExecPath),
		chromedp.UserDataDir(filepath.Join(home, "profile")),
		// Headless also hides scrollbars and mutes audio.
		chromedp.Headless,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		// agentd runs as an unprivileged service or root in a container; chromium's own sandbox
		// needs user namespaces it does not always have. The page is confined by the host policy, the
		// egress guard and the per-check browser context instead.
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-crash-reporter", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("disable-client-side-phishing-detection", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints,AutofillServerCommunication,CertificateTransparencyComponentUpdater"),
		chromedp.Flag("metrics-recording-only", true),
		// Every request of a page, loopback included, goes through the egress guard; chromium
		// bypasses a proxy for loopback unless told otherwise.
		chromedp.Flag("proxy-server", "http://"+b.egress.base.addr()),
		chromedp.Flag("proxy-bypass-list", proxyBypassList),
		// WebRTC's ICE (STUN, TURN) does not use the HTTP proxy: without this a page sends UDP to
		// any address (TestWebRTCDoesNotBypassTheProxy). With it, WebRTC only goes through the proxy.
		chromedp.Flag("webrtc-ip-handling-policy", "disable_non_proxied_udp"),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		// Shared memory in /tmp: a container's /dev/shm is often 64 MB, and chromium crashes when it
		// fills up.
		chromedp.Flag("disable-dev-shm-usage", true),
		// Pages in background windows must keep running their timers, or a check waits for
		// rendering that never happens.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-hang-monitor", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("force-device-scale-factor", "1"),
		chromedp.Flag("window-size", fmt.Sprintf("%d,%d", b.cfg.ViewportWidth, b.cfg.ViewportHeight)),
		// Memory bounds: each renderer's JavaScript heap is capped, and renderers are shared beyond
		// a few processes instead of one per site per page.
		chromedp.Flag("js-flags", "--max-old-space-size="+strconv.Itoa(b.cfg.JSHeapMB)),
		chromedp.Flag("renderer-process-limit", strconv.Itoa(b.cfg.MaxPages+1)),
		// The browser gets no secret of agentd's environment (API keys, tokens).
		chromedp.NoInheritEnv,
		chromedp.Env(browserEnv(home)...),
	}
}

// browserEnv is the environment chromium needs: where to find programs and fonts, and a writable
// home of its own.
func browserEnv(home string) []string {
	env := []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "XDG_CACHE_HOME=" + filepath.Join(home, ".cache")}
	for _, k := range []string{"PATH", "TMPDIR", "LANG", "LC_ALL", "TZ", "FONTCONFIG_FILE", "FONTCONFIG_PATH"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// killLeftovers kills the processes whose command line names dir, until none shows up for a few
// passes in a row (a helper can fork just as its parent dies). Chromium rewrites its helpers'
// command lines with spaces between arguments, so the match is on the bytes, not on argv.
func killLeftovers(dir string) {
	const quietPasses, pause = 3, 20 * time.Millisecond
	deadline := time.Now().Add(2 * time.Second)
	for quiet := 0; quiet < quietPasses && time.Now().Before(deadline); time.Sleep(pause) {
		if killProcessesNaming(dir) == 0 {
			quiet++
		} else {
			quiet = 0
		}
	}
}

func killProcessesNaming(dir string) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	self, needle, n := os.Getpid(), []byte(dir), 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmdline, needle) && syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}

// removeAllRetry removes dir, retrying while a dying helper still writes into it.
func removeAllRetry(dir string) error {
	deadline := time.Now().Add(3 * time.Second)
	for {
		err := os.RemoveAll(dir)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
