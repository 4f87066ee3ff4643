package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	ab "github.com/agentbackend/agentbackend"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const readOnlyJSON = `{
  "read":  {"rules": [{"pattern": "**/.env", "action": "deny", "reason": "secrets"}]},
  "write": {"default": "deny"}, "delete": {"default": "deny"}, "exec": {"default": "deny"}
}`

func TestPermissionsFlag(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(readOnlyJSON), 0o644)
	badAction := filepath.Join(dir, "bad-action.json")
	os.WriteFile(badAction, []byte(`{"exec": {"rules": [{"pattern": "go test *", "action": "yes"}]}}`), 0o644)
	badField := filepath.Join(dir, "bad-field.json")
	os.WriteFile(badField, []byte(`{"exec": {"default": "deny"}, "wirte": {}}`), 0o644)
	badPattern := filepath.Join(dir, "bad-pattern.json")
	os.WriteFile(badPattern, []byte(`{"read": {"rules": [{"pattern": "[", "action": "deny"}]}}`), 0o644)

	cfg, err := parseDaemonArgs([]string{"--rootDir", "/w", "--permissions", good, "--local-only"})
	if err != nil || cfg.Permissions == nil || cfg.Permissions.Exec.Default != ab.Deny || cfg.Permissions.Read.Rules[0].Reason != "secrets" {
		t.Fatalf("good file: %+v %v", cfg, err)
	}
	for _, c := range []struct{ file, want string }{
		{filepath.Join(dir, "missing.json"), "--permissions " + filepath.Join(dir, "missing.json") + ": no such file or directory"},
		{badAction, `--permissions ` + badAction + `: exec.rules[0].action: invalid action "yes"`},
		{badField, `--permissions ` + badField + `: unknown field "wirte"`},
		{badPattern, `--permissions ` + badPattern + `: read.rules[0].pattern: invalid glob "["`},
	} {
		_, err := parseDaemonArgs([]string{"--rootDir", "/w", "--permissions", c.file, "--local-only"})
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--permissions %s: %v, want %q", filepath.Base(c.file), err, c.want)
		}
	}
	if _, err := parseDaemonArgs([]string{"--rootDir", "/w", "--permissions"}); err == nil || !strings.Contains(err.Error(), "--permissions requires a value") {
		t.Errorf("--permissions without a value: %v", err)
	}
}

// The daemon as a process with a read-only policy: no writing tools, the
// secret refused with its reason, reading allowed.
func TestLocalOnlyWithPermissions(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("hello\n"), 0o644)
	os.WriteFile(filepath.Join(dir, ".env"), []byte("TOKEN=1\n"), 0o644)
	policy := filepath.Join(t.TempDir(), "policy.json")
	os.WriteFile(policy, []byte(readOnlyJSON), 0o644)
	cmd := cli("daemon", "--rootDir", dir, "--permissions", policy, "--isolation", "none", "--local-only")
	client := mcp.NewClient(&mcp.Implementation{Name: "test"}, &mcp.ClientOptions{Capabilities: &mcp.ClientCapabilities{}})
	ctx := context.Background()
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	for _, name := range []string{"write_file", "edit_file", "move_file", "create_directory", "exec"} {
		if slices.Contains(names, name) {
			t.Errorf("tools/list offers %s under a read-only policy: %q", name, names)
		}
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "read_text_file", Arguments: map[string]any{"path": ".env"}})
	if err != nil {
		t.Fatal(err)
	}
	if text := res.Content[0].(*mcp.TextContent).Text; !res.IsError || !strings.Contains(text, `rule "**/.env" denies read (secrets)`) {
		t.Errorf("read .env: %q (isError %v)", text, res.IsError)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "read_text_file", Arguments: map[string]any{"path": "a.txt"}})
	if err != nil || res.IsError || res.Content[0].(*mcp.TextContent).Text != "hello\n" {
		t.Errorf("read a.txt: %v %v", res, err)
	}
	if err := cs.Close(); err != nil && !errors.Is(err, io.EOF) {
		t.Logf("close: %v", err)
	}
}
