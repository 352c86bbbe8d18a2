// Package app is agentd's composition root: it builds every part from the configuration, serves
// gRPC, runs the run workers, and shuts everything down in order.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"

	"github.com/google/uuid"

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
	"github.com/mgx-ai/mgx/pkg/service"
)

// App is a built agentd.
type App struct {
	log  *slog.Logger
	life *service.Lifecycle
	addr string
}

// New builds agentd and opens its listener; Run serves. On error, whatever was built is closed
// again.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *App, err error) {
	a := &App{log: log, life: service.NewLifecycle(log, cfg.Service)}
	defer func() {
		if err != nil {
			_ = a.life.Close(context.WithoutCancel(ctx))
		}
	}()

	rdb, err := redisclient.New(ctx, cfg.RedisURL, redisclient.WithClientName("agentd"))
	if err != nil {
		return nil, fmt.Errorf("agentd: redis: %w", err)
	}
	a.life.Push("redis", func(context.Context) error { return rdb.Close() })

	cc, err := grpcclient.Dial(cfg.SandboxdAddr, grpcclient.Options{InternalToken: cfg.InternalToken})
	if err != nil {
		return nil, fmt.Errorf("agentd: sandboxd client: %w", err)
	}
	a.life.Push("sandboxd client", func(context.Context) error { return cc.Close() })

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
	rt := runtime.New(st, engine, log.With("replica", replica), runtime.Options{
		Consumer: replica, LeaseTTL: cfg.RunLeaseTTL, MaxConcurrent: cfg.MaxConcurrentRuns, ProviderNotice: notice,
		HistoryTokens: cfg.HistoryTokens,
	})

	srv, hs, err := grpcserver.New(grpcserver.Options{Logger: log, InternalToken: cfg.InternalToken})
	if err != nil {
		return nil, fmt.Errorf("agentd: grpc server: %w", err)
	}
	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	a.life.Push("event hub", func(context.Context) error { stopHub(); return nil })
	server.New(st, st.NewHub(hubCtx), sandboxdv1.NewSandboxServiceClient(cc), reg, log, server.Options{
		LaunchTimeout: cfg.SandboxLaunchTimeout, TailBlock: cfg.EventTailBlockTime, RequeueAfter: cfg.RequeueAfter,
		MaxSessionsPerUser: cfg.MaxSessionsPerUser,
	}).Register(srv)
	server.RegisterArtifacts(srv, st, log)
	lis, err := grpcserver.Listen(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("agentd: %w", err)
	}
	a.addr = lis.Addr().String()
	a.life.GRPC("grpc server", srv, hs, lis)
	// Registered after the server, so the workers stop first and hand their runs back to the queue
	// at once: draining the server waits up to the shutdown timeout for event streams, and runs
	// should not wait that long to move to another replica.
	a.life.Background("run workers", rt.Run)
	return a, nil
}

// Addr is the address the gRPC server listens on.
func (a *App) Addr() string { return a.addr }

// Run serves gRPC and runs the run workers until ctx ends, then drains and stops: the workers hand
// their runs back, the server finishes its calls, the sandboxd client and Redis close.
func (a *App) Run(ctx context.Context) error {
	a.log.Info("agentd serving", "addr", a.addr)
	return a.life.Run(ctx)
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
