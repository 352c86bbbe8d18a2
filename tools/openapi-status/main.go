// Command openapi-status completes what protoc-gen-openapiv2 cannot say from the proto annotations
// alone: the success status of an operation that does not answer 200. The generator always adds a
// 200 response (its "default response", which also carries the schema of a selected response_body),
// and an operation's annotations can only add responses beside it, so an operation annotated with a
// 201 or 204 response would be documented as answering both. For every such operation this drops the
// generated 200 and gives its schema to the declared status (a 204 has no body). Nothing else is
// touched: keys keep their order and values their bytes.
//
//	openapi-status proto/gen/openapi/mgx.swagger.json
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: openapi-status FILE.swagger.json")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "openapi-status:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	in, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc, err := parse(in)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	n, err := fixSuccess(doc)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	write(&out, doc, "")
	out.WriteByte('\n')
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Printf("openapi-status: %d operations answer a status other than 200\n", n)
	return nil
}

// fixSuccess rewrites every operation under paths that declares a 2xx response other than 200.
func fixSuccess(doc *value) (int, error) {
	paths := doc.get("paths")
	if paths == nil {
		return 0, errors.New("no paths")
	}
	n := 0
	for _, p := range paths.obj {
		for _, op := range p.val.obj {
			responses := op.val.get("responses")
			if responses == nil || responses.get("200") == nil {
				continue
			}
			var declared []string
			for _, r := range responses.obj {
				if strings.HasPrefix(r.key, "2") && r.key != "200" {
					declared = append(declared, r.key)
				}
			}
			if len(declared) == 0 {
				continue
			}
			if len(declared) > 1 {
				return 0, fmt.Errorf("%s %s declares several success statuses %v", op.key, p.key, declared)
			}
			gen := responses.get("200")
			status := responses.get(declared[0])
			if declared[0] == "204" {
				status.del("schema")
			} else if s := status.get("schema"); (s == nil || len(s.obj) == 0 && s.raw == nil) && gen.get("schema") != nil {
				status.set("schema", gen.get("schema"))
			}
			responses.del("200")
			n++
		}
	}
	return n, nil
}

// value is a JSON value that keeps its object keys in order and its scalars as they were written.
type value struct {
	obj   []member // an object (isObj)
	arr   []*value // an array (isArr)
	raw   []byte   // a scalar, verbatim
	isObj bool
	isArr bool
}

type member struct {
	key string
	val *value
}

func (v *value) get(key string) *value {
	for _, m := range v.obj {
		if m.key == key {
			return m.val
		}
	}
	return nil
}

func (v *value) set(key string, x *value) {
	for i, m := range v.obj {
		if m.key == key {
			v.obj[i].val = x
			return
		}
	}
	v.obj = append(v.obj, member{key, x})
}

func (v *value) del(key string) {
	for i, m := range v.obj {
		if m.key == key {
			v.obj = append(v.obj[:i], v.obj[i+1:]...)
			return
		}
	}
}

func parse(b []byte) (*value, error) {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0:
		return nil, io.ErrUnexpectedEOF
	case b[0] == '{':
		dec := json.NewDecoder(bytes.NewReader(b))
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		v := &value{isObj: true}
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return nil, err
			}
			key, ok := t.(string)
			if !ok {
				return nil, fmt.Errorf("object key %v", t)
			}
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, err
			}
			x, err := parse(raw)
			if err != nil {
				return nil, err
			}
			v.obj = append(v.obj, member{key, x})
		}
		return v, nil
	case b[0] == '[':
		var raws []json.RawMessage
		if err := json.Unmarshal(b, &raws); err != nil {
			return nil, err
		}
		v := &value{isArr: true}
		for _, r := range raws {
			x, err := parse(r)
			if err != nil {
				return nil, err
			}
			v.arr = append(v.arr, x)
		}
		return v, nil
	default:
		return &value{raw: b}, nil
	}
}

// write renders v as encoding/json's MarshalIndent(v, "", "  ") does, which is how the generator
// writes the document.
func write(w *bytes.Buffer, v *value, indent string) {
	switch {
	case v.isObj:
		if len(v.obj) == 0 {
			w.WriteString("{}")
			return
		}
		w.WriteString("{\n")
		for i, m := range v.obj {
			key, _ := json.Marshal(m.key)
			w.WriteString(indent + "  ")
			w.Write(key)
			w.WriteString(": ")
			write(w, m.val, indent+"  ")
			if i < len(v.obj)-1 {
				w.WriteByte(',')
			}
			w.WriteByte('\n')
		}
		w.WriteString(indent + "}")
	case v.isArr:
		if len(v.arr) == 0 {
			w.WriteString("[]")
			return
		}
		w.WriteString("[\n")
		for i, x := range v.arr {
			w.WriteString(indent + "  ")
			write(w, x, indent+"  ")
			if i < len(v.arr)-1 {
				w.WriteByte(',')
			}
			w.WriteByte('\n')
		}
		w.WriteString(indent + "]")
	default:
		w.Write(v.raw)
	}
}
