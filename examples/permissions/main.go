// Command permissions gives two agents the same project under different
// permissions: a reviewer that may only read (and never the secrets), and
// a builder that must ask a human, on the terminal, before it writes,
// deletes or runs anything but a few harmless commands.
//
//	go run ./examples/permissions
//
// Run in a terminal, the builder's requests are prompted for; run without
// one (a pipe, CI), they are denied without a prompt, and the program still
// runs to the end.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	ab "github.com/agentbackend/agentbackend"
)

func main() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "agentbackend-permissions-")
	check(err)
	defer os.RemoveAll(dir)
	for name, content := range map[string]string{
		"main.go":   "package main\n\nfunc main() { println(\"hello\") } // TODO: flags\n",
		"README.md": "# demo\nTODO: docs\n",
		".env":      "API_KEY=hunter2 # TODO: rotate\n",
	} {
		check(os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	project, err := ab.NewLocal(ab.LocalConfig{RootDir: dir})
	check(err)
	defer project.Close()

	fmt.Println("== reviewer: ReadOnlyPermissions ==")
	reviewer, err := project.Scope(".", &ab.ScopeConfig{Permissions: ab.ReadOnlyPermissions(), User: "reviewer"})
	check(err)
	names, err := reviewer.ReadDir(ctx, ".")
	check(err)
	fmt.Println("ls:", names, "(the secret is not listed)")
	todos, err := ab.Grep(ctx, reviewer, ab.GrepOptions{Pattern: "TODO", Hidden: true})
	check(err)
	fmt.Println("grep TODO:", todos.Files)
	_, err = reviewer.Read(ctx, ".env")
	fmt.Println("read .env:", err)
	fmt.Println("write:", reviewer.Write(ctx, "main.go", nil))
	fmt.Println("exec tool offered:", !ab.AccessDenied(reviewer, ab.AccessExec))

	fmt.Println("\n== builder: StrictPermissions with a terminal approver ==")
	perms := ab.StrictPermissions()
	perms.Exec.Rules = append(perms.Exec.Rules,
		ab.Rule{Pattern: "ls*", Action: ab.Allow},
		ab.Rule{Pattern: "go version", Action: ab.Allow},
		ab.Rule{Pattern: "rm *", Action: ab.Deny, Reason: "delete files with Remove, which asks"},
	)
	perms.Approver = ab.NewTerminalApprover()
	if project.Network() == ab.NetworkHost {
		// Without bubblewrap commands have the host's network, which no
		// scope can filter: a scope asking about hosts would be refused,
		// so say that this network is accepted as it is.
		perms.Network = ab.Policy{}
	}
	builder, err := project.Scope(".", &ab.ScopeConfig{
		Permissions: perms, User: "builder",
		Logger: ab.NewConsoleLogger(os.Stdout, ab.LogStandard), // every decision is logged
	})
	check(err)
	res, err := builder.Exec(ctx, "ls", nil)
	check(err)
	fmt.Printf("ls (allowed by a rule):\n%s", res.Stdout)
	_, err = builder.Exec(ctx, "rm -rf .", nil)
	fmt.Println("rm -rf . :", err)
	err = builder.Write(ctx, "CHANGELOG.md", []byte("- flags\n"))
	switch {
	case err == nil:
		fmt.Println("write CHANGELOG.md: approved")
	case errors.Is(err, ab.ErrNotTerminal):
		fmt.Println("write CHANGELOG.md: denied, nobody at a terminal to ask")
	default:
		fmt.Println("write CHANGELOG.md:", err)
	}
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
