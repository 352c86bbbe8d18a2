package config

import (
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"time"

	"github.com/mgx-ai/mgx/pkg/internal/redact"
)

// Redacted is what LogValue shows instead of a secret that is set. An unset
// secret shows as "", so operators can still tell the two apart.
const Redacted = "[REDACTED]"

// LogValue renders a config struct (or a pointer to one) for logging, keyed
// by environment variable name so an operator sees exactly what to set:
//
//	logger.Info("config loaded", "config", config.LogValue(cfg))
//
// Fields tagged `secret:"true"` show as Redacted. As a second line of
// defence, so would a variable whose name looks like a credential
// (…_TOKEN, …_PASSWORD, …_SECRET, …_API_KEY) even if someone forgot the tag,
// and passwords inside URL values (redis://:pw@host) are masked, because
// connection strings are where secrets hide in practice. Nested
// structs are flattened with their `envPrefix`; fields without an `env` tag
// are left out.
func LogValue(cfg any) slog.Value {
	v := reflect.ValueOf(cfg)
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return slog.StringValue("<nil>")
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return slog.StringValue(fmt.Sprintf("<%s>", v.Kind()))
	}
	return slog.GroupValue(appendAttrs(nil, v, "")...)
}

func appendAttrs(attrs []slog.Attr, v reflect.Value, prefix string) []slog.Attr {
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		fv := v.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("env"), ",")
		if name == "" {
			if fv.Kind() == reflect.Struct {
				attrs = appendAttrs(attrs, fv, prefix+sf.Tag.Get("envPrefix"))
			} else if fv.Kind() == reflect.Pointer && fv.Type().Elem().Kind() == reflect.Struct && !fv.IsNil() {
				attrs = appendAttrs(attrs, fv.Elem(), prefix+sf.Tag.Get("envPrefix"))
			}
			continue
		}
		key := prefix + name
		secret := sf.Tag.Get("secret") == "true" || redact.SecretName(key)
		attrs = append(attrs, slog.Attr{Key: key, Value: fieldValue(fv, secret)})
	}
	return attrs
}

func fieldValue(fv reflect.Value, secret bool) slog.Value {
	if secret {
		if fv.IsZero() {
			return slog.StringValue("")
		}
		return slog.StringValue(Redacted)
	}
	if fv.Kind() == reflect.Pointer && fv.IsNil() {
		return slog.StringValue("")
	}
	switch x := fv.Interface().(type) {
	case string:
		return slog.StringValue(redact.URL(x))
	case time.Duration:
		return slog.StringValue(x.String())
	case fmt.Stringer:
		return slog.StringValue(redact.URL(x.String()))
	}
	switch fv.Kind() {
	case reflect.Bool:
		return slog.BoolValue(fv.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return slog.Int64Value(fv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return slog.Uint64Value(fv.Uint())
	case reflect.Float32, reflect.Float64:
		return slog.Float64Value(fv.Float())
	default:
		return slog.StringValue(redact.URL(fmt.Sprint(fv.Interface())))
	}
}
