package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/internal/testenv"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// The test binary doubles as the CLI: with AGENTBE_TEST_CLI=1 it runs main,
// so the tests can check real exit codes and a real stdio session.
func TestMain(m *testing.M) {
	if os.Getenv("AGENTBE_TEST_CLI") == "1" {
		main()
		return
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		testenv.RemoveCLI()
		os.Exit(code)
	}))
}

func cli(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "AGENTBE_TEST_CLI=1")
	return cmd
}

func TestParseDaemonArgs(t *testing.T) {
	tokens := t.TempDir()
	tokenFile, blankFile := filepath.Join(tokens, "token"), filepath.Join(tokens, "blank")
	require.NoError(t, os.WriteFile(tokenFile, []byte("  tok-from-file \nsecond line\n"), 0o600))
	require.NoError(t, os.WriteFile(blankFile, []byte("\n\n"), 0o600))
	for _, c := range []struct {
		args []string
		want *daemonConfig
		err  string
	}{
		{[]string{"--rootDir", "/w", "--local-only"}, &daemonConfig{RootDir: "/w", LocalOnly: true, Port: 3001}, ""},
		{[]string{"--rootDir", "/w", "--scopePath", "/users/u1", "--isolation", "software", "--shell", "sh", "--local-only"},
			&daemonConfig{RootDir: "/w", ScopePath: "users/u1", Isolation: ab.IsolationSoftware, Shell: ab.ShellSh, LocalOnly: true, Port: 3001}, ""},
		{[]string{"--rootDir", "/w", "--isolation", "auto", "--shell", "auto"}, &daemonConfig{RootDir: "/w", Port: 3001}, ""},
		{[]string{"--rootDir", "/w", "--network", "host"}, &daemonConfig{RootDir: "/w", Port: 3001, Network: ab.NetworkHost}, ""},
		{[]string{"--rootDir", "/w", "--network", "none"}, &daemonConfig{RootDir: "/w", Port: 3001, Network: ab.NetworkNone}, ""},
		{[]string{"--rootDir", "/w", "--network", "allow: github.com, *.pypi.org:443"}, &daemonConfig{RootDir: "/w", Port: 3001, Network: "allow:github.com,*.pypi.org:443"}, ""},
		{[]string{"--rootDir", "/w", "--port", "8080", "--auth-token", "tok", "--disable-ssh-ws", "--ssh-host-key", "/k"},
			&daemonConfig{RootDir: "/w", Port: 8080, AuthToken: "tok", TokenInArgs: true, DisableSSHWS: true, SSHHostKey: "/k"}, ""},
		{[]string{"--rootDir", "/w", "--auth-token-file", tokenFile}, &daemonConfig{RootDir: "/w", Port: 3001, AuthToken: "tok-from-file"}, ""},
		{[]string{"--rootDir", "/w", "--auth-token-file", blankFile}, nil, "holds no token"},
		{[]string{"--rootDir", "/w", "--auth-token-file", filepath.Join(tokens, "missing")}, nil, "--auth-token-file: open"},
		{[]string{"--rootDir", "/w", "--auth-token", "tok", "--auth-token-file", tokenFile}, nil, "give the token one way"},
		{[]string{"--rootDir", "/w", "--bind", "[::1]", "--insecure-no-auth-public"},
			&daemonConfig{RootDir: "/w", Port: 3001, Bind: "::1", InsecureNoAuthPublic: true}, ""},
		{[]string{"--rootDir", "/w", "--bind", "localhost"}, &daemonConfig{RootDir: "/w", Port: 3001, Bind: "localhost"}, ""},
		{[]string{"--rootDir", "/w", "--max-connections", "10", "--max-sessions-per-conn", "3", "--max-execs-per-conn", "2"},
			&daemonConfig{RootDir: "/w", Port: 3001, MaxConnections: 10, MaxSessionsPerConn: 3, MaxExecsPerConn: 2}, ""},
		{[]string{"--rootDir", "/w", "--max-connections", "0"}, nil, "--max-connections must be a whole number from 1"},
		{[]string{"--rootDir", "/w", "--max-sessions-per-conn", "x"}, nil, "--max-sessions-per-conn must be a whole number from 1"},
		{[]string{"--rootDir", "/w", "--max-execs-per-conn"}, nil, "--max-execs-per-conn requires a value"},
		{[]string{"--rootDir", "/w", "--bind", "0.0.0.0:80"}, nil, "--bind must be an IP address or a host name without a port"},
		{[]string{"--rootDir", "/w", "--bind", ""}, nil, "--bind must be"},
		{[]string{"--local-only"}, nil, "--rootDir is required"},
		{[]string{"--rootDir"}, nil, "--rootDir requires a value"},
		{[]string{"--rootDir", "--local-only"}, nil, "--rootDir requires a value"},
		{[]string{"--rootDir", ""}, nil, "--rootDir must not be empty"},
		{[]string{"--rootDir", "/w", "--port", "80"}, nil, "--port must be between 1024-65535"},
		{[]string{"--rootDir", "/w", "--port", "65536"}, nil, "--port must be between 1024-65535"},
		{[]string{"--rootDir", "/w", "--port", "30x"}, nil, "--port must be between 1024-65535"},
		{[]string{"--rootDir", "/w", "--isolation", "docker"}, nil, `invalid isolation mode "docker"`},
		{[]string{"--rootDir", "/w", "--shell", "zsh"}, nil, `invalid shell "zsh"`},
		{[]string{"--rootDir", "/w", "--network", "bridge"}, nil, `invalid network mode "bridge"`},
		{[]string{"--rootDir", "/w", "--network", ""}, nil, `invalid network mode ""`},
		{[]string{"--rootDir", "/w", "--network", "allow:"}, nil, `allows no host`},
		{[]string{"--rootDir", "/w", "--network", "allow:exa*mple.com"}, nil, `a wildcard is only allowed`},
		{[]string{"--rootDir", "/w", "--scopePath", "a/../b"}, nil, "path traversal"},
		{[]string{"--rootDir", "/w", "--scopePath", "/"}, nil, "--scopePath must name a directory"},
		{[]string{"--rootDir", "/w", "--root-dir", "/x"}, nil, "unrecognized option: --root-dir"},
		{[]string{"--rootDir", "/w", "--localOnly"}, nil, "unrecognized option: --localOnly"},
		{[]string{"--rootDir=/w"}, nil, "give the value after a space: --rootDir /w"},
		{[]string{"--rootDir", "/w", "extra"}, nil, "unexpected argument: extra"},
		{[]string{"--rootDir", "/w", "--conventional-ssh"}, nil, "--conventional-ssh is not supported"},
		{[]string{"--rootDir", "/w", "--ssh-users", "a:b"}, nil, "--ssh-users is not supported"},
		{[]string{"--rootDir", "/w", "--ssh-port", "22"}, nil, "--ssh-port is not supported"},
		{[]string{"--rootDir", "/w", "--ssh-public-key", "k"}, nil, "--ssh-public-key is not supported"},
		{[]string{"--rootDir", "/w", "--ssh-authorized-keys", "f"}, nil, "--ssh-authorized-keys is not supported"},
	} {
		got, err := parseDaemonArgs(c.args)
		var ue *usageError
		switch {
		case c.err == "" && (err != nil || !reflect.DeepEqual(got, c.want)):
			t.Errorf("%q: got %+v, %v; want %+v", c.args, got, err, c.want)
		case c.err != "" && (err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: got error %v, want one containing %q", c.args, err, c.err)
		}
	}
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), nil, 0o644) // a file where a root's parent should be
	for _, c := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{nil, 1, "", "Usage:"},
		{[]string{"help"}, 0, "Commands:", ""},
		{[]string{"--help"}, 0, "Commands:", ""},
		{[]string{"version"}, 0, "agent-backend ", ""},
		{[]string{"daemon", "--help"}, 0, "--rootDir <path>", ""},
		{[]string{"frobnicate"}, 1, "", `unknown command "frobnicate"`},
		{[]string{"daemon"}, 1, "", "--rootDir is required"},
		{[]string{"daemon", "--rootDir", dir, "--port", "99999"}, 1, "", "--port must be between 1024-65535"},
		{[]string{"daemon", "--rootDir", dir, "--bogus"}, 1, "", "unrecognized option: --bogus"},
		{[]string{"daemon", "--rootDir", filepath.Join(dir, "f", "x"), "--local-only"}, 1, "", "INVALID_CONFIGURATION: --rootDir: " + filepath.Join(dir, "f", "x") + " is not a directory"},
		{[]string{"daemon", "--rootDir", dir, "--permissions", filepath.Join(dir, "f"), "--local-only"}, 1, "", "--permissions " + filepath.Join(dir, "f") + ": empty input"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			t.Parallel()
			cmd := cli(c.args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.Stdin = strings.NewReader("")
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, c.code, code, "exit status")
			assert.Contains(t, stdout.String(), c.stdout)
			assert.Contains(t, stderr.String(), c.stderr)
		})
	}
}

