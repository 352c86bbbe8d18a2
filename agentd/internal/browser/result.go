package browser

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Request is one check.
type Request struct {
	// URL is the page to load: the preview URL sandboxd hands out for a port.
	URL string
	// Wait is extra time the page gets after its load event (timers, client-side rendering); the
	// check also waits for the network to go quiet. It is capped by Config.MaxWait and the check's
	// deadline.
	Wait time.Duration
}

// Result is what a check saw. Lists are bounded; the Dropped counters say how much was left out.
type Result struct {
	URL      string `json:"url"`
	FinalURL string `json:"final_url,omitempty"`
	// Status is the HTTP status of the main document's final response (after redirects); 0 when
	// no response arrived.
	Status     int    `json:"status"`
	StatusText string `json:"status_text,omitempty"`
	// LoadError is set when the page could not be loaded at all (e.g. net::ERR_CONNECTION_REFUSED).
	LoadError string `json:"load_error,omitempty"`
	Title     string `json:"title,omitempty"`
	// Text is the page's visible text (document.body.innerText), whitespace-normalised and cut at
	// Config.MaxTextChars; TextTruncated says it was cut.
	Text          string `json:"text,omitempty"`
	TextTruncated bool   `json:"text_truncated,omitempty"`

	Console               []ConsoleMessage `json:"console,omitempty"`
	ConsoleDropped        int              `json:"console_dropped,omitempty"`
	Exceptions            []Exception      `json:"exceptions,omitempty"`
	ExceptionsDropped     int              `json:"exceptions_dropped,omitempty"`
	FailedRequests        []FailedRequest  `json:"failed_requests,omitempty"`
	FailedRequestsDropped int              `json:"failed_requests_dropped,omitempty"`

	// Screenshot is a PNG of the viewport; nil when none could be taken (see Notes).
	Screenshot       []byte `json:"-"`
	ScreenshotWidth  int    `json:"screenshot_width,omitempty"`
	ScreenshotHeight int    `json:"screenshot_height,omitempty"`

	// Loaded reports that the load event fired; Settled that the network then went quiet.
	Loaded  bool `json:"loaded"`
	Settled bool `json:"settled"`
	// TimedOut is set when the deadline cut loading or settling short; what was seen by then is
	// still reported.
	TimedOut bool `json:"timed_out,omitempty"`
	// Crashed is set when the page's renderer crashed (e.g. out of memory).
	Crashed  bool          `json:"crashed,omitempty"`
	Duration time.Duration `json:"duration_ns"`
	// Notes explain anything partial, in words meant for the model.
	Notes []string `json:"notes,omitempty"`
}

// ConsoleMessage is a console.error/warn/assert call, a browser-reported error or warning (CSP,
// mixed content…), or a JavaScript dialog the check dismissed.
type ConsoleMessage struct {
	// Level is "error", "warning" or "dialog".
	Level string `json:"level"`
	Text  string `json:"text"`
	// Location is url:line:column of the call, when known.
	Location string `json:"location,omitempty"`
}

// Exception is an uncaught exception or unhandled promise rejection.
type Exception struct {
	Message string `json:"message"`
	// Stack is the JavaScript stack ("at fn (url:line:col)" lines), when known.
	Stack string `json:"stack,omitempty"`
	// Location is url:line:column where it was thrown, when known.
	Location string `json:"location,omitempty"`
}

// FailedRequest is a subresource or fetch that failed at the network level or answered ≥ 400.
type FailedRequest struct {
	URL    string `json:"url"`
	Method string `json:"method"`
	// Type is the resource type (Script, Stylesheet, Image, Fetch, XHR…).
	Type string `json:"type,omitempty"`
	// Status is the HTTP status (≥ 400), or 0 when the request failed without a response.
	Status int `json:"status,omitempty"`
	// Error is the network error (net::ERR_…), with a blocked or CORS reason when there is one.
	Error string `json:"error,omitempty"`
}

