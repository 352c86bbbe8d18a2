package browser

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/inspector"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
)

// Bounds of what one check keeps; a page logging in a loop must not grow agentd's memory.
const (
	maxConsole    = 50
	maxExceptions = 20
	maxFailed     = 50
	maxMessage    = 2000 // characters of one message or stack
	maxRequests   = 5000 // requests tracked for the in-flight count and failure reports
)

// collector gathers a page's events. Its onEvent runs on chromedp's read loop for the target, so it
// only records under a lock and signals; the check's goroutine reads snapshots.
type collector struct {
	mu sync.Mutex

	requests map[network.RequestID]*request
	order    []network.RequestID
	inflight map[network.RequestID]bool
	// lastNet is when the network last changed; the page settles after a quiet period.
	lastNet time.Time

	// loads holds the loaders whose document fired its load event (per navigation).
	loads map[cdp.LoaderID]bool
	// doc is the main frame's latest document response (a redirect chain ends in it, and a
	// client-side navigation replaces it).
	mainFrame cdp.FrameID
	doc       *network.EventResponseReceived
	// docEgress is the egress proxy's verdict on the main document when the proxy answered for it.
	docEgress string
	// sockets are the URLs of the page's WebSockets.
	sockets []string

	console        []ConsoleMessage
	consoleDropped int
	exceptions     []Exception
	excDropped     int
	crashed        bool

	// dialogs receives JavaScript dialogs to dismiss; a dialog blocks the page until answered.
	dialogs chan struct{}
	// changed is signalled (without blocking) on every event that can end a wait.
	changed chan struct{}
}

type request struct {
	url      string
	method   string
	typ      network.ResourceType
	frame    cdp.FrameID
	loader   cdp.LoaderID
	status   int
	failed   string
	canceled bool
}

func newCollector() *collector {
	return &collector{
		requests: map[network.RequestID]*request{},
		inflight: map[network.RequestID]bool{},
		loads:    map[cdp.LoaderID]bool{},
		lastNet:  time.Now(),
		dialogs:  make(chan struct{}, 1),
		changed:  make(chan struct{}, 1),
	}
}

func (c *collector) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *collector) onEvent(ev any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		c.lastNet = time.Now()
		r := c.requests[ev.RequestID]
		if r == nil {
			if len(c.order) >= maxRequests {
				return
			}
			r = &request{}
			c.requests[ev.RequestID] = r
			c.order = append(c.order, ev.RequestID)
		}
		// A redirect reuses the request id: the entry follows the chain to its last hop.
		r.url, r.method, r.typ, r.frame, r.loader = ev.Request.URL, ev.Request.Method, ev.Type, ev.FrameID, ev.LoaderID
		if countsForIdle(ev.Type) {
			c.inflight[ev.RequestID] = true
		}
	case *network.EventResponseReceived:
		c.lastNet = time.Now()
		// A response the egress proxy made (a refusal, a failed dial) is a network failure, not
		// something the server said.
		egress := headerValue(ev.Response.Headers, egressHeader)
		if r := c.requests[ev.RequestID]; r != nil {
			r.status = int(ev.Response.Status)
			if egress != "" {
				r.status, r.failed = 0, egress
			}
		}
		if ev.Type == network.ResourceTypeDocument && c.isMainFrame(ev.FrameID) {
			c.doc, c.docEgress = ev, egress
		}
	case *network.EventLoadingFinished:
		c.lastNet = time.Now()
		delete(c.inflight, ev.RequestID)
	case *network.EventLoadingFailed:
		c.lastNet = time.Now()
		delete(c.inflight, ev.RequestID)
		if r := c.requests[ev.RequestID]; r != nil {
			r.failed, r.canceled = ev.ErrorText, ev.Canceled
			if ev.BlockedReason != "" {
				r.failed += " (blocked: " + string(ev.BlockedReason) + ")"
			}
			if ev.CorsErrorStatus != nil && ev.CorsErrorStatus.CorsError != "" {
				r.failed += " (CORS: " + string(ev.CorsErrorStatus.CorsError) + ")"
			}
		}
	case *network.EventWebSocketCreated:
		if len(c.sockets) < maxRequests {
			c.sockets = append(c.sockets, ev.URL)
		}
	case *page.EventLifecycleEvent:
		if ev.Name == "load" {
			c.loads[ev.LoaderID] = true
		}
	case *runtime.EventConsoleAPICalled:
		level := ""
		switch ev.Type {
		case runtime.ConsoleAPICalledTypeError, runtime.ConsoleAPICalledTypeAssert:
			level = "error"
		case runtime.ConsoleAPICalledTypeWarning:
			level = "warning"
		default:
			return
		}
		text := formatArgs(ev.Args)
		if ev.Type == runtime.ConsoleAPICalledTypeAssert {
			text = "Assertion failed: " + text
		}
		c.addConsole(ConsoleMessage{Level: level, Text: text, Location: topFrame(ev.StackTrace)})
	case *cdplog.EventEntryAdded:
		e := ev.Entry
		// Network failures are reported as failed requests already, and violations are advice.
		if e.Source == cdplog.EntrySourceNetwork || e.Source == cdplog.EntrySourceViolation {
			return
		}
		level := ""
		switch e.Level {
		case cdplog.EntryLevelError:
			level = "error"
		case cdplog.EntryLevelWarning:
			level = "warning"
		default:
			return
		}
		loc := ""
		if e.URL != "" {
			loc = e.URL
			if e.LineNumber > 0 {
				loc += ":" + strconv.FormatInt(e.LineNumber+1, 10)
			}
		}
		c.addConsole(ConsoleMessage{Level: level, Text: e.Text, Location: loc})
	case *runtime.EventExceptionThrown:
		if len(c.exceptions) >= maxExceptions {
			c.excDropped++
			return
		}
		c.exceptions = append(c.exceptions, describeException(ev.ExceptionDetails))
	case *page.EventJavascriptDialogOpening:
		c.addConsole(ConsoleMessage{Level: "dialog", Text: fmt.Sprintf("%s(%q) was dismissed by the check", ev.Type, clip(ev.Message))})
		select {
		case c.dialogs <- struct{}{}:
		default:
		}
	case *inspector.EventTargetCrashed:
		c.crashed = true
	default:
		return
	}
	c.signal()
}

