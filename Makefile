# chokepoint: two commands on a fresh machine.
#   make run   serve the embedded example (xDS :15010, admin 127.0.0.1:15014)
#   make test  run every test
#   make kube-tools  build kube-apiserver for the Kubernetes integration tests

GO ?= go
BIN := bin/chokepoint
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

EXAMPLE := examples/httpbin-passthrough
SIDECAR := sidecar~10.244.2.7~sleep-6d8f.mesh-test~mesh-test.svc.cluster.local
GATEWAY := router~10.244.1.20~istio-egressgateway-7c9d.istio-system~istio-system.svc.cluster.local

.PHONY: build run translate-example trace-example test bench fuzz golden load kube-tools

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/chokepoint

run: build
	$(BIN) serve -f $(EXAMPLE)

# The translation alone, for the example's two proxies.
translate-example: build
	@echo "== sidecar $(SIDECAR)"
	$(BIN) translate -f $(EXAMPLE) --node '$(SIDECAR)' --labels app=sleep -o yaml
	@echo "== egress gateway $(GATEWAY)"
	$(BIN) translate -f $(EXAMPLE) --node '$(GATEWAY)' --labels app=istio-egressgateway,istio=egressgateway -o yaml

# The seed call traced through both hops, and one that is blackholed.
trace-example: build
	$(BIN) trace -f $(EXAMPLE) --node '$(SIDECAR)' --labels app=sleep --sni httpbin.org --port 443
	$(BIN) trace -f $(EXAMPLE) --node '$(SIDECAR)' --labels app=sleep --sni example.com --port 443

test:
	$(GO) vet ./...
	$(GO) test -count=1 ./...

# kube-apiserver for test/kubeenv, built into ~/.cache/chokepoint/bin (several
# minutes the first time, nothing when up to date). etcd comes from Debian:
# apt-get install etcd-server. Without them those tests skip.
kube-tools:
	GO=$(GO) test/tools/kube-apiserver/build.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./translate

# 1,000 ADS clients in 20 proxy classes on 5,000 ServiceEntries (see test/load).
load:
	$(GO) run ./test/load

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzTranslate -fuzztime 60s ./translate

# Regenerate golden files; review the diff like code before committing.
golden:
	$(GO) test ./translate -run TestScenarios -update
	$(GO) test ./trace -run TestGolden -update
	$(GO) test ./analyze -run TestCases -update
