package llm

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
)

// CutArguments describes tool-call arguments that the output limit cut mid-JSON.
type CutArguments struct {
	// Bytes is how much of the arguments arrived.
	Bytes int
	// Field is the top-level argument being written when the output stopped ("" when the cut fell
	// between arguments), and FieldBytes how much of its value arrived.
	Field      string
	FieldBytes int
	// Complete holds the short top-level arguments that arrived whole (a path, a flag), so the
	// model can be reminded which call was cut.
	Complete map[string]any
}

// maxKeptArgument bounds the arguments InspectCut keeps: names and paths, not file contents.
const maxKeptArgument = 300

// InspectCut reads as much of the truncated JSON object args as arrived.
func InspectCut(args string) CutArguments {
	out := CutArguments{Bytes: len(args), Complete: map[string]any{}}
	dec := json.NewDecoder(strings.NewReader(args))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return out
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return out
		}
		key, ok := tok.(string)
		if !ok {
			return out // the closing brace: the object is complete after all
		}
		keyEnd := int(dec.InputOffset())
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				out.Field, out.FieldBytes = key, valueBytes(args[keyEnd:])
			}
			return out
		}
		if len(v) <= maxKeptArgument {
			var val any
			d := json.NewDecoder(bytes.NewReader(v))
			d.UseNumber()
			if d.Decode(&val) == nil {
				out.Complete[key] = val
			}
		}
	}
}

// valueBytes measures a partial value: what follows its key, less the colon and an opening quote.
func valueBytes(rest string) int {
	rest = strings.TrimLeft(rest, " \t\r\n")
	rest = strings.TrimPrefix(rest, ":")
	rest = strings.TrimLeft(rest, " \t\r\n")
	rest = strings.TrimPrefix(rest, `"`)
	return len(rest)
}

// Salvage returns the complete arguments as a JSON object, to stand in the conversation for
// arguments that were cut (a provider may reject invalid JSON in an assistant turn).
func (c CutArguments) Salvage() string {
	b, err := json.Marshal(c.Complete)
	if err != nil {
		return "{}"
	}
	return string(b)
}
