package edge

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// OpenAPI returns the generated OpenAPI document corrected to what the
// gateway actually serves. protoc-gen-openapiv2 only knows the proto: it
// documents every success as 200 and no error body, and the two event
// stream paths as grpc-gateway's newline-delimited JSON. The gateway
// decides those here (statusOf, the error funnel, the stream bridge), so it
// rewrites the document once at start from the same table.
func OpenAPI(generated []byte) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(generated, &doc); err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	defs, _ := doc["definitions"].(map[string]any)
	if defs == nil {
		defs = map[string]any{}
		doc["definitions"] = defs
	}
	defs["ErrorBody"] = map[string]any{
		"type": "object",
		"properties": map[string]any{
			"detail":  map[string]any{"type": "string", "description": "Human-readable description of the error."},
			"code":    map[string]any{"type": "string", "description": "gRPC code name, e.g. NOT_FOUND."},
			"message": map[string]any{"type": "string"},
			"reason":  map[string]any{"type": "string", "description": "Stable machine-readable cause, when known."},
		},
		"required": []string{"detail", "code", "message"},
	}
	doc["securityDefinitions"] = map[string]any{
		"bearer": map[string]any{"type": "apiKey", "in": "header", "name": "Authorization", "description": "`Bearer <access token>` or `Bearer <API key>`"},
		"apiKey": map[string]any{"type": "apiKey", "in": "header", "name": "X-Api-Key"},
		"token":  map[string]any{"type": "apiKey", "in": "query", "name": "token", "description": "Access token in the query, for WebSocket and EventSource clients."},
	}
	doc["security"] = []any{
		map[string]any{"bearer": []any{}}, map[string]any{"apiKey": []any{}}, map[string]any{"token": []any{}},
	}

	status := map[string]int{}
	for method, code := range statusOf {
		// "/mgx.agentd.v1.SessionService/CreateSession" → "SessionService_CreateSession"
		parts := strings.Split(strings.TrimPrefix(method, "/"), "/")
		svc := parts[0][strings.LastIndex(parts[0], ".")+1:]
		status[svc+"_"+parts[1]] = code
	}
	errRef := map[string]any{"description": "Error.", "schema": map[string]any{"$ref": "#/definitions/ErrorBody"}}
	paths, _ := doc["paths"].(map[string]any)
	for path, ops := range paths {
		ops, _ := ops.(map[string]any)
		for _, op := range ops {
			op, _ := op.(map[string]any)
			if op == nil {
				continue
			}
			responses, _ := op["responses"].(map[string]any)
			if responses == nil {
				responses = map[string]any{}
				op["responses"] = responses
			}
			responses["default"] = errRef
			if publicPaths[path] {
				op["security"] = []any{}
			}
			id, _ := op["operationId"].(string)
			if code, ok := status[trailingDigits.ReplaceAllString(id, "")]; ok {
				ok200 := responses["200"]
				delete(responses, "200")
				if code == http.StatusNoContent {
					responses["204"] = map[string]any{"description": "No Content."}
				} else {
					responses[strconv.Itoa(code)] = ok200
				}
			}
		}
	}
	if get := operation(paths, "/healthz", "get"); get != nil {
		responses := get["responses"].(map[string]any)
		responses["503"] = map[string]any{"description": "A service is not serving.", "schema": responses["200"].(map[string]any)["schema"]}
	}
	if get := operation(paths, "/api/ws/sessions/{session_id}", "get"); get != nil {
		get["summary"] = "WebSocket: replays the session's events after after_seq, then follows live ones; one Event JSON per text message."
		get["responses"] = map[string]any{
			"101":     map[string]any{"description": "Switching Protocols; each message is an Event.", "schema": map[string]any{"$ref": "#/definitions/v1Event"}},
			"default": errRef,
		}
	}
	if get := operation(paths, "/api/sessions/{session_id}/events", "get"); get != nil {
		get["summary"] = "Server-Sent Events: `id: <sequence>` and `data: <Event JSON>` per event; resumes after Last-Event-ID (or after_seq)."
		get["produces"] = []string{"text/event-stream"}
		get["responses"] = map[string]any{
			"200":     map[string]any{"description": "An event stream of Event.", "schema": map[string]any{"$ref": "#/definitions/v1Event"}},
			"default": errRef,
		}
		params, _ := get["parameters"].([]any)
		get["parameters"] = append(params, map[string]any{"name": "Last-Event-ID", "in": "header", "required": false, "type": "string"})
	}
	return json.MarshalIndent(doc, "", "  ")
}

var trailingDigits = regexp.MustCompile(`[0-9]+$`)

func operation(paths map[string]any, path, method string) map[string]any {
	ops, _ := paths[path].(map[string]any)
	op, _ := ops[method].(map[string]any)
	return op
}
