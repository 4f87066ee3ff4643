package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/agentmcp"
	"github.com/agentbackend/agentbackend/internal/nettest"
	"github.com/agentbackend/agentbackend/internal/testenv"
)

// These tests run the CLI as a user does: built with `go build`, started as
// a process, reached over loopback.

// daemonProc is a running `agent-backend daemon`.
type daemonProc struct {
	cmd    *exec.Cmd
	port   int
	root   string
	mu     sync.Mutex
	stderr bytes.Buffer
}

func (p *daemonProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.Write(b)
}

func (p *daemonProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// freeLoopbackPort returns a port free on 127.0.0.1 (and ::1) just now.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startCLIDaemon starts the built CLI's HTTP daemon on a free port with
// args, waits until /health answers on 127.0.0.1, and stops it (SIGTERM)
// when t ends.
func startCLIDaemon(t *testing.T, env []string, args ...string) *daemonProc {
	t.Helper()
	p := &daemonProc{port: freeLoopbackPort(t), root: t.TempDir()}
	args = append([]string{"daemon", "--rootDir", p.root, "--port", fmt.Sprint(p.port),
		"--ssh-host-key", filepath.Join(t.TempDir(), "key")}, args...)
	p.cmd = exec.Command(testenv.BuildCLI(t), args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = p
	require.NoError(t, p.cmd.Start())
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(os.Interrupt)
		assert.NoError(t, p.cmd.Wait(), "daemon exit; log:\n%s", p.log())
	})
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/health", p.port))
		if err == nil {
			resp.Body.Close()
			return p
		}
		require.True(t, time.Now().Before(deadline), "daemon not up: %v\n%s", err, p.log())
		time.Sleep(20 * time.Millisecond)
	}
}

// hasIPv6Loopback reports whether this host can listen on ::1.
func hasIPv6Loopback() bool {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// nonLoopbackIP returns an address of this host that is not loopback, or
// nil when it has none.
func nonLoopbackIP() net.IP {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP
		}
	}
	return nil
}

// TestCLIWithoutTokenListensOnLoopbackOnly: no token, no --bind: the
// daemon answers on 127.0.0.1 and ::1, says so in a warning, and nobody
// reaches it on the host's other addresses.
func TestCLIWithoutTokenListensOnLoopbackOnly(t *testing.T) {
	t.Parallel()
	p := startCLIDaemon(t, nil, "--isolation", "none")
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	hosts := []string{"127.0.0.1"}
	if hasIPv6Loopback() {
		hosts = append(hosts, "::1")
	}
	for _, host := range hosts {
		resp, err := client.Get(fmt.Sprintf("http://%s/health", net.JoinHostPort(host, fmt.Sprint(p.port))))
		if assert.NoError(t, err, host) {
			resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode, host)
		}
	}
	if ip := nonLoopbackIP(); ip != nil {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(ip.String(), fmt.Sprint(p.port)), 5*time.Second)
		if err == nil {
			conn.Close()
		}
		assert.Error(t, err, "the daemon without a token answered on %s", ip)
	}
	assert.Contains(t, p.log(), "no auth token: serving on loopback only")
}

// TestCLIRefusesPublicAddressWithoutToken: asking for an address other
// hosts reach, without a token, fails at start and names the flag to add.
func TestCLIRefusesPublicAddressWithoutToken(t *testing.T) {
	t.Parallel()
	for _, bind := range []string{"0.0.0.0", "::", "[::]"} {
		cmd := exec.Command(testenv.BuildCLI(t), "daemon", "--rootDir", t.TempDir(), "--bind", bind,
			"--port", fmt.Sprint(freeLoopbackPort(t)), "--ssh-host-key", filepath.Join(t.TempDir(), "key"))
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "--bind %s without a token: %s", bind, out)
		assert.Equal(t, 1, ee.ExitCode())
		assert.Contains(t, string(out), "refusing to serve")
		assert.Contains(t, string(out), "--auth-token")
		assert.Contains(t, string(out), "--insecure-no-auth-public")
	}
}

