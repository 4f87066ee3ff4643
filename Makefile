SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

GO ?= go
STATICCHECK_VERSION ?= v0.8.2
BENCH ?= .
PKGS ?= ./...

.PHONY: test vet bench lint cover fuzz examples attack cross

## test: vet, then every test with the race detector (what CI runs)
test: vet
	$(GO) test -race -count=1 -timeout 25m $(PKGS)

## attack: the attack suite (see internal/attacktest) as this user and,
## run as root, again as an unprivileged one (uid 65534), as CI does
attack:
	.ci/attack
	if [ "$$(id -u)" = 0 ]; then .ci/attack 65534; fi

vet:
	$(GO) vet $(PKGS)

## cross: the library, the daemon and the CLI build for macOS and Windows
## too (a Remote client runs anywhere; inotify and bubblewrap are Linux's)
cross:
	GOOS=darwin $(GO) build ./...
	GOOS=windows $(GO) build ./...

## examples: build and run every example (those in this module, then each
## example module of its own), so none can rot; stdin is closed, as in CI.
## examples/kubernetes runs on the cluster $KUBECONFIG names, with
## KUBERNETES_EXAMPLE_ARGS (CI: the test image, no pulling); without a
## KUBECONFIG it is only built.
EXAMPLES := $(sort $(dir $(wildcard examples/*/main.go)))
KUBERNETES_EXAMPLE_ARGS ?=
examples:
	@set -e; for d in $(EXAMPLES); do \
		if [ -f $$d/go.mod ]; then \
			echo "== $$d (own module)"; \
			(cd $$d && $(GO) vet ./... && $(GO) test -count=1 ./... && $(GO) run . </dev/null >/dev/null); \
		elif [ $$d = examples/kubernetes/ ]; then \
			if [ -n "$$KUBECONFIG" ]; then \
				echo "== $$d (on $$KUBECONFIG)"; \
				$(GO) run ./$$d $(KUBERNETES_EXAMPLE_ARGS) </dev/null >/dev/null; \
			else \
				echo "== $$d (built only: KUBECONFIG is not set)"; \
				$(GO) build -o /dev/null ./$$d; \
			fi; \
		else \
			echo "== $$d"; \
			$(GO) run ./$$d </dev/null >/dev/null; \
		fi; \
	done

## bench: every benchmark, each beside its raw baseline, with ratios
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count 1 -timeout 60m $(PKGS) 2>&1 | tee bench.out | $(GO) run ./internal/benchratio

## lint: formatting, vet and staticcheck
lint: vet
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

## cover: test coverage report in cover.html
cover:
	$(GO) test -count=1 -coverprofile=cover.out $(PKGS)
	$(GO) tool cover -html=cover.out -o cover.html
	$(GO) tool cover -func=cover.out | tail -1

## fuzz: a short run of each fuzzer: the path jail, permission path spellings, compiled globs
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzResolve -fuzztime 60s ./internal/pathjail
	$(GO) test -run '^$$' -fuzz FuzzPermissionPaths -fuzztime 60s .
	$(GO) test -run '^$$' -fuzz FuzzGlobMatcher -fuzztime 60s .