// countsForIdle leaves out connections that stay open by design (HMR event streams, websockets),
// which would otherwise keep a dev server's page from ever settling.
func countsForIdle(t network.ResourceType) bool {
	return t != network.ResourceTypeEventSource && t != network.ResourceTypeWebSocket
}

func (c *collector) isMainFrame(id cdp.FrameID) bool {
	return c.mainFrame == "" || id == c.mainFrame
}

func (c *collector) addConsole(m ConsoleMessage) {
	if len(c.console) >= maxConsole {
		c.consoleDropped++
		return
	}
	m.Text = clip(m.Text)
	c.console = append(c.console, m)
}

// setMainFrame records the frame the navigation loads, once Page.navigate answered. Document
// responses of other frames (iframes) seen before are dropped here.
func (c *collector) setMainFrame(id cdp.FrameID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mainFrame = id
	if c.doc != nil && c.doc.FrameID != id {
		c.doc = nil
	}
}

// state is what the waits look at.
type state struct {
	loaded, crashed bool
	idleFor         time.Duration
	inflight        int
}

func (c *collector) state(nav cdp.LoaderID) state {
	c.mu.Lock()
	defer c.mu.Unlock()
	// The latest main-frame document decides: after a client-side navigation the new document's load
	// event is the one that matters.
	loader := nav
	if c.doc != nil && c.doc.LoaderID != "" {
		loader = c.doc.LoaderID
	}
	s := state{loaded: c.loads[loader], crashed: c.crashed, inflight: len(c.inflight)}
	if s.inflight == 0 {
		s.idleFor = time.Since(c.lastNet)
	}
	return s
}

// fill copies what was collected into r.
func (c *collector) fill(r *Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.doc != nil && c.doc.Response != nil {
		r.Status = int(c.doc.Response.Status)
		r.StatusText = c.doc.Response.StatusText
		if r.FinalURL == "" {
			r.FinalURL = c.doc.Response.URL
		}
		if c.docEgress != "" {
			r.Status, r.StatusText, r.LoadError = 0, "", c.docEgress
		}
	}
	r.Crashed = c.crashed
	r.Console = append([]ConsoleMessage(nil), c.console...)
	r.ConsoleDropped = c.consoleDropped
	r.Exceptions = append([]Exception(nil), c.exceptions...)
	r.ExceptionsDropped = c.excDropped
	for _, id := range c.order {
		q := c.requests[id]
		if c.doc != nil && id == c.doc.RequestID {
			continue // the main document's status is reported on its own
		}
		if strings.HasPrefix(q.url, "data:") || strings.HasPrefix(q.url, "blob:") {
			continue
		}
		var f FailedRequest
		switch {
		case q.status >= 400:
			f = FailedRequest{Status: q.status}
		case q.failed != "" && !q.canceled:
			f = FailedRequest{Error: q.failed}
		default:
			continue
		}
		if len(r.FailedRequests) >= maxFailed {
			r.FailedRequestsDropped++
			continue
		}
		f.URL, f.Method, f.Type = clip(q.url), q.method, string(q.typ)
		r.FailedRequests = append(r.FailedRequests, f)
	}
}

