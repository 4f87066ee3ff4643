package agentbackend_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/agentbackend/agentbackend"
)

// A reviewer agent may read the repository but not its secrets, may write
// only under review/, and must ask before running anything but go test.
func ExamplePermissions() {
	ctx := context.Background()
	repo, err := agentbackend.NewMemory(agentbackend.MemoryConfig{InitialData: map[string][]byte{
		"main.go": []byte("package main\n"),
		".env":    []byte("API_KEY=hunter2\n"),
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer repo.Close()

	perms := agentbackend.DefaultPermissions() // secrets denied, the rest allowed
	perms.Write = agentbackend.Policy{Default: agentbackend.Deny, Rules: []agentbackend.Rule{
		{Pattern: "review/**", Action: agentbackend.Allow},
	}}
	perms.Exec = agentbackend.Policy{Default: agentbackend.Ask, Rules: []agentbackend.Rule{
		{Pattern: "go test *", Action: agentbackend.Allow},
	}}
	perms.Approver = agentbackend.ApproverFunc(func(ctx context.Context, req agentbackend.Request) (agentbackend.Decision, error) {
		fmt.Println("asked:", req)
		return agentbackend.DenyOnce, nil
	})
	agent, err := repo.Scope(".", &agentbackend.ScopeConfig{Permissions: perms, User: "reviewer"})
	if err != nil {
		log.Fatal(err)
	}
	defer agent.Close()

	names, _ := agent.ReadDir(ctx, ".")
	fmt.Println("ls:", names)

	_, err = agent.Read(ctx, ".env")
	fmt.Println(err)

	fmt.Println(agent.Write(ctx, "main.go", []byte("package evil\n")))
	fmt.Println(agent.Write(ctx, "review/notes.md", []byte("LGTM\n")))

	_, err = agent.Exec(ctx, "make deploy", nil)
	var d *agentbackend.Denial
	fmt.Println(errors.Is(err, agentbackend.ErrPermissionDenied), errors.As(err, &d) && d.Asked)
	// Output:
	// ls: [main.go]
	// PERMISSION_DENIED: read .env: rule "**/.env" denies read (secrets and credentials are off limits)
	// PERMISSION_DENIED: write main.go: the default write policy denies write
	// <nil>
	// asked: exec "make deploy" by reviewer in / (the default exec policy)
	// true true
}

// Permissions travel as JSON, for configuration files and the CLI's
// --permissions flag; mistakes name the field.
func ExamplePermissionsFromJSON() {
	p, err := agentbackend.PermissionsFromJSON([]byte(`{
		"write": {"default": "deny", "rules": [{"pattern": "src/**", "action": "allow"}]},
		"exec":  {"default": "deny"}
	}`))
	fmt.Println(p.Denies(agentbackend.AccessExec), p.Denies(agentbackend.AccessWrite), err)

	_, err = agentbackend.PermissionsFromJSON([]byte(`{"exec": {"rules": [{"pattern": "make *", "action": "alow"}]}}`))
	fmt.Println(err)
	// Output:
	// true false <nil>
	// INVALID_CONFIGURATION: permissions: exec.rules[0].action: invalid action "alow": want "allow", "deny" or "ask"
}
