package agentmcp_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/agentmcp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var backgroundTools = []string{"run_in_background", "read_output", "send_input", "kill_shell", "list_shells"}

var shellIDPattern = regexp.MustCompile(`\(shell_id (bg_[0-9]+)\)`)

// shellID returns the shell_id a start reported.
func shellID(t *testing.T, r result) string {
	t.Helper()
	m := shellIDPattern.FindStringSubmatch(r.Text)
	if r.IsError || m == nil {
		t.Fatalf("no shell_id in %q (isError %v)", r.Text, r.IsError)
	}
	return m[1]
}

// readUntilEnded calls read_output until the process has ended and returns
// everything it returned.
func readUntilEnded(t *testing.T, cs *mcp.ClientSession, id string) string {
	t.Helper()
	var all strings.Builder
	deadline := time.Now().Add(time.Minute)
	for {
		r := call(t, cs, "read_output", obj{"shell_id": id, "wait_seconds": 5})
		if r.IsError {
			t.Fatalf("read_output %s: %q", id, r.Text)
		}
		all.WriteString(r.Text + "\n")
		if !strings.HasPrefix(r.Text, id+" running") {
			return all.String()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not end: %q", id, all.String())
		}
	}
}

func TestBackgroundToolsThroughASession(t *testing.T) {
	noLeaks(t)
	backends := map[string]ab.FileBackend{
		"local": newLocal(t, ab.LocalConfig{}),
		"scope": scopeOf(t, newLocal(t, ab.LocalConfig{}), "sub"),
	}
	if _, err := exec.LookPath("bwrap"); err == nil {
		backends["bwrap"] = newLocal(t, ab.LocalConfig{Isolation: ab.IsolationBwrap})
	}
	for name, b := range backends {
		t.Run(name, func(t *testing.T) {
			cs := connect(t, b)
			names := toolNames(t, cs)
			for _, tool := range backgroundTools {
				if !slices.Contains(names, tool) {
					t.Fatalf("tools/list lacks %s: %q", tool, names)
				}
			}
			want(t, cs, "list_shells", obj{}, "No background processes.")

			id := shellID(t, call(t, cs, "run_in_background", obj{
				"command": `echo "first $WHO"; sleep 0.2; echo second >&2; exit 3`, "env": obj{"WHO": "me"}}))
			r := call(t, cs, "read_output", obj{"shell_id": id, "wait_seconds": 10})
			if r.IsError || !strings.Contains(r.Text, "--- stdout ---\nfirst me") {
				t.Errorf("first read_output: %q", r.Text)
			}
			if r := call(t, cs, "list_shells", obj{}); !strings.HasPrefix(r.Text, id+" ") {
				t.Errorf("list_shells: %q", r.Text)
			}
			rest := readUntilEnded(t, cs, id)
			if !strings.Contains(rest, id+" exited with code 3") || !strings.Contains(rest, "--- stderr ---\nsecond") {
				t.Errorf("read_output to the end: %q", rest)
			}
			// Read to the end: forgotten.
			if r := call(t, cs, "read_output", obj{"shell_id": id}); !r.IsError || !strings.Contains(r.Text, "no background process") {
				t.Errorf("read_output of a collected process: %q (isError %v)", r.Text, r.IsError)
			}

			// exec with background: true, then kill_shell.
			id = shellID(t, call(t, cs, "exec", obj{"command": "echo up; sleep 1000", "background": true}))
			if r := call(t, cs, "read_output", obj{"shell_id": id, "wait_seconds": 10}); !strings.Contains(r.Text, "up") {
				t.Errorf("read_output of the exec'd process: %q", r.Text)
			}
			if r := call(t, cs, "kill_shell", obj{"shell_id": id}); r.IsError || !strings.HasPrefix(r.Text, id+" killed with code 137") {
				t.Errorf("kill_shell: %q (isError %v)", r.Text, r.IsError)
			}
			if r := call(t, cs, "kill_shell", obj{"shell_id": "bg_0"}); !r.IsError {
				t.Errorf("kill_shell of an unknown process: %q", r.Text)
			}

			// The timeout kills it.
			id = shellID(t, call(t, cs, "run_in_background", obj{"command": "sleep 1000", "timeout": 0.2}))
			if rest := readUntilEnded(t, cs, id); !strings.Contains(rest, id+" killed with code 137") {
				t.Errorf("after the timeout: %q", rest)
			}
			// Checked as exec is.
			if r := call(t, cs, "run_in_background", obj{"command": "sudo rm -rf /"}); !r.IsError {
				t.Errorf("a dangerous command started: %q", r.Text)
			}
		})
	}
}