// TestLocalOnlyServesMCPOnStdio runs the daemon as a process and talks MCP
// to it, with a scope, as an MCP host would.
func TestLocalOnlyServesMCPOnStdio(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "users", "u1"), 0o755)
	os.WriteFile(filepath.Join(dir, "users", "u1", "a.txt"), []byte("in scope\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "top.txt"), []byte("outside the scope\n"), 0o644)
	cmd := cli("daemon", "--rootDir", dir, "--scopePath", "users/u1", "--isolation", "software", "--local-only")
	client := mcp.NewClient(&mcp.Implementation{Name: "test"}, &mcp.ClientOptions{Capabilities: &mcp.ClientCapabilities{}})
	ctx := context.Background()
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	text := func(name string, args map[string]any) (string, bool) {
		t.Helper()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
		if err != nil {
			t.Fatal(err)
		}
		return res.Content[0].(*mcp.TextContent).Text, res.IsError
	}
	if got, _ := text("read_text_file", map[string]any{"path": "a.txt"}); got != "in scope\n" {
		t.Errorf("read in scope: %q", got)
	}
	real, _ := filepath.EvalSymlinks(dir)
	if got, _ := text("list_allowed_directories", map[string]any{}); got != "Allowed directories:\n"+filepath.Join(real, "users", "u1") {
		t.Errorf("allowed directories: %q", got)
	}
	if got, isErr := text("read_text_file", map[string]any{"path": "../../top.txt"}); !isErr || !strings.HasPrefix(got, "Access denied") {
		t.Errorf("escape from the scope: %q", got)
	}
	// Blocking is off: a command the safety list calls dangerous runs.
	if got, isErr := text("exec", map[string]any{"command": "chmod 777 a.txt && echo ok"}); isErr || got != "ok" {
		t.Errorf("exec: %q (error %v)", got, isErr)
	}
	if err := cs.Close(); err != nil && !errors.Is(err, io.EOF) {
		t.Logf("close: %v", err)
	}
	if cmd.ProcessState == nil || !cmd.ProcessState.Success() {
		t.Errorf("daemon did not exit cleanly on EOF: %v", cmd.ProcessState)
	}
}

// TestRunInProcess serves one session through run with pipes, and checks
// that a cancelled context (SIGINT/SIGTERM) stops the daemon cleanly.
func TestRunInProcess(t *testing.T) {
	dir := t.TempDir()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"daemon", "--rootDir", dir, "--local-only", "--isolation", "none"}, inR, outW, &stderr)
	}()
	client := mcp.NewClient(&mcp.Implementation{Name: "test"}, nil)
	cs, err := client.Connect(ctx, &mcp.IOTransport{Reader: outR, Writer: inW}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "write_file", Arguments: map[string]any{"path": "x", "content": "y"}})
	if err != nil || res.IsError {
		t.Fatalf("write_file: %v %v", res, err)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	cs.Close()
	if data, _ := os.ReadFile(filepath.Join(dir, "x")); string(data) != "y" {
		t.Fatalf("file: %q", data)
	}
}
