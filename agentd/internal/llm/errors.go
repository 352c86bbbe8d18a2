package llm

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/openai/openai-go/v3"
	openaisse "github.com/openai/openai-go/v3/packages/ssestream"
)

// ErrContextLength is a request the model rejected because the conversation does not fit its
// context window. Retrying the same request cannot help; the conversation has to shrink first.
var ErrContextLength = errors.New("the conversation does not fit the model's context window")

// Error is a failed model call, classified so the caller knows whether to try again.
type Error struct {
	Provider string
	// Status is the HTTP status; 200 for an error event inside a stream that had started, 0 when
	// no response arrived (connection refused or reset, stalled stream).
	Status int
	// Type is the provider's error type or code ("overloaded_error", "rate_limit_exceeded"…), or
	// "connection" / "idle_timeout" for transport failures.
	Type    string
	Message string
	// Retryable says the same request may succeed later: overload, rate limits, 5xx, a broken or
	// stalled stream.
	Retryable bool
	// RetryAfter is how long the provider asked to wait (Retry-After); 0 when it did not say.
	RetryAfter    time.Duration
	ContextLength bool
	cause         error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Provider)
	b.WriteString(": ")
	switch e.Status {
	case 0:
	case http.StatusOK:
		b.WriteString("error in the stream: ")
	default:
		fmt.Fprintf(&b, "HTTP %d: ", e.Status)
	}
	if e.Type != "" && !strings.Contains(e.Message, e.Type) {
		b.WriteString(e.Type)
		if e.Message != "" {
			b.WriteString(": ")
		}
	}
	b.WriteString(e.Message)
	return b.String()
}

// Unwrap exposes the cause and, for a context-length rejection, ErrContextLength.
func (e *Error) Unwrap() []error {
	errs := []error{}
	if e.ContextLength {
		errs = append(errs, ErrContextLength)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

// AsError returns err's classification, if it has one.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// classify turns what an SDK returned into an *Error. ctx is the stream's context (for the idle
// timeout's cause); a cancelled caller's context error is returned unchanged.
func classify(ctx context.Context, provider string, err error) error {
	if err == nil {
		return nil
	}
	if cause := context.Cause(ctx); errors.Is(cause, ErrIdleTimeout) {
		return &Error{Provider: provider, Type: "idle_timeout", Message: "the stream sent nothing for too long",
			Retryable: true, cause: ErrIdleTimeout}
	}
	if ctx.Err() != nil {
		return err
	}
	e := &Error{Provider: provider, cause: err}
	var (
		oaErr  *openai.Error
		oaSSE  *openaisse.StreamError
		antErr *anthropic.Error
	)
	switch {
	case errors.As(err, &oaErr):
		e.Status, e.Type, e.Message = oaErr.StatusCode, oaErr.Code, oaErr.Message
		if e.Type == "" {
			e.Type = oaErr.Type
		}
		if e.Message == "" {
			e.Message = http.StatusText(oaErr.StatusCode)
		}
		e.Retryable = retryableStatus(oaErr.StatusCode) && oaErr.Code != "insufficient_quota"
		e.ContextLength = oaErr.Code == "context_length_exceeded" || contextLengthText(oaErr.Message)
		applyHeaders(e, oaErr.Response)
	case errors.As(err, &oaSSE):
		var body struct {
			Error struct {
				Message string `json:"message"`
				Type    string `json:"type"`
				Code    any    `json:"code"`
			} `json:"error"`
		}
		_ = json.Unmarshal(oaSSE.Event.Data, &body)
		e.Status, e.Type, e.Message = http.StatusOK, body.Error.Type, body.Error.Message
		if code, ok := body.Error.Code.(string); ok && code != "" {
			e.Type = code
		}
		if e.Message == "" {
			e.Message = strings.TrimPrefix(oaSSE.Message, "received error while streaming: ")
		}
		e.ContextLength = e.Type == "context_length_exceeded" || contextLengthText(e.Message)
		// An error event after the stream started is the server giving up on this generation
		// (overload, internal error); only a rejected request would fail the same way again.
		e.Retryable = !e.ContextLength && e.Type != "invalid_request_error"
	case errors.As(err, &antErr):
		var body struct {
			Error struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal([]byte(antErr.RawJSON()), &body)
		e.Status, e.Type, e.Message = antErr.StatusCode, body.Error.Type, body.Error.Message
		if e.Message == "" {
			e.Message = http.StatusText(antErr.StatusCode)
		}
		switch e.Type {
		case "overloaded_error", "api_error", "rate_limit_error", "timeout_error":
			e.Retryable = true
		case "":
			e.Retryable = retryableStatus(antErr.StatusCode)
		default:
			e.Retryable = retryableStatus(antErr.StatusCode) && antErr.StatusCode != http.StatusOK
		}
		e.ContextLength = e.Type == "invalid_request_error" && contextLengthText(e.Message)
		applyHeaders(e, antErr.Response)
	default:
		// No API answer: the connection failed, was reset, or the stream broke off mid-way.
		e.Type, e.Message, e.Retryable = "connection", describeTransport(err), true
	}
	if e.ContextLength {
		e.Retryable = false
	}
	return e
}

func retryableStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusConflict || code == http.StatusTooManyRequests || code >= 500
}

// contextLengthText recognises context-window rejections by their wording, for the providers and
// OpenAI-compatible servers (vLLM, DeepSeek, Anthropic) that send no dedicated code.
func contextLengthText(msg string) bool {
	m := strings.ToLower(msg)
	for _, s := range []string{"maximum context length", "context_length_exceeded", "prompt is too long",
		"context window", "exceed context limit", "too many tokens", "input is too long", "reduce the length of the messages"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// applyHeaders reads the provider's retry instructions: Retry-After (seconds or an HTTP date),
// retry-after-ms, and x-should-retry, which overrides the status-based guess.
func applyHeaders(e *Error, resp *http.Response) {
	if resp == nil {
		return
	}
	h := resp.Header
	if ms, err := strconv.ParseFloat(h.Get("retry-after-ms"), 64); err == nil && ms > 0 {
		e.RetryAfter = time.Duration(ms * float64(time.Millisecond))
	} else if v := h.Get("retry-after"); v != "" {
		if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
			e.RetryAfter = time.Duration(s * float64(time.Second))
		} else if t, err := http.ParseTime(v); err == nil {
			e.RetryAfter = max(time.Until(t), 0)
		}
	}
	switch h.Get("x-should-retry") {
	case "true":
		e.Retryable = true
	case "false":
		e.Retryable = false
	}
}

// errIncomplete is a stream that ended without saying why the model stopped: the connection closed
// early, which a retry repairs.
func errIncomplete(provider string) error {
	return &Error{Provider: provider, Type: "connection", Message: "the stream ended before the answer was complete", Retryable: true}
}

// describeTransport names a transport failure without the addresses and socket details a network
// error carries: the message reaches the chat. The cause stays in the error chain.
func describeTransport(err error) string {
	var (
		dns  *net.DNSError
		cert *tls.CertificateVerificationError
		nerr net.Error
	)
	switch {
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "the connection was reset"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "the connection was refused"
	case errors.As(err, &dns):
		return "the provider's host name could not be resolved"
	case errors.As(err, &cert):
		return "the provider's TLS certificate was not accepted"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the connection closed in the middle of the answer"
	case errors.As(err, &nerr) && nerr.Timeout():
		return "the connection timed out"
	}
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		return "the stream sent malformed data"
	}
	return "the connection failed"
}