// Report renders the result as the observation a model reads: status first, then what is broken,
// then what the page shows. The preview token is masked in every URL.
func (r *Result) Report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Loaded %s in %.1fs\n", redact(r.URL), r.Duration.Seconds())
	switch {
	case r.LoadError != "":
		fmt.Fprintf(&b, "The page could not be loaded: %s\n", r.LoadError)
	case r.Status == 0:
		b.WriteString("HTTP status: no response\n")
	default:
		fmt.Fprintf(&b, "HTTP status: %d %s\n", r.Status, r.StatusText)
	}
	if r.FinalURL != "" && r.FinalURL != r.URL {
		fmt.Fprintf(&b, "Final URL: %s\n", redact(r.FinalURL))
	}
	if r.Title != "" {
		fmt.Fprintf(&b, "Title: %s\n", r.Title)
	}
	if r.Crashed {
		b.WriteString("The page crashed (its renderer died, e.g. out of memory).\n")
	}

	if len(r.Exceptions) > 0 {
		fmt.Fprintf(&b, "\nUncaught exceptions (%d%s):\n", len(r.Exceptions), more(r.ExceptionsDropped))
		for _, e := range r.Exceptions {
			fmt.Fprintf(&b, "- %s", e.Message)
			if e.Location != "" && e.Stack == "" {
				fmt.Fprintf(&b, " (%s)", redact(e.Location))
			}
			b.WriteString("\n")
			if e.Stack != "" {
				for line := range strings.SplitSeq(e.Stack, "\n") {
					fmt.Fprintf(&b, "    %s\n", strings.TrimSpace(line))
				}
			}
		}
	}
	if len(r.Console) > 0 {
		fmt.Fprintf(&b, "\nConsole errors and warnings (%d%s):\n", len(r.Console), more(r.ConsoleDropped))
		for _, m := range r.Console {
			fmt.Fprintf(&b, "- [%s] %s", m.Level, m.Text)
			if m.Location != "" {
				fmt.Fprintf(&b, " (%s)", redact(m.Location))
			}
			b.WriteString("\n")
		}
	}
	if len(r.FailedRequests) > 0 {
		fmt.Fprintf(&b, "\nFailed requests (%d%s):\n", len(r.FailedRequests), more(r.FailedRequestsDropped))
		for _, f := range r.FailedRequests {
			what := f.Error
			if f.Status != 0 {
				what = fmt.Sprintf("HTTP %d", f.Status)
			}
			fmt.Fprintf(&b, "- %s %s → %s\n", f.Method, redact(f.URL), what)
		}
	}
	if len(r.Exceptions)+len(r.Console)+len(r.FailedRequests) == 0 && r.LoadError == "" {
		b.WriteString("\nNo console errors, uncaught exceptions or failed requests.\n")
	}

	if r.LoadError == "" {
		if r.Text == "" {
			b.WriteString("\nVisible text: none (the page renders no text; it may be blank)\n")
		} else {
			cut := ""
			if r.TextTruncated {
				cut = ", cut"
			}
			fmt.Fprintf(&b, "\nVisible text (%d chars%s):\n%s\n", len([]rune(r.Text)), cut, r.Text)
		}
	}
	if r.Screenshot != nil {
		fmt.Fprintf(&b, "\nScreenshot: %d×%d PNG, %d KB\n", r.ScreenshotWidth, r.ScreenshotHeight, (len(r.Screenshot)+1023)/1024)
	}
	if len(r.Notes) > 0 {
		b.WriteString("\nNotes:\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

func more(dropped int) string {
	if dropped == 0 {
		return ""
	}
	return fmt.Sprintf(", %d more not shown", dropped)
}

// tokenParam matches the preview token's value in a URL, or in a url:line:col location.
var tokenParam = regexp.MustCompile(`([?&]token=)[^&#\s:]+`)

// redact masks the preview token (a credential for the preview) wherever a URL is shown.
func redact(s string) string {
	return tokenParam.ReplaceAllString(s, "${1}…")
}