// docRefused reports that the main document is a response the egress proxy made itself.
func (c *collector) docRefused() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.docEgress != ""
}

// urls lists every URL the page asked for: requests (a redirect chain's last hop), the main
// document, and WebSockets.
func (c *collector) urls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.order)+len(c.sockets))
	for _, id := range c.order {
		out = append(out, c.requests[id].url)
	}
	return append(out, c.sockets...)
}

// headerValue reads a response header whatever its case (HTTP/2 and HTTP/1 spell them apart).
func headerValue(h network.Headers, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			s, _ := v.(string)
			return s
		}
	}
	return ""
}

func describeException(d *runtime.ExceptionDetails) Exception {
	e := Exception{Message: d.Text}
	if d.URL != "" {
		e.Location = fmt.Sprintf("%s:%d:%d", d.URL, d.LineNumber+1, d.ColumnNumber+1)
	}
	if x := d.Exception; x != nil {
		switch {
		case x.Description != "":
			// An Error's description is its stack: "TypeError: msg\n    at f (url:1:2)".
			msg, stack, _ := strings.Cut(x.Description, "\n    at ")
			e.Message = msg
			if stack != "" {
				e.Stack = "at " + stack
			}
		case len(x.Value) > 0:
			e.Message = d.Text + " " + valueString(x.Value)
		}
		if strings.HasPrefix(d.Text, "Uncaught (in promise)") && !strings.HasPrefix(e.Message, "Uncaught") {
			e.Message = "Unhandled promise rejection: " + e.Message
		}
	}
	if e.Stack == "" && d.StackTrace != nil {
		var lines []string
		for _, f := range d.StackTrace.CallFrames {
			name := f.FunctionName
			if name == "" {
				name = "<anonymous>"
			}
			lines = append(lines, fmt.Sprintf("at %s (%s:%d:%d)", name, f.URL, f.LineNumber+1, f.ColumnNumber+1))
		}
		e.Stack = strings.Join(lines, "\n")
	}
	e.Message, e.Stack = clip(e.Message), clip(e.Stack)
	return e
}

func topFrame(st *runtime.StackTrace) string {
	if st == nil || len(st.CallFrames) == 0 {
		return ""
	}
	f := st.CallFrames[0]
	if f.URL == "" {
		return ""
	}
	return fmt.Sprintf("%s:%d:%d", f.URL, f.LineNumber+1, f.ColumnNumber+1)
}

// formatArgs renders console arguments as DevTools shows them, including printf-style
// substitutions in a first string argument ("%s", "%d", "%o"…).
func formatArgs(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		parts = append(parts, remoteString(a))
	}
	if len(args) > 1 && args[0].Type == runtime.RemoteObjectTypeString && strings.Contains(parts[0], "%") {
		format, rest := parts[0], parts[1:]
		var b strings.Builder
		for i := 0; i < len(format); i++ {
			if format[i] != '%' || i+1 == len(format) {
				b.WriteByte(format[i])
				continue
			}
			switch verb := format[i+1]; verb {
			case 's', 'd', 'i', 'f', 'o', 'O':
				if len(rest) > 0 {
					b.WriteString(rest[0])
					rest = rest[1:]
				}
				i++
			case 'c': // CSS styling: the argument is consumed and not shown
				if len(rest) > 0 {
					rest = rest[1:]
				}
				i++
			case '%':
				b.WriteByte('%')
				i++
			default:
				b.WriteByte('%')
			}
		}
		parts = append([]string{b.String()}, rest...)
	}
	return strings.Join(parts, " ")
}

func remoteString(o *runtime.RemoteObject) string {
	if o == nil {
		return ""
	}
	switch {
	case o.Type == runtime.RemoteObjectTypeUndefined:
		return "undefined"
	case o.UnserializableValue != "":
		return string(o.UnserializableValue)
	case len(o.Value) > 0 && o.Type != runtime.RemoteObjectTypeObject && o.Type != runtime.RemoteObjectTypeFunction:
		return valueString(o.Value)
	case o.Description != "":
		return o.Description
	case len(o.Value) > 0:
		return string(o.Value)
	}
	return string(o.Type)
}

// valueString renders a JSON value: strings without quotes, everything else as JSON.
func valueString(v []byte) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(v)
}

func clip(s string) string {
	r := []rune(s)
	if len(r) <= maxMessage {
		return s
	}
	return string(r[:maxMessage]) + "…"
}
