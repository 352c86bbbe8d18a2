// Package stack is the composition root of `make run`: it brings up Redis, then sandboxd, agentd and
// the gateway as child processes with embedded defaults, waits until the edge reports every service
// healthy, and takes everything down in reverse order on a signal or when any child dies.
package stack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/mgx-ai/mgx/deploy/local/internal/devredis"
	"github.com/mgx-ai/mgx/deploy/local/internal/supervisor"
)

// Config is read from the environment; everything else is passed through to the services unchanged.
type Config struct {
	BinDir        string
	RunDir        string // MGX_RUN_DIR: Redis data and per-sandbox state for local runs.
	GatewayListen string // GATEWAY_LISTEN
	ForceEmbedded bool   // MGX_EMBEDDED_REDIS=1: use the in-process Redis even when redis-server exists.
	Out           io.Writer
}

// FromEnv builds the launcher's config with the defaults of a fresh machine.
func FromEnv() (Config, error) {
	exe, err := os.Executable()
	if err != nil {
		return Config{}, fmt.Errorf("locate launcher: %w", err)
	}
	return Config{
		BinDir:        filepath.Dir(exe),
		RunDir:        envOr("MGX_RUN_DIR", filepath.Join(".cache", "run")),
		GatewayListen: envOr("GATEWAY_LISTEN", "127.0.0.1:8000"),
		ForceEmbedded: os.Getenv("MGX_EMBEDDED_REDIS") == "1",
		Out:           os.Stdout,
	}, nil
}

// Run starts the stack and blocks until ctx is cancelled (a signal) or a service dies.
func Run(ctx context.Context, cfg Config, log *slog.Logger) (err error) {
	runDir, err := filepath.Abs(cfg.RunDir)
	if err != nil {
		return err
	}
	redisURL, redisKind := "", "configured: "+os.Getenv("GATEWAY_REDIS_URL")
	if !redisConfigured() {
		red, err := devredis.Start(ctx, filepath.Join(runDir, "redis"), cfg.ForceEmbedded)
		if err != nil {
			return err
		}
		redisURL, redisKind = red.URL, red.Kind
		log.Info("redis ready", "kind", red.Kind, "url", red.URL)
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = errors.Join(err, red.Stop(stopCtx))
			log.Info("stopped", "service", "redis")
		}()
	} else {
		log.Info("using the configured Redis of every service; starting none")
	}

	env := serviceEnv(redisURL, runDir)
	sup := supervisor.New(log)
	defer func() { err = errors.Join(err, sup.StopAll(15*time.Second)) }()

	// Start order follows the call graph (gateway → agentd → sandboxd) backwards, so every service finds
	// its upstream already listening; StopAll reverses it.
	for _, name := range []string{"sandboxd", "agentd", "gateway"} {
		if _, err := sup.Start(name, filepath.Join(cfg.BinDir, name), env, cfg.Out); err != nil {
			return err
		}
	}

	url := "http://" + cfg.GatewayListen
	if err := waitHealthy(ctx, url+"/healthz", sup.Exited, 90*time.Second); err != nil {
		return err
	}
	printBanner(cfg.Out, url, redisKind)

	select {
	case <-ctx.Done():
		log.Info("signal received; stopping in order: gateway, agentd, sandboxd, redis")
		return nil
	case c := <-sup.Exited:
		return fmt.Errorf("%s exited unexpectedly; stopping the rest: %w", c.Name, c.Err())
	}
}

// redisConfigured reports whether every service already has a Redis URL (a Sentinel, a Cluster, a
// shared server), in which case the launcher starts no Redis of its own.
func redisConfigured() bool {
	for _, k := range []string{"GATEWAY_REDIS_URL", "AGENTD_REDIS_URL", "SANDBOXD_REDIS_URL"} {
		if os.Getenv(k) == "" {
			return false
		}
	}
	return true
}