// TestCLIUnauthorizedChallenge: a 401 carries WWW-Authenticate: Bearer.
func TestCLIUnauthorizedChallenge(t *testing.T) {
	t.Parallel()
	p := startCLIDaemon(t, nil, "--auth-token", "tok", "--isolation", "none")
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Post(fmt.Sprintf("http://127.0.0.1:%d/mcp", p.port), "application/json", strings.NewReader(`{}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.True(t, strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer"), "WWW-Authenticate: %q", resp.Header.Get("WWW-Authenticate"))
	assert.NotContains(t, resp.Header.Get("WWW-Authenticate"), "resource_metadata")
}

// TestCLIClosesIdleConnections: connections that made one request and went
// quiet are closed by the daemon (after its default idle timeout).
func TestCLIClosesIdleConnections(t *testing.T) {
	t.Parallel()
	p := startCLIDaemon(t, nil, "--auth-token", "tok", "--isolation", "none")
	assert.NoError(t, nettest.IdleClosed(fmt.Sprintf("127.0.0.1:%d", p.port), "/health", 100, time.Minute))
}

// moduleVersion is the version `go version -m` reads from the binary's
// build info, as agentmcp.Version words it.
func moduleVersion(t *testing.T, binary string) string {
	t.Helper()
	out, err := exec.Command("go", "version", "-m", binary).Output()
	require.NoError(t, err)
	for line := range strings.SplitSeq(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "mod" && f[1] == "github.com/agentbackend/agentbackend" {
			if f[2] == "(devel)" {
				return "dev"
			}
			return f[2]
		}
	}
	t.Fatalf("no module line in:\n%s", out)
	return ""
}

// TestCLIOneVersion: `agent-backend version`, /health and the MCP
// handshake over HTTP and over stdio report the same version, the one in
// the binary's build info, and the same reference release.
func TestCLIOneVersion(t *testing.T) {
	t.Parallel()
	bin := testenv.BuildCLI(t)
	want := moduleVersion(t, bin)
	out, err := exec.Command(bin, "version").Output()
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("agent-backend %s (speaks agent-backend %s)\n", want, agentmcp.ReferenceVersion), string(out))

	p := startCLIDaemon(t, nil, "--auth-token", "tok", "--isolation", "none")
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/health", p.port))
	require.NoError(t, err)
	var health map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&health))
	resp.Body.Close()
	assert.Equal(t, want, health["version"])
	assert.Equal(t, agentmcp.ReferenceVersion, health["referenceVersion"])

	ctx := context.Background()
	c := mcp.NewClient(&mcp.Implementation{Name: "test"}, nil)
	hc := &http.Client{Transport: bearer{"tok", &http.Transport{}}}
	defer hc.CloseIdleConnections()
	overHTTP, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: fmt.Sprintf("http://127.0.0.1:%d/mcp", p.port), HTTPClient: hc}, nil)
	require.NoError(t, err)
	defer overHTTP.Close()
	overStdio, err := c.Connect(ctx, &mcp.CommandTransport{Command: exec.Command(bin, "daemon", "--rootDir", t.TempDir(), "--local-only", "--isolation", "none")}, nil)
	require.NoError(t, err)
	defer overStdio.Close()
	for name, s := range map[string]*mcp.ClientSession{"http": overHTTP, "stdio": overStdio} {
		info := s.InitializeResult().ServerInfo
		assert.Equal(t, want, info.Version, name)
		assert.Contains(t, info.Description, "agent-backend "+agentmcp.ReferenceVersion, name)
	}
}

type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// TestCLIStdioAnswersBeforeExit pipes a batch of requests into the
// local-only daemon and closes its input at once: every call is answered
// before it exits.
func TestCLIStdioAnswersBeforeExit(t *testing.T) {
	t.Parallel()
	var in bytes.Buffer
	in.WriteString(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"pipe","version":"1"}}}` + "\n")
	in.WriteString(`{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n")
	const calls = 30
	for i := 1; i <= calls; i++ {
		switch i % 3 {
		case 0:
			fmt.Fprintf(&in, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"exec","arguments":{"command":"sleep 0.2; echo %d"}}}`+"\n", i, i)
		case 1:
			fmt.Fprintf(&in, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"write_file","arguments":{"path":"f%d.txt","content":"%d"}}}`+"\n", i, i, i)
		default:
			fmt.Fprintf(&in, `{"jsonrpc":"2.0","id":%d,"method":"tools/list"}`+"\n", i)
		}
	}
	dir := t.TempDir()
	cmd := exec.Command(testenv.BuildCLI(t), "daemon", "--rootDir", dir, "--local-only", "--isolation", "none")
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "stderr: %s", stderr.String())
	answered := map[int]bool{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		var msg struct {
			ID     *int            `json:"id"`
			Error  json.RawMessage `json:"error"`
			Result json.RawMessage `json:"result"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &msg), line)
		require.NotNil(t, msg.ID, line)
		assert.Nil(t, msg.Error, line)
		answered[*msg.ID] = true
	}
	assert.Len(t, answered, calls+1, "answers to the initialize and every call")
	for i := 1; i <= calls; i += 3 {
		data, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("f%d.txt", i)))
		if assert.NoError(t, err) {
			assert.Equal(t, fmt.Sprint(i), string(data))
		}
	}
}

