// Package app is agentd's composition root: it builds every part from the configuration, serves
// gRPC, runs the run workers, and shuts everything down in order.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"

	"github.com/mgx-ai/mgx/agentd/internal/brief"
	"github.com/mgx-ai/mgx/agentd/internal/config"
	"github.com/mgx-ai/mgx/agentd/internal/llm"
	"github.com/mgx-ai/mgx/agentd/internal/registry"
	"github.com/mgx-ai/mgx/agentd/internal/runtime"
	"github.com/mgx-ai/mgx/agentd/internal/server"
	"github.com/mgx-ai/mgx/agentd/internal/store"
	"github.com/mgx-ai/mgx/agentd/internal/tools"
	"github.com/mgx-ai/mgx/agentd/internal/workflow"
	"github.com/mgx-ai/mgx/pkg/grpcclient"
	"github.com/mgx-ai/mgx/pkg/grpcserver"
	"github.com/mgx-ai/mgx/pkg/redisclient"
	"github.com/mgx-ai/mgx/pkg/shutdown"
)

// Version is set at build time.
var Version = "dev"

// App is a built agentd.
type App struct {
	cfg     config.Config
	log     *slog.Logger
	stack   *shutdown.Stack
	grpc    *grpc.Server
	health  *health.Server
	runtime *runtime.Runtime
}

// New builds agentd. On error, whatever was built is closed again.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *App, err error) {
	a := &App{cfg: cfg, log: log, stack: shutdown.NewStack(log)}
	defer func() {
		if err != nil {
			_ = a.stack.Close(context.Background())
		}
	}()
	if cfg.UsesDevInternalToken() {
		log.Warn("MGX_INTERNAL_TOKEN is the public development token; set your own in production")
	}

	rdb, err := redisclient.New(ctx, cfg.RedisURL, redisclient.WithClientName("agentd"))
	if err != nil {
		return nil, fmt.Errorf("agentd: redis: %w", err)
	}
	a.stack.Push("redis", func(context.Context) error { return rdb.Close() })

	cc, err := grpcclient.Dial(cfg.SandboxdAddr, grpcclient.Options{InternalToken: cfg.InternalToken})
	if err != nil {
		return nil, fmt.Errorf("agentd: sandboxd client: %w", err)
	}
	a.stack.Push("sandboxd client", func(context.Context) error { return cc.Close() })

	reg, err := registry.Load(cfg.AgentsFile, tools.Known)
	if err != nil {
		return nil, fmt.Errorf("agentd: %w", err)
	}
	provider, notice, err := Provider(cfg)
	if err != nil {
		return nil, err
	}
	_, why := cfg.ProviderChoice()
	log.Info("LLM provider", "provider", provider.Name(), "why", why, "model", cfg.Model, "offline", provider.Offline())

	st := store.New(rdb)
	executor, err := a.toolExecutor(cfg, cc, st)
	if err != nil {
		return nil, err
	}
	reg = reg.WithoutTools(executor.Unavailable())
	engine := &workflow.Engine{
		Registry: reg, Provider: provider, Tools: executor, Model: cfg.Model, MaxOutputTokens: cfg.LLMMaxTokens,
		Pricing: cfg.Pricing(), Retry: cfg.RetryPolicy(), MaxContinuations: cfg.LLMMaxContinuations,
		Limits: workflow.Limits{MaxSteps: cfg.MaxSteps, MemberSteps: cfg.MemberMaxSteps, MaxToolCalls: cfg.MaxToolCalls,
			MaxTokens: cfg.MaxTokens, Repetition: cfg.RepeatLimit, MaxInvalid: cfg.MaxInvalid},
		Context:        workflow.Context{Budget: cfg.ContextBudget, KeepToolOutputs: cfg.KeepToolOutputs},
		Briefer:        brief.New(cc),
		LeadToolChoice: cfg.LeadToolChoice,
	}
	replica := cfg.ReplicaID
	if replica == "" {
		host, _ := os.Hostname()
		replica = host + "-" + strconv.Itoa(os.Getpid()) + "-" + uuid.NewString()[:8]
	}
	a.runtime = runtime.New(st, engine, log.With("replica", replica), runtime.Options{
		Consumer: replica, LeaseTTL: cfg.RunLeaseTTL, MaxConcurrent: cfg.MaxConcurrentRuns, ProviderNotice: notice,
		HistoryTokens: cfg.HistoryTokens,
	})

	a.grpc, a.health, err = grpcserver.New(grpcserver.Options{Logger: log, InternalToken: cfg.InternalToken})
	if err != nil {
		return nil, fmt.Errorf("agentd: grpc server: %w", err)
	}
	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	a.stack.Push("event hub", func(context.Context) error { stopHub(); return nil })
	server.New(st, st.NewHub(hubCtx), sandboxdv1.NewSandboxServiceClient(cc), reg, log, server.Options{
		LaunchTimeout: cfg.SandboxLaunchTimeout, TailBlock: cfg.EventTailBlockTime, RequeueAfter: cfg.RequeueAfter,
	}).Register(a.grpc)
	server.RegisterArtifacts(a.grpc, st, log)
	for _, name := range []string{"mgx.agentd.v1.SessionService", "mgx.agentd.v1.ChatService", "mgx.agentd.v1.EventService", "mgx.agentd.v1.AgentService",
		"mgx.agentd.v1.ArtifactService"} {
		a.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	return a, nil
}

