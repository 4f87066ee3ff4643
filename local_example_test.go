//go:build unix

package agentbackend_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/agentbackend/agentbackend"
)

// A workspace directory: files through the path jail, commands in it.
func ExampleNewLocal() {
	dir, err := os.MkdirTemp("", "workspace-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// Auto isolation picks bubblewrap when it works here; software
	// isolation keeps this example the same everywhere.
	b, err := agentbackend.NewLocal(agentbackend.LocalConfig{RootDir: dir, Isolation: agentbackend.IsolationSoftware})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()

	if err := b.Write(ctx, "notes/hello.txt", []byte("hello\n")); err != nil {
		log.Fatal(err)
	}
	res, err := b.Exec(ctx, "wc -c < notes/hello.txt", &agentbackend.ExecOptions{Timeout: time.Minute})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(res.Stdout))

	_, err = b.Read(ctx, "../outside.txt")
	fmt.Println(agentbackend.ErrorCode(err))
	_, err = b.Exec(ctx, "false", nil)
	fmt.Println(err)
	// Output:
	// 6
	// PATH_ESCAPE_ATTEMPT
	// EXEC_FAILED: exec "false": Command execution failed with exit code 1:
}

// Commands that reach package registries and nothing else: each runs in
// bubblewrap with no route out but a filtering proxy of its own. A scope's
// permissions can ask a person about other hosts.
func ExampleNetworkAllow() {
	b, err := agentbackend.NewLocal(agentbackend.LocalConfig{
		RootDir:   "/srv/ws",
		Isolation: agentbackend.IsolationBwrap,
		Network:   agentbackend.NetworkAllow("pypi.org", "files.pythonhosted.org", "proxy.golang.org", "github.com"),
	})
	if err != nil {
		log.Fatal(err) // MISSING_UTILITIES without bubblewrap or root
	}
	defer b.Close()
	agent, err := b.Scope("agent", &agentbackend.ScopeConfig{Permissions: &agentbackend.Permissions{
		Network:  agentbackend.Policy{Default: agentbackend.Ask, Rules: []agentbackend.Rule{{Pattern: "*.pythonhosted.org", Action: agentbackend.Allow}, {Pattern: "pypi.org", Action: agentbackend.Allow}}},
		Approver: agentbackend.NewTerminalApprover(),
	}})
	if err != nil {
		log.Fatal(err)
	}
	res, err := agent.Exec(context.Background(), "pip download --no-deps -q requests && curl -sS http://example.com/", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(res.Stdout)) // blocked by network policy: example.com (not in the allow-list)
}