// serviceEnv gives each service the local defaults unless the developer already set them.
func serviceEnv(redisURL, runDir string) []string {
	var env []string
	set := func(k, v string) {
		if _, ok := os.LookupEnv(k); !ok {
			env = append(env, k+"="+v)
		}
	}
	if redisURL != "" {
		for _, k := range []string{"GATEWAY_REDIS_URL", "AGENTD_REDIS_URL", "SANDBOXD_REDIS_URL"} {
			set(k, redisURL)
		}
	}
	// A fresh secret per run: nothing outside this stack can call the internal APIs.
	set("MGX_INTERNAL_TOKEN", randomHex(24))
	set("SANDBOXD_RUN_DIR", filepath.Join(runDir, "sandboxes"))
	// A local stack owns its sandboxes: Ctrl-C removes them (sessions and history stay in Redis, and a
	// session's sandbox is re-created on its next use), so nothing keeps running after the launcher.
	set("SANDBOXD_DESTROY_ON_EXIT", "true")
	// Nothing balances in front of a local stack, and the launcher stops the services in order: no
	// service needs to keep serving while it reports NOT_SERVING, so Ctrl-C is quick.
	for _, svc := range []string{"GATEWAY", "AGENTD", "SANDBOXD"} {
		set(svc+"_DRAIN_DELAY", "0s")
	}
	// Prometheus metrics of each service, on loopback next to its own port.
	set("GATEWAY_METRICS_LISTEN", "127.0.0.1:8001")
	set("AGENTD_METRICS_LISTEN", "127.0.0.1:8102")
	set("SANDBOXD_METRICS_LISTEN", "127.0.0.1:8203")
	set("MGX_DEMO_EMAIL", "demo@mgx.dev")
	// The original product's demo login, which its frontend's sign-in form is prefilled with.
	set("MGX_DEMO_PASSWORD", "mgx-demo")
	return env
}

func waitHealthy(ctx context.Context, url string, exited <-chan *supervisor.Child, limit time.Duration) error {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if resp, err := client.Get(url); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case c := <-exited:
			return fmt.Errorf("%s exited during start-up: %w", c.Name, c.Err())
		case <-deadline.C:
			return fmt.Errorf("%s did not report healthy within %s", url, limit)
		case <-tick.C:
		}
	}
}

func printBanner(w io.Writer, url, redisKind string) {
	llm := "scripted offline provider (set OPENAI_API_KEY, OPENAI_BASE_URL or ANTHROPIC_API_KEY for a real model)"
	switch {
	case os.Getenv("OPENAI_API_KEY") != "" || os.Getenv("ANTHROPIC_API_KEY") != "":
		llm = "real provider from your API key"
	case os.Getenv("OPENAI_BASE_URL") != "":
		llm = "OpenAI-compatible server at " + os.Getenv("OPENAI_BASE_URL")
	}
	fmt.Fprintf(w, `
MGX is running.
  Console    %[1]s
  API        %[1]s/api   (OpenAPI: %[1]s/api/openapi.json)
  Health     %[1]s/healthz
  Redis      %[2]s
  LLM        %[3]s
  Demo login %[4]s / %[5]s
Stop with Ctrl-C (or kill -TERM %[6]d): every service is stopped in order.

`, url+"/"+consoleNote(), redisKind, llm, envOr("MGX_DEMO_EMAIL", "demo@mgx.dev"), envOr("MGX_DEMO_PASSWORD", "mgx-demo"), os.Getpid())
}

// consoleNote says when the gateway has no web console to serve: without npm, `make build` builds
// none (the gateway looks for bin/console next to its binary, or GATEWAY_CONSOLE_DIR).
func consoleNote() string {
	dir := os.Getenv("GATEWAY_CONSOLE_DIR")
	if dir == "off" {
		return "   (console turned off: GATEWAY_CONSOLE_DIR=off)"
	}
	if dir == "" {
		if exe, err := os.Executable(); err == nil {
			dir = filepath.Join(filepath.Dir(exe), "console")
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "index.html")); err != nil {
		return "   (web console unavailable: install npm with Node.js >= 20.19 and run make build; the API works)"
	}
	return ""
}

func envOr(k, def string) string {
	if v, ok := os.LookupEnv(k); ok && v != "" {
		return v
	}
	return def
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
