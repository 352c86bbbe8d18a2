# MGX backend. The two commands that matter: `make run` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

MODULES   := proto pkg gateway agentd sandboxd deploy deploy/local
BIN       := $(CURDIR)/bin
TOOLBIN   := $(BIN)/tools
PROTODEPS := $(CURDIR)/.cache/protodeps
# Third-party .proto imports are copied out of these Go modules (never committed, never fetched from BSR).
GOOGLEAPIS_MOD    := github.com/grpc-ecosystem/grpc-gateway@v1.16.0
PROTOVALIDATE_MOD := github.com/bufbuild/protovalidate@v1.2.2
TOOLS := github.com/bufbuild/buf/cmd/buf \
         google.golang.org/protobuf/cmd/protoc-gen-go \
         google.golang.org/grpc/cmd/protoc-gen-go-grpc \
         github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway \
         github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2 \
         ./openapi-status
# The test budget per package, sized for a loaded 2-core machine: the longest packages (the whole
# stack end to end, Docker sandboxes) take minutes there. Binaries are built before, never inside it.
GOTEST_TIMEOUT ?= 20m
GOTEST_FLAGS   ?= -race -count=1 -timeout $(GOTEST_TIMEOUT)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# One version variable for every binary (pkg/service.Version).
LDFLAGS := -X github.com/mgx-ai/mgx/pkg/service.Version=$(VERSION)
export PATH := $(TOOLBIN):$(PATH)

.PHONY: help
help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

## ---- build and run ----------------------------------------------------------------------------

.PHONY: build
build: console ## build every binary into bin/, and the web console into bin/console
	@mkdir -p $(BIN)
	go build -ldflags='$(LDFLAGS)' -o $(BIN)/ ./gateway/cmd/gateway ./agentd/cmd/agentd ./sandboxd/cmd/sandboxd ./sandboxd/cmd/sandbox-image ./deploy/local/cmd/mgx-local
	# sandbox-agent runs inside arbitrary images, so it must be static.
	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w $(LDFLAGS)' -o $(BIN)/ ./sandboxd/cmd/sandbox-agent

.PHONY: build-static
build-static: ## static binaries of the service images into bin/static/
	@mkdir -p $(BIN)/static
	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w $(LDFLAGS)' -o $(BIN)/static/ ./gateway/cmd/gateway ./agentd/cmd/agentd ./sandboxd/cmd/sandboxd ./sandboxd/cmd/sandbox-agent ./deploy/cmd/mgx-healthcheck

.PHONY: build-test
build-test: build build-static ## everything the tests run, built once before them (pkg/stacktest reads MGX_BIN_DIR)
	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o $(BIN)/ ./sandboxd/internal/sandboxtest/wsecho

# The web console (gateway/console): npm ci when the lock file changed, a Vite build when a source or
# the OpenAPI document did. Without npm (or with a Node.js older than Vite needs) it is skipped with
# a note: the gateway then serves the API alone.
CONSOLE      := gateway/console
CONSOLE_DEPS := $(CONSOLE)/node_modules/.package-lock.json
CONSOLE_SRC  := $(shell find $(CONSOLE)/src $(CONSOLE)/public $(CONSOLE)/scripts -type f 2>/dev/null) \
                $(CONSOLE)/index.html $(CONSOLE)/vite.config.ts $(CONSOLE)/tsconfig.json proto/gen/openapi/mgx.swagger.json
