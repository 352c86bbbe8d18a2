package browser

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrInvalidConfig is wrapped by Config.Validate.
var ErrInvalidConfig = errors.New("browser: invalid configuration")

// Config bounds the shared browser and every check. Its fields are environment variables
// (caarlos0/env tags), so agentd's config can embed it as it is; New applies the same defaults to a
// zero field, so a literal Config{} works too.
type Config struct {
	// ExecPath is the chromium executable (Debian's wrapper script execs the real binary, so the pid
	// stays the browser's).
	ExecPath string `env:"AGENTD_BROWSER_PATH" envDefault:"/usr/bin/chromium"`
	// Disabled leaves preview_check out even when chromium is installed.
	Disabled bool `env:"AGENTD_BROWSER_DISABLED"`
	// CheckTimeout is one check's whole budget: loading, settling (wait_ms included) and capturing.
	CheckTimeout time.Duration `env:"AGENTD_BROWSER_CHECK_TIMEOUT" envDefault:"30s"`
	// MaxWait caps a check's wait_ms (the extra time given to the page after it loaded).
	MaxWait time.Duration `env:"AGENTD_BROWSER_MAX_WAIT" envDefault:"10s"`
	// StartTimeout bounds starting chromium; a browser that is not up by then is unavailable.
	StartTimeout time.Duration `env:"AGENTD_BROWSER_START_TIMEOUT" envDefault:"30s"`
	// MaxPages is how many pages may be open at once: checks in flight plus pages still closing.
	// Further checks queue for a page (at most CheckTimeout, then ErrBusy).
	MaxPages int `env:"AGENTD_BROWSER_MAX_PAGES" envDefault:"2"`
	// JSHeapMB caps each renderer's V8 heap (--js-flags=--max-old-space-size), so a runaway page
	// fails with an out-of-memory crash of its own renderer instead of growing without bound.
	JSHeapMB int `env:"AGENTD_BROWSER_JS_HEAP_MB" envDefault:"512"`
	// ViewportWidth and ViewportHeight are the page size, and so the screenshot's.
	ViewportWidth  int `env:"AGENTD_BROWSER_VIEWPORT_WIDTH" envDefault:"1280"`
	ViewportHeight int `env:"AGENTD_BROWSER_VIEWPORT_HEIGHT" envDefault:"800"`
	// MaxScreenshotBytes bounds the PNG; a larger one is retaken at half scale, then dropped.
	MaxScreenshotBytes int `env:"AGENTD_BROWSER_MAX_SCREENSHOT_BYTES" envDefault:"2097152"`
	// MaxTextChars bounds the visible-text excerpt.
	MaxTextChars int `env:"AGENTD_BROWSER_MAX_TEXT_CHARS" envDefault:"4000"`
	// AllowHosts lists further hosts a check may load besides loopback and *.localhost: a name
	// ("preview.example.com"), a suffix (".preview.example.com") or "*" for any host. Production
	// sets it only when previews are served under a public name the agentd host resolves itself.
	// What a page loads is held by the egress guard: listed names and suffixes are reached as
	// configured, "*" lifts only the check of the top-level URL (its host and port stay reachable
	// during its check), and everything else reaches only public internet addresses.
	AllowHosts []string `env:"AGENTD_BROWSER_ALLOW_HOSTS" envSeparator:","`
}

// Defaults used where a field is zero.
const (
	defaultExecPath           = "/usr/bin/chromium"
	defaultCheckTimeout       = 30 * time.Second
	defaultMaxWait            = 10 * time.Second
	defaultStartTimeout       = 30 * time.Second
	defaultMaxPages           = 2
	defaultJSHeapMB           = 512
	defaultViewportWidth      = 1280
	defaultViewportHeight     = 800
	defaultMaxScreenshotBytes = 2 << 20
	defaultMaxTextChars       = 4000
)

func (c Config) withDefaults() Config {
	if c.ExecPath == "" {
		c.ExecPath = defaultExecPath
	}
	if c.CheckTimeout == 0 {
		c.CheckTimeout = defaultCheckTimeout
	}
	if c.MaxWait == 0 {
		c.MaxWait = defaultMaxWait
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = defaultStartTimeout
	}
	if c.MaxPages == 0 {
		c.MaxPages = defaultMaxPages
	}
	if c.JSHeapMB == 0 {
		c.JSHeapMB = defaultJSHeapMB
	}
	if c.ViewportWidth == 0 {
		c.ViewportWidth = defaultViewportWidth
	}
	if c.ViewportHeight == 0 {
		c.ViewportHeight = defaultViewportHeight
	}
	if c.MaxScreenshotBytes == 0 {
		c.MaxScreenshotBytes = defaultMaxScreenshotBytes
	}
	if c.MaxTextChars == 0 {
		c.MaxTextChars = defaultMaxTextChars
	}
	return c
}

// Validate reports the first out-of-range field (after defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(name string, v any, why string) error {
		return fmt.Errorf("%w: %s=%v: %s", ErrInvalidConfig, name, v, why)
	}
	switch {
	case c.CheckTimeout < time.Second:
		return bad("AGENTD_BROWSER_CHECK_TIMEOUT", c.CheckTimeout, "must be at least 1s")
	case c.MaxWait < 0 || c.MaxWait >= c.CheckTimeout:
		return bad("AGENTD_BROWSER_MAX_WAIT", c.MaxWait, "must be between 0 and AGENTD_BROWSER_CHECK_TIMEOUT")
	case c.StartTimeout < time.Second:
		return bad("AGENTD_BROWSER_START_TIMEOUT", c.StartTimeout, "must be at least 1s")
	case c.MaxPages < 1 || c.MaxPages > 32:
		return bad("AGENTD_BROWSER_MAX_PAGES", c.MaxPages, "must be between 1 and 32")
	case c.JSHeapMB < 32:
		return bad("AGENTD_BROWSER_JS_HEAP_MB", c.JSHeapMB, "must be at least 32")
	case c.ViewportWidth < 200 || c.ViewportWidth > 4096:
		return bad("AGENTD_BROWSER_VIEWPORT_WIDTH", c.ViewportWidth, "must be between 200 and 4096")
	case c.ViewportHeight < 200 || c.ViewportHeight > 4096:
		return bad("AGENTD_BROWSER_VIEWPORT_HEIGHT", c.ViewportHeight, "must be between 200 and 4096")
	case c.MaxScreenshotBytes < 16<<10:
		return bad("AGENTD_BROWSER_MAX_SCREENSHOT_BYTES", c.MaxScreenshotBytes, "must be at least 16384")
	case c.MaxTextChars < 100:
		return bad("AGENTD_BROWSER_MAX_TEXT_CHARS", c.MaxTextChars, "must be at least 100")
	}
	for _, h := range c.AllowHosts {
		if strings.TrimSpace(h) == "" {
			return bad("AGENTD_BROWSER_ALLOW_HOSTS", c.AllowHosts, "has an empty entry")
		}
	}
	return nil
}
