# Sluice — run `make help` for the targets.
SHELL := bash
GO    ?= go
BIN   := $(CURDIR)/bin
export PATH := $(BIN):$(PATH)

BUF_VERSION              := v1.75.0
PROTOC_GEN_GO_VERSION    := v1.36.12
PROTOC_GEN_GRPC_VERSION  := v1.6.0
GRPC_GATEWAY_VERSION     := v2.33.0
STATICCHECK_VERSION      := v0.8.2
BENCHSTAT_VERSION        := v0.0.0-20260908200009-22c9c6c9d4da

CONFIG ?= deploy/examples/sluice.yaml

.PHONY: help run test test-short bench demo proto proto-check lint tools tidy-check fmt-check build

help: ## show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'

run: ## run sluice on the embedded store with the example config
	$(GO) run ./cmd/sluice serve --config $(CONFIG)

test: ## run the whole suite (unit + real redis-server integration), with -race
	$(GO) vet -race ./...   # -race: vet type-checks against the same race-built packages the tests use, so they compile once
	$(GO) test -race -count=1 -timeout 20m ./...

test-short: ## run the fast tests only
	$(GO) test -race -short ./...

build: ## build bin/sluice and bin/sluice-gateway
	$(GO) build -o $(BIN)/sluice ./cmd/sluice
	$(GO) build -o $(BIN)/sluice-gateway ./cmd/sluice-gateway

bench: ## load-test sluice against its own redis-server and print the numbers
	$(GO) run ./bench $(BENCH_ARGS)

demo: ## run sluice (embedded store), two demo backends and sluice-gateway on :9090; Ctrl-C stops all
	$(GO) build -o $(BIN)/sluice ./cmd/sluice
	$(GO) build -o $(BIN)/sluice-gateway ./cmd/sluice-gateway
	$(GO) build -o $(BIN)/sluice-demo-backend ./cmd/sluice-demo-backend
	@trap 'kill $$(jobs -p) 2>/dev/null; wait' EXIT INT TERM; \
	$(BIN)/sluice serve --config deploy/gateway/sluice.yaml --grpc-addr 127.0.0.1:8081 --http-addr 127.0.0.1:8080 & \
	$(BIN)/sluice-demo-backend --listen 127.0.0.1:9101 --name production & \
	$(BIN)/sluice-demo-backend --listen 127.0.0.1:9102 --name sandbox & \
	sleep 1; $(BIN)/sluice-gateway --config deploy/gateway/gateway.yaml & \
	wait

tools: ## install pinned tools into ./bin from the Go module proxy
	GOBIN=$(BIN) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GRPC_VERSION)
	GOBIN=$(BIN) $(GO) install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(GRPC_GATEWAY_VERSION)
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	GOBIN=$(BIN) $(GO) install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION)

lint: ## staticcheck, gofmt and buf lint (after make tools)
	$(BIN)/staticcheck ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(BIN)/buf lint

proto: ## regenerate the Go code of proto/ (offline, local plugins)
	$(BIN)/buf lint
	$(BIN)/buf generate

proto-check: proto ## fail when the committed generated code is stale
	git diff --exit-code -- proto/

fmt-check: ## fail when gofmt would change a file
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)

tidy-check: ## fail when go.mod/go.sum are not tidy
	$(GO) mod tidy
	git diff --exit-code -- go.mod go.sum