CONSOLE_NODE := $(shell command -v npm >/dev/null 2>&1 && node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.stdout.write(a>20||(a==20&&b>=19)?"ok":"")' 2>/dev/null)

.PHONY: console
ifeq ($(CONSOLE_NODE),ok)
console: $(BIN)/console/index.html ## build the web console into bin/console (needs npm and Node.js >= 20.19)
else
console:
	@echo "npm (with Node.js >= 20.19) not found: the web console is unavailable; the API still builds and runs."
endif

$(CONSOLE_DEPS): $(CONSOLE)/package-lock.json
	cd $(CONSOLE) && npm ci --prefer-offline --no-audit --no-fund
	@touch $@

$(BIN)/console/index.html: $(CONSOLE_DEPS) $(CONSOLE_SRC)
	cd $(CONSOLE) && npm run build

# Without the product sandbox image sandboxd runs the busybox one: `run` says so and how to build it,
# and starts at once; the first build takes minutes, so it only builds when asked.
.PHONY: run
run: build ## start the whole product locally (Ctrl-C stops everything); SANDBOX_IMAGE_BUILD=1 builds the sandbox image first
	@if [ -n "$(SANDBOX_IMAGE_BUILD)" ]; then $(BIN)/sandbox-image; else $(BIN)/sandbox-image --check || true; fi
	exec $(BIN)/mgx-local

## ---- tests -----------------------------------------------------------------------------------

.PHONY: test
DURATIONS := $(CURDIR)/.cache/test-durations
# Screenshots of the browser tests (gateway/e2e), kept after the run; a run starts with none.
ARTIFACTS := $(CURDIR)/.cache/test-artifacts
test: check-tracked check-generated fmt-check check-modules console-test build-test k8s-test-bin ## all tests: unit and integration (real Redis, real Docker when an engine answers, a Kubernetes control plane)
	@mkdir -p $(dir $(DURATIONS)) && : > $(DURATIONS); rm -rf $(ARTIFACTS); rc=0; \
	for m in $(MODULES); do \
	  echo "== go test $$m"; start=$$(date +%s); \
	  if (cd $$m && MGX_BIN_DIR=$(BIN) MGX_TEST_ARTIFACTS=$(ARTIFACTS) go test $(GOTEST_FLAGS) ./...); then res=ok; else res=FAIL; rc=1; fi; \
	  printf '%-14s %5ss  %s\n' "$$m" "$$(( $$(date +%s) - start ))" "$$res" >> $(DURATIONS); \
	done; \
	echo "== go test per module (seconds)"; cat $(DURATIONS); exit $$rc

.PHONY: console-test
ifeq ($(CONSOLE_NODE),ok)
console-test: $(CONSOLE_DEPS) ## the web console's unit tests (type check and vitest)
	cd $(CONSOLE) && npm run gen && npm run typecheck && npx vitest run
else
console-test:
	@if [ "$${CI:-}" = "true" ]; then echo "CI: npm with Node.js >= 20.19 is required for the web console's tests"; exit 1; fi
	@echo "npm (with Node.js >= 20.19) not found: skipping the web console's tests."
endif

.PHONY: bench
bench: bench-sandbox bench-gateway bench-agentd bench-k8s ## every benchmark; each prints the product next to its baseline from the same run

.PHONY: bench-agentd
bench-agentd: ## agentd's Redis bytes per step at 10/50/150 steps: incremental checkpoints vs the whole state rewritten
	cd agentd && go test -run '^$$' -bench CheckpointBytes -benchtime 1x ./internal/runtime/

# The benchmarks are tests behind the `bench` build tag, so they start the product the one way the
# tests do (pkg/stacktest); -v streams their tables.
.PHONY: bench-gateway
bench-gateway: build-test ## REST through the gateway vs direct gRPC (latency, throughput); WebSocket fan-out
	cd gateway && MGX_BIN_DIR=$(BIN) go test -tags bench -run '^TestBench$$' -count=1 -v -timeout 10m ./internal/app

.PHONY: bench-sandbox
bench-sandbox: build-test ## sandboxd vs raw Docker: exec latency, create-to-first-exec cold/warm (claim with volumes), streamed output, resume of a reaped session, checkpoint of 2,000 files
	cd sandboxd && MGX_BIN_DIR=$(BIN) go test -tags bench -run '^TestBench$$' -count=1 -v -timeout 10m ./internal/app

.PHONY: bench-k8s
bench-k8s: build-test k8s-test-bin ## Kubernetes warm pool: a claim (Redis pop + conditional patch) vs a cold pod start, on the simulated cluster
	cd sandboxd && MGX_BIN_DIR=$(BIN) go test -tags bench -run '^TestBenchPool$$' -count=1 -v -timeout 25m ./internal/driver/kubernetes -args -n 10

# The Kubernetes driver's tests run a real control plane (etcd, kube-apiserver, controller manager,
# scheduler) and kwok's simulated nodes, built from the Go module proxy at the versions tools/k8s pins,
# into $(XDG_CACHE_HOME)/mgx/k8s/<hash of those pins>/bin: minutes cold, a no-op in seconds once cached.
.PHONY: k8s-test-bin
k8s-test-bin: ## build the Kubernetes test binaries into ~/.cache/mgx/k8s (cold: about 15 minutes on 2 cores)
	go run ./deploy/cmd/k8s-test-bin

.PHONY: sandbox-image
sandbox-image: ## build the product sandbox image mgx-sandbox:latest without a registry (root + debootstrap; a no-op when current)
	go run ./sandboxd/cmd/sandbox-image

## ---- images --------------------------------------------------------------------------------

IMAGE_TAG ?= latest
IMGCTX    := $(CURDIR)/.cache/images

.PHONY: images
images: build-static ## build the service images locally (FROM scratch: no registry needed)
	@$(MAKE) --no-print-directory docker-images STATIC_BIN=$(BIN)/static

# docker-images assembles each image's context from prebuilt static binaries (STATIC_BIN) and builds
# it; it compiles nothing, so a test can build the images within its budget (deploy/images_test.go).
STATIC_BIN ?= $(BIN)/static
.PHONY: docker-images
docker-images:
	@command -v docker >/dev/null || { echo "docker is required"; exit 1; }
	@rm -rf $(IMGCTX) && mkdir -p $(IMGCTX)
	@for svc in gateway agentd sandboxd; do \
	  ctx=$(IMGCTX)/$$svc; mkdir -p $$ctx; cp -r deploy/docker/rootfs $$ctx/; \
	  cp /etc/ssl/certs/ca-certificates.crt $$ctx/ 2>/dev/null || : > $$ctx/ca-certificates.crt; \
	  cp $(STATIC_BIN)/$$svc $(STATIC_BIN)/mgx-healthcheck $$ctx/; \
	done
	@cp $(STATIC_BIN)/sandbox-agent $(IMGCTX)/sandboxd/
	@for svc in gateway agentd sandboxd; do \
	  echo "== mgx/$$svc:$(IMAGE_TAG)"; \
	  docker build -q -t mgx/$$svc:$(IMAGE_TAG) -f deploy/docker/$$svc.Dockerfile $(IMGCTX)/$$svc; \
	done

## ---- code generation -------------------------------------------------------------------------

.PHONY: tools
tools: ## build the pinned code generators from tools/go.mod into bin/tools
	@mkdir -p $(TOOLBIN)
	cd tools && GOWORK=off go build -o $(TOOLBIN)/ $(TOOLS)

.PHONY: protodeps
protodeps: ## copy third-party .proto imports out of the Go module cache into .cache/protodeps
	@rm -rf $(PROTODEPS) && mkdir -p $(PROTODEPS)/google/api $(PROTODEPS)/buf/validate $(PROTODEPS)/protoc-gen-openapiv2/options
	@gapi=$$(GOWORK=off go mod download -json $(GOOGLEAPIS_MOD) | sed -n 's/^\t"Dir": "\(.*\)",$$/\1/p'); \
	 pv=$$(GOWORK=off go mod download -json $(PROTOVALIDATE_MOD) | sed -n 's/^\t"Dir": "\(.*\)",$$/\1/p'); \
	 gw2=$$(cd tools && GOWORK=off go list -m -f '{{.Dir}}' github.com/grpc-ecosystem/grpc-gateway/v2); \
	 cp $$gapi/third_party/googleapis/google/api/annotations.proto $$gapi/third_party/googleapis/google/api/http.proto $$gapi/third_party/googleapis/google/api/httpbody.proto $(PROTODEPS)/google/api/; \
	 cp $$pv/proto/protovalidate/buf/validate/validate.proto $(PROTODEPS)/buf/validate/; \
	 cp $$gw2/protoc-gen-openapiv2/options/annotations.proto $$gw2/protoc-gen-openapiv2/options/openapiv2.proto $(PROTODEPS)/protoc-gen-openapiv2/options/
	@chmod -R u+w $(PROTODEPS)

.PHONY: generate
generate: tools protodeps ## regenerate Go code and the OpenAPI document from proto/
	buf generate
	@# The success statuses other than 200 that the annotations declare (see tools/openapi-status).
	openapi-status proto/gen/openapi/mgx.swagger.json
	@echo "generated proto/gen"

.PHONY: check-generated
check-generated: generate ## fail when the committed generated code differs from a fresh `make generate`
	@if [ -n "$$(git status --porcelain -- proto/gen)" ]; then \
	  echo "generated code is stale; run 'make generate' and commit:"; git status --porcelain -- proto/gen; \
	  git --no-pager diff --stat -- proto/gen; exit 1; fi
	@echo "generated code is up to date"

## ---- lint ------------------------------------------------------------------------------------

.PHONY: lint
lint: tools protodeps fmt-check ## gofmt, go vet, golangci-lint and buf lint
	@for m in $(MODULES); do echo "== vet $$m"; (cd $$m && GOWORK=off go vet ./...); done
	cd tools && GOWORK=off go build -o $(TOOLBIN)/ github.com/golangci/golangci-lint/v2/cmd/golangci-lint
	@for m in $(MODULES); do echo "== golangci-lint $$m"; (cd $$m && golangci-lint run ./...); done
	buf lint

.PHONY: check-tracked
check-tracked: ## fail on tracked binaries and on tracked files over 1 MB that are not listed fixtures
	@.ci/check-tracked

.PHONY: fmt-check
fmt-check: ## fail on Go files gofmt would change (generated code excluded)
	@bad=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^proto/gen/')); if [ -n "$$bad" ]; then echo "not gofmt-ed:"; echo "$$bad"; exit 1; fi

.PHONY: check-modules
check-modules: ## every module builds and vets alone (GOWORK=off)
	@for m in $(MODULES); do echo "== $$m"; (cd $$m && GOWORK=off go build ./... && GOWORK=off go vet ./...); done

.PHONY: clean
clean: ## remove build outputs
	rm -rf $(BIN) .cache
