package agentmcp_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/agentmcp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// permScope returns a scope of a local workspace (with a secret in it)
// under permissions p.
// strictOnHost is StrictPermissions for the tests' backend, whose
// commands have the host's network (isolation none): a scope cannot filter
// it, so it is accepted as it is.
func strictOnHost() *ab.Permissions {
	p := ab.StrictPermissions()
	p.Network = ab.Policy{}
	return p
}

func permScope(t *testing.T, p *ab.Permissions) *ab.ScopedBackend {
	t.Helper()
	b := newLocal(t, ab.LocalConfig{})
	for path, content := range map[string]string{"src/a.go": "package a\n", ".env": "TOKEN=1\n", "notes.md": "TOKEN in notes\n"} {
		if err := b.Write(context.Background(), path, []byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	s, err := b.Scope(".", &ab.ScopeConfig{Permissions: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

var writingTools = []string{"write_file", "edit_file", "create_directory", "move_file", "exec",
	"run_in_background", "read_output", "kill_shell", "list_shells"}

// Under ReadOnly the tools that could never succeed are not offered, over
// MCP and as plain definitions; under Strict (asking) they all are.
func TestToolsListLeavesOutDeniedTools(t *testing.T) {
	noLeaks(t)
	ro := permScope(t, ab.ReadOnlyPermissions())
	names := toolNames(t, connect(t, ro))
	for _, name := range writingTools {
		if slices.Contains(names, name) {
			t.Errorf("tools/list under ReadOnly offers %s: %q", name, names)
		}
	}
	for _, name := range []string{"read_text_file", "list_directory", "search_files", "grep", "get_file_info", "list_allowed_directories"} {
		if !slices.Contains(names, name) {
			t.Errorf("tools/list under ReadOnly lacks %s", name)
		}
	}
	var plain []string
	for _, tool := range agentmcp.Tools(ro, nil) {
		plain = append(plain, tool.Name)
	}
	slices.Sort(plain)
	if !slices.Equal(plain, names) {
		t.Errorf("plain tools %q differ from tools/list %q", plain, names)
	}
	strict := toolNames(t, connect(t, permScope(t, strictOnHost())))
	for _, name := range writingTools {
		if !slices.Contains(strict, name) {
			t.Errorf("tools/list under Strict lacks %s", name)
		}
	}
	noList := permScope(t, &ab.Permissions{List: ab.Policy{Default: ab.Deny}, Search: ab.Policy{Default: ab.Deny}})
	names = toolNames(t, connect(t, noList))
	for _, name := range []string{"list_directory", "list_directory_with_sizes", "directory_tree", "search_files", "grep"} {
		if slices.Contains(names, name) {
			t.Errorf("tools/list without list and search offers %s", name)
		}
	}
}

// A refused call is a tool error that says what and why, and tells the
// model not to retry.
func TestDeniedCallIsAToolErrorWithTheReason(t *testing.T) {
	noLeaks(t)
	p := strictOnHost() // asks, and nobody can answer: denied
	cs := connect(t, permScope(t, p))
	for _, c := range []struct {
		tool string
		args obj
		want []string
	}{
		{"read_text_file", obj{"path": ".env"}, []string{`PERMISSION_DENIED: read .env: rule "**/.env" denies read (secrets and credentials are off limits).`, "do not retry"}},
		{"write_file", obj{"path": "src/b.go", "content": "x"}, []string{"PERMISSION_DENIED: write src/b.go: the default write policy asks for approval, and no approver is configured", "do not retry"}},
		{"exec", obj{"command": "go test ./..."}, []string{`PERMISSION_DENIED: exec "go test ./...": `, "asks for approval"}},
		{"read_multiple_files", obj{"paths": []string{"src/a.go", ".env"}}, nil},
	} {
		r := call(t, cs, c.tool, c.args)
		if c.want == nil {
			if r.IsError || !strings.Contains(r.Text, "package a") || !strings.Contains(r.Text, ".env: Error - PERMISSION_DENIED: read .env: rule") {
				t.Errorf("%s: %q (isError %v)", c.tool, r.Text, r.IsError)
			}
			continue
		}
		if !r.IsError {
			t.Errorf("%s(%v) succeeded: %q", c.tool, c.args, r.Text)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(r.Text, w) {
				t.Errorf("%s(%v): %q lacks %q", c.tool, c.args, r.Text, w)
			}
		}
	}
	// Searches and listings leave the secret out without an error.
	r := call(t, cs, "grep", obj{"pattern": "TOKEN", "-i": false})
	if r.IsError || strings.Contains(r.Text, ".env") || !strings.Contains(r.Text, "notes.md") {
		t.Errorf("grep: %q (isError %v)", r.Text, r.IsError)
	}
	r = call(t, cs, "list_directory", obj{"path": "."})
	if r.IsError || strings.Contains(r.Text, ".env") {
		t.Errorf("list_directory: %q", r.Text)
	}
	// With FallbackError the message says a person must approve.
	p = strictOnHost()
	p.AskFallback = ab.FallbackError
	r = call(t, connect(t, permScope(t, p)), "write_file", obj{"path": "x.txt", "content": "x"})
	if !r.IsError || !strings.Contains(r.Text, "APPROVAL_REQUIRED: write x.txt: ") || !strings.Contains(r.Text, "needs a person's approval") {
		t.Errorf("write_file with FallbackError: %q", r.Text)
	}
}

// Over HTTP, each request gets the tool set of its own backend.
func TestRequestHandlerToolSetPerBackend(t *testing.T) {
	noLeaks(t)
	b := newLocal(t, ab.LocalConfig{})
	h := agentmcp.RequestHandler(func(r *http.Request) (ab.FileBackend, func(), error) {
		if r.Header.Get("X-Role") == "reviewer" {
			s, err := b.Scope(".", &ab.ScopeConfig{Permissions: ab.ReadOnlyPermissions()})
			return s, func() { s.Close() }, err
		}
		return b, nil, nil
	}, nil)
	srv := httptest.NewServer(h)
	defer srv.Close()
	list := func(role string) []string {
		client := mcp.NewClient(&mcp.Implementation{Name: "test"}, nil)
		hc := &http.Client{Transport: roleTransport{role}}
		cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: srv.URL, HTTPClient: hc, DisableStandaloneSSE: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		return toolNames(t, cs)
	}
	reviewer, owner := list("reviewer"), list("owner")
	if slices.Contains(reviewer, "write_file") || slices.Contains(reviewer, "exec") {
		t.Errorf("reviewer tools %q", reviewer)
	}
	if !slices.Contains(owner, "write_file") || !slices.Contains(owner, "exec") {
		t.Errorf("owner tools %q", owner)
	}
	srv.CloseClientConnections()
}

type roleTransport struct{ role string }

func (rt roleTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Role", rt.role)
	return http.DefaultTransport.RoundTrip(r)
}