func scopeOf(t *testing.T, b ab.FileBackend, dir string) *ab.ScopedBackend {
	t.Helper()
	s, err := b.Scope(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The background tools are offered only where processes can start, and
// not without exec.
func TestBackgroundToolsOnlyWhereProcessesStart(t *testing.T) {
	noLeaks(t)
	local := newLocal(t, ab.LocalConfig{})
	mem := newMemory(t, "/w")
	comp, err := ab.NewComposite(mem, map[string]ab.FileBackend{"/w/code": local})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { comp.Close() })
	for name, c := range map[string]struct {
		b         ab.FileBackend
		opts      *agentmcp.Options
		want, can bool
	}{
		"memory":       {mem, nil, false, false},
		"local NoExec": {local, &agentmcp.Options{NoExec: true}, false, true},
		"local":        {local, nil, true, true},
		// A route can start processes, but exec (and a start without a
		// working directory) goes to the default backend: not offered.
		"memory default": {comp, nil, false, false},
	} {
		var names []string
		for _, tool := range agentmcp.Tools(c.b, c.opts) {
			names = append(names, tool.Name)
		}
		for _, tool := range backgroundTools {
			if slices.Contains(names, tool) != c.want {
				t.Errorf("%s: %s offered %v, want %v (%q)", name, tool, !c.want, c.want, names)
			}
		}
		if got := agentmcp.CanStartProcesses(c.b); got != c.can {
			t.Errorf("%s: CanStartProcesses = %v", name, got)
		}
	}
	// Under permissions that deny exec outright, none of them.
	s, err := local.Scope(".", &ab.ScopeConfig{Permissions: &ab.Permissions{Exec: ab.Policy{Default: ab.Deny}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tool := range agentmcp.Tools(s, nil) {
		if slices.Contains(backgroundTools, tool.Name) || tool.Name == "exec" {
			t.Errorf("%s offered with exec denied", tool.Name)
		}
	}
}

// The plain definitions run the same code.
func TestBackgroundPlainTools(t *testing.T) {
	noLeaks(t)
	tools := map[string]agentmcp.Tool{}
	for _, tool := range agentmcp.Tools(newLocal(t, ab.LocalConfig{}), nil) {
		tools[tool.Name] = tool
	}
	ctx := context.Background()
	r, err := tools["run_in_background"].Call(ctx, json.RawMessage(`{"command":"echo plain"}`))
	if err != nil {
		t.Fatal(err)
	}
	id := shellIDPattern.FindStringSubmatch(r.Text)[1]
	r, err = tools["read_output"].Call(ctx, json.RawMessage(`{"shell_id":"`+id+`","wait_seconds":10}`))
	if err != nil || !strings.Contains(r.Text, "plain") {
		t.Errorf("read_output: %v, %v", r, err)
	}
	if _, err := tools["read_output"].Call(ctx, json.RawMessage(`{"wait_seconds":1}`)); err == nil {
		t.Error("read_output without shell_id")
	}
}

// read_output continues where the previous read of the process ended,
// whichever tool set made it: a daemon builds one per request, and the
// model's next call must not see the same output again.
func TestReadOutputContinuesAcrossToolSets(t *testing.T) {
	noLeaks(t)
	b := newLocal(t, ab.LocalConfig{})
	toolsOf := func() map[string]agentmcp.Tool {
		m := map[string]agentmcp.Tool{}
		for _, tool := range agentmcp.Tools(b, nil) {
			m[tool.Name] = tool
		}
		return m
	}
	first, second := toolsOf(), toolsOf()
	ctx := context.Background()
	r, err := first["run_in_background"].Call(ctx, json.RawMessage(`{"command":"echo one; read x; echo two"}`))
	require.NoError(t, err)
	id := shellIDPattern.FindStringSubmatch(r.Text)[1]
	arg := json.RawMessage(`{"shell_id":"` + id + `","wait_seconds":10}`)

	r, err = first["read_output"].Call(ctx, arg)
	require.NoError(t, err)
	assert.Contains(t, r.Text, "--- stdout ---\none")
	r, err = second["read_output"].Call(ctx, json.RawMessage(`{"shell_id":"`+id+`"}`))
	require.NoError(t, err)
	assert.Contains(t, r.Text, "(no new output)", "the second tool set read again what the first had read")

	r, err = second["send_input"].Call(ctx, json.RawMessage(`{"shell_id":"`+id+`","text":"go\n","wait_seconds":10}`))
	require.NoError(t, err)
	assert.Contains(t, r.Text, "two")
	assert.NotContains(t, r.Text, "--- stdout ---\none")
	for !strings.Contains(r.Text, "exited with code 0") {
		r, err = first["read_output"].Call(ctx, arg)
		require.NoError(t, err)
	}
	_, err = first["read_output"].Call(ctx, arg)
	assert.ErrorContains(t, err, "no background process", "a process read to its end is forgotten")
}
