package agentmcp_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/agentmcp"
	"github.com/agentbackend/agentbackend/internal/testenv"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(stdioFloorEnv) == "1" {
		serveStdioFloor(os.Stdin, os.Stdout)
		os.Exit(0)
	}
	code := m.Run()
	testenv.RemoveCLI()
	if code == 0 {
		// Every session, server and process must be gone by now.
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

// noLeaks checks, when the test ends, that it left no goroutine behind.
// Call it first, so that its check runs after every other cleanup.
func noLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// newLocal returns a Local backend on a fresh directory, without bwrap
// (isolation none) unless cfg asks, closed when the test ends.
func newLocal(t testing.TB, cfg ab.LocalConfig) *ab.LocalBackend {
	t.Helper()
	if cfg.RootDir == "" {
		cfg.RootDir = t.TempDir()
	}
	if cfg.Isolation == ab.IsolationAuto {
		cfg.Isolation = ab.IsolationNone
	}
	b, err := ab.NewLocal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func newMemory(t testing.TB, root string) *ab.MemoryBackend {
	t.Helper()
	b, err := ab.NewMemory(ab.MemoryConfig{RootDir: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// connect returns a client session served in process, closed with b.
func connect(t testing.TB, b ab.FileBackend) *mcp.ClientSession {
	t.Helper()
	cs, err := agentmcp.Connect(context.Background(), b, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// result is a tool result reduced to what tests compare.
type result struct {
	Text    string
	IsError bool
	Raw     *mcp.CallToolResult
}

// call calls a tool; a protocol error fails the test.
func call(t testing.TB, cs *mcp.ClientSession, name string, args any) result {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s(%v): protocol error: %v", name, args, err)
	}
	var sb strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			sb.WriteString(tc.Text)
		}
	}
	return result{Text: sb.String(), IsError: res.IsError, Raw: res}
}

// want checks a successful call's text.
func want(t testing.TB, cs *mcp.ClientSession, name string, args any, text string) {
	t.Helper()
	r := call(t, cs, name, args)
	if r.IsError || r.Text != text {
		t.Errorf("%s(%s):\n got %q (isError %v)\nwant %q", name, jsonOf(args), r.Text, r.IsError, text)
	}
}

// wantError checks a call fails as a tool error whose text is text.
func wantError(t testing.TB, cs *mcp.ClientSession, name string, args any, text string) {
	t.Helper()
	r := call(t, cs, name, args)
	if !r.IsError || r.Text != text {
		t.Errorf("%s(%s): want error %q, got %q (isError %v)", name, jsonOf(args), text, r.Text, r.IsError)
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

type obj = map[string]any

// buildCLI builds cmd/agent-backend once for the tests that run it as a
// process and returns the executable's path.
func buildCLI(t testing.TB) string { return testenv.BuildCLI(t) }