// Provider builds the configured LLM provider, and the notice the session shows when it is the
// offline scripted one.
func Provider(cfg config.Config) (llm.Provider, string, error) {
	switch cfg.Provider() {
	case config.ProviderOpenAI:
		pattern, err := cfg.CompletionTokensModels()
		if err != nil {
			return nil, "", fmt.Errorf("agentd: %w", err)
		}
		return llm.NewOpenAI(llm.OpenAIOptions{APIKey: cfg.OpenAIKey, BaseURL: cfg.OpenAIBaseURL, Model: cfg.Model,
			CompletionTokensModels: pattern, IdleTimeout: cfg.LLMIdleTimeout}), "", nil
	case config.ProviderAnthropic:
		return llm.NewAnthropic(llm.AnthropicOptions{APIKey: cfg.AnthropicKey, BaseURL: cfg.AnthropicBaseURL, Model: cfg.Model,
			PromptCache: cfg.LLMPromptCache, IdleTimeout: cfg.LLMIdleTimeout}), "", nil
	}
	script, err := llm.LoadScript(cfg.ScriptFile, map[string]string{"port": strconv.Itoa(cfg.ScriptedPort)})
	if err != nil {
		return nil, "", fmt.Errorf("agentd: %w", err)
	}
	return llm.NewScripted(script),
		"No LLM API key is configured: the team is driven by the scripted offline provider (set OPENAI_API_KEY or ANTHROPIC_API_KEY for a real model).", nil
}

// Serve serves gRPC on lis and runs the run workers until ctx ends, then shuts down in order: stop
// the workers (handing their runs back to the queue at once), health NOT_SERVING and drain gRPC,
// close the sandboxd client and Redis.
func (a *App) Serve(ctx context.Context, lis net.Listener) error {
	rtCtx, stopRuntime := context.WithCancel(context.WithoutCancel(ctx))
	rtDone := make(chan error, 1)
	go func() { rtDone <- a.runtime.Run(rtCtx) }()
	// Pushed first, so it closes after the run workers: draining waits up to the shutdown timeout
	// for event streams, and runs should not wait that long to be handed to another replica.
	a.stack.Push("grpc", func(context.Context) error {
		err := shutdown.GracefulStop(a.grpc, a.health, a.cfg.ShutdownTimeout)
		if errors.Is(err, shutdown.ErrForcedStop) {
			return nil // event streams never end on their own
		}
		return err
	})
	a.stack.Push("run workers", func(ctx context.Context) error {
		stopRuntime()
		select {
		case err := <-rtDone:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	serveErr := make(chan error, 1)
	go func() { serveErr <- a.grpc.Serve(lis) }()
	a.log.Info("agentd serving", "addr", lis.Addr().String())
	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout+5*time.Second)
	defer cancel()
	return errors.Join(err, a.stack.Close(closeCtx))
}