// TestCLICommandsNeverSeeTheToken starts the daemon the way a container
// entrypoint does (the token in AUTH_TOKEN, passed on with --auth-token)
// and runs `env` every way a client can: MCP exec, MCP background, SSH
// exec, SSH background. None of them sees the token.
func TestCLICommandsNeverSeeTheToken(t *testing.T) {
	t.Parallel()
	const token = "s3cret-T0ken-for-the-daemon"
	p := startCLIDaemon(t, []string{"AUTH_TOKEN=" + token, "MCP_AUTH_TOKEN=other-secret", "COPY_OF_IT=Bearer " + token, "UNRELATED=host-only"},
		"--auth-token", token, "--isolation", "none")
	rb, err := ab.NewRemote(ab.RemoteConfig{Host: "127.0.0.1", Port: p.port, RootDir: p.root, AuthToken: token, InsecureIgnoreHostKey: true})
	require.NoError(t, err)
	defer rb.Close()
	ctx := context.Background()
	cs, err := agentmcp.ConnectRemote(ctx, rb, "")
	require.NoError(t, err)

	call := func(name string, args map[string]any) string {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
		require.NoError(t, err)
		require.False(t, res.IsError, "%s: %v", name, res.Content)
		return res.Content[0].(*mcp.TextContent).Text
	}
	envs := map[string]string{}
	envs["mcp exec"] = call("exec", map[string]any{"command": "env"})
	started := call("run_in_background", map[string]any{"command": "env"})
	_, id, ok := strings.Cut(started, "(shell_id ")
	require.True(t, ok, "run_in_background: %q", started)
	id, _, _ = strings.Cut(id, ")")
	var bg strings.Builder
	for range 10 { // the output comes at once; each read waits up to 5 s for it
		bg.WriteString(call("read_output", map[string]any{"shell_id": id, "wait_seconds": 5}))
		if strings.Contains(bg.String(), "PATH=") {
			break
		}
	}
	envs["mcp background"] = bg.String()
	res, err := rb.Exec(ctx, "env", nil)
	require.NoError(t, err)
	envs["ssh exec"] = string(res.Stdout)
	proc, err := rb.Start(ctx, "env", nil)
	require.NoError(t, err)
	res, err = proc.Wait(ctx)
	require.NoError(t, err)
	envs["ssh background"] = string(res.Stdout)

	for how, env := range envs {
		assert.Contains(t, env, "PATH=", "%s: not an environment listing", how)
		assert.NotContains(t, env, "UNRELATED", "%s: commands get the minimal environment", how)
		assert.NotContains(t, env, token, how)
		assert.NotContains(t, env, "AUTH_TOKEN", how)
		assert.NotContains(t, env, "other-secret", how)
	}
	assert.Len(t, envs, 4)
}

// TestCLIAttackTokenInProcessList: a token given with --auth-token-file
// is nowhere in the daemon's command line or environment, which every local
// user (the command line) and every command of isolation none or software
// (both: they run as the daemon's user) can read in /proc.
func TestCLIAttackTokenInProcessList(t *testing.T) {
	t.Parallel()
	const token = "tok3n-fr0m-a-file-9Zq"
	file := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(file, []byte(token+"\n"), 0o600))
	for _, iso := range []string{"none", "software"} {
		t.Run(iso, func(t *testing.T) {
			p := startCLIDaemon(t, nil, "--auth-token-file", file, "--isolation", iso)
			rb, err := ab.NewRemote(ab.RemoteConfig{Host: "127.0.0.1", Port: p.port, RootDir: p.root, AuthToken: token, InsecureIgnoreHostKey: true})
			require.NoError(t, err)
			defer rb.Close()
			require.NoError(t, rb.Write(context.Background(), "pattern", []byte(token))) // not on grep's own command line
			res, err := rb.Exec(context.Background(), "grep -a -l -F -f pattern /proc/[0-9]*/cmdline /proc/[0-9]*/environ; echo scanned", nil)
			require.NoError(t, err)
			assert.Equal(t, "scanned\n", string(res.Stdout), "a command found the token in /proc")
			for _, f := range []string{"cmdline", "environ"} {
				data, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", p.cmd.Process.Pid, f))
				require.NoError(t, err)
				assert.NotContains(t, string(data), token, "the daemon's %s holds the token", f)
			}
			bad, err := ab.NewRemote(ab.RemoteConfig{Host: "127.0.0.1", Port: p.port, RootDir: p.root, AuthToken: "wrong", InsecureIgnoreHostKey: true})
			require.NoError(t, err)
			defer bad.Close()
			_, err = bad.Exec(context.Background(), "true", nil)
			assert.Error(t, err, "the daemon took a wrong token")
		})
	}
}
