package agentmcp_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentbackend/agentbackend/internal/testenv"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The differential tests run the same tool calls through this project's
// server (the agent-backend CLI, over stdio) and through the reference
// servers from npm (over stdio), on identical directories, and compare what
// the client sees. They need node and the npm packages; without them they
// skip, unless AGENTBE_REQUIRE names "mcp-reference", which makes them fail.
//
// Install the references and point the tests at them:
//
//	npm install --prefix "$DIR" @modelcontextprotocol/server-filesystem@2026.8.31 agent-backend@0.13.2
//	export AGENTBE_MCP_REFERENCE_DIR="$DIR/node_modules"
//
// Without AGENTBE_MCP_REFERENCE_DIR the tests look for node_modules in the
// current directory and its parents, then in /tmp/peers.

const (
	officialPackage = "@modelcontextprotocol/server-filesystem"
	officialVersion = "2026.8.31"
	agentPackage    = "agent-backend"
	agentVersion    = "0.13.2"
)

// referencePackage finds an npm package of the given version and returns
// its directory, or skips (fails when required).
func referencePackage(t testing.TB, name, version string) string {
	t.Helper()
	_, nodeErr := exec.LookPath("node")
	testenv.Need(t, "mcp-reference", nodeErr == nil, "node is not on PATH")
	var candidates []string
	if dir := os.Getenv("AGENTBE_MCP_REFERENCE_DIR"); dir != "" {
		candidates = append(candidates, dir, filepath.Join(dir, "node_modules"))
	} else {
		wd, _ := os.Getwd()
		for d := wd; ; d = filepath.Dir(d) {
			candidates = append(candidates, filepath.Join(d, "node_modules"))
			if filepath.Dir(d) == d {
				break
			}
		}
		candidates = append(candidates, "/tmp/peers/node_modules")
	}
	why := name + "@" + version + " not found in " + strings.Join(candidates, ", ") + " (set AGENTBE_MCP_REFERENCE_DIR)"
	for _, c := range candidates {
		data, err := os.ReadFile(filepath.Join(c, name, "package.json"))
		if err != nil {
			continue
		}
		var pkg struct{ Version string }
		json.Unmarshal(data, &pkg)
		if pkg.Version != version {
			why = filepath.Join(c, name) + " is version " + pkg.Version + ", want " + version
			continue
		}
		return filepath.Join(c, name)
	}
	testenv.Need(t, "mcp-reference", false, why)
	return ""
}

// peer is one server under comparison.
type peer struct {
	name  string
	root  string // the workspace, as the server names it
	alias string // another spelling of root (before symlinks are resolved)
	cs    *mcp.ClientSession
	cmd   *exec.Cmd
}

// startPeer starts a server over stdio on a copy of the fixture.
func startPeer(t testing.TB, name string, cmd *exec.Cmd, root string) *peer {
	t.Helper()
	cmd.Env = append(os.Environ(), "TZ=UTC")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	client := mcp.NewClient(&mcp.Implementation{Name: "differential"}, &mcp.ClientOptions{Capabilities: &mcp.ClientCapabilities{}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd, TerminateDuration: 2 * time.Second}, nil)
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, stderr.String())
	}
	t.Cleanup(func() { cs.Close() })
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		t.Fatal(err)
	}
	return &peer{name: name, root: real, alias: root, cs: cs, cmd: cmd}
}

// outcome is what a client sees of a call: the text (or, for other
// content, its JSON), with this peer's root replaced by <root>.
type outcome struct {
	Text       string
	IsError    bool
	Structured bool // structuredContent is {"content": Text}
}

func (p *peer) call(t *testing.T, name string, args map[string]any) outcome {
	t.Helper()
	args = substituteRoot(args, p.root)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := p.cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return outcome{Text: "protocol error: " + err.Error(), IsError: true}
	}
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, tc.Text)
			continue
		}
		data, _ := json.Marshal(c)
		parts = append(parts, string(data))
	}
	o := outcome{Text: strings.Join(parts, "\n"), IsError: res.IsError}
	if sc, ok := res.StructuredContent.(map[string]any); ok {
		if s, ok := sc["content"].(string); ok && s == o.Text {
			o.Structured = true
		}
	}
	o.Text = p.normalize(o.Text)
	return o
}

// normalize replaces the peer's root with <root>.
func (p *peer) normalize(s string) string {
	s = strings.ReplaceAll(s, p.root, "<root>")
	return strings.ReplaceAll(s, p.alias, "<root>")
}

// substituteRoot replaces <root> in string arguments with the peer's root.
func substituteRoot(args map[string]any, root string) map[string]any {
	var sub func(v any) any
	sub = func(v any) any {
		switch x := v.(type) {
		case string:
			return strings.ReplaceAll(x, "<root>", root)
		case []any:
			out := make([]any, len(x))
			for i, e := range x {
				out[i] = sub(e)
			}
			return out
		case map[string]any:
			out := make(map[string]any, len(x))
			for k, e := range x {
				out[k] = sub(e)
			}
			return out
		}
		return v
	}
	return sub(args).(map[string]any)
}

// step is one call of a sequence. kept, when set, says why the two
// servers answer differently on purpose; the test then checks they still
// do (so the list stays true) instead of comparing.
type step struct {
	tool string
	args map[string]any
	kept string
}

// unordered marks a step whose output lines may come in any order from
// the reference (ripgrep prints files as its threads finish them): the
// lines are compared sorted.
const unordered = "\x00unordered"

// runSteps calls each step on both peers and compares the outcomes.
func runSteps(t *testing.T, ref, ours *peer, steps []step) {
	t.Helper()
	for i, s := range steps {
		r, o := ref.call(t, s.tool, s.args), ours.call(t, s.tool, s.args)
		r.Text, o.Text = normalizeDates(r.Text), normalizeDates(o.Text)
		if s.kept == unordered {
			s.kept = ""
			r.Text, o.Text = sortLines(r.Text), sortLines(o.Text)
		}
		same := r.Text == o.Text && r.IsError == o.IsError
		switch {
		case s.kept == "" && !same:
			t.Errorf("step %d %s(%s):\n%s: %q (isError %v)\n%s: %q (isError %v)",
				i, s.tool, jsonOf(s.args), ref.name, r.Text, r.IsError, ours.name, o.Text, o.IsError)
		case s.kept != "" && same:
			t.Errorf("step %d %s(%s) is listed as a kept difference (%s) but both answer %q: remove it from the list",
				i, s.tool, jsonOf(s.args), s.kept, r.Text)
		case s.kept == "" && r.Structured && !o.Structured:
			t.Errorf("step %d %s: structuredContent {content: text}: %s %v, %s %v", i, s.tool, ref.name, r.Structured, ours.name, o.Structured)
		case s.kept != "":
			t.Logf("kept difference, step %d %s: %s\n  %s: %.300q\n  %s: %.300q", i, s.tool, s.kept, ref.name, r.Text, ours.name, o.Text)
		}
	}
}

func sortLines(s string) string {
	lines := strings.Split(s, "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// jsDateRE matches JavaScript's Date.prototype.toString in UTC.
var jsDateRE = regexp.MustCompile(`\w{3} \w{3} \d\d \d{4} \d\d:\d\d:\d\d GMT\+0000 \(Coordinated Universal Time\)`)

// normalizeDates replaces dates in get_file_info's format with <date>:
// the two directories were not made at the same instant.
func normalizeDates(s string) string { return jsDateRE.ReplaceAllString(s, "<date>") }

// compareToolLists checks that ours serves every tool of ref with the same
// input properties and required list. With strict, properties agree in
// type, enum, default and items, titles and annotations agree, and ours has
// only the extra properties and tools listed (extraProps["tool.prop"] names
// extra properties of an array's items); without it (for a reference
// whose extras ours accepts but whose defaults are not ours) properties
// agree in type.
func compareToolLists(t *testing.T, ref, ours *peer, extraProps map[string][]string, extraTools []string, strict bool) {
	t.Helper()
	list := func(p *peer) map[string]*mcp.Tool {
		res, err := p.cs.ListTools(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]*mcp.Tool{}
		for _, tool := range res.Tools {
			m[tool.Name] = tool
		}
		return m
	}
	refTools, ourTools := list(ref), list(ours)
	for name, rt := range refTools {
		ot, ok := ourTools[name]
		if !ok {
			t.Errorf("tool %s of %s is missing", name, ref.name)
			continue
		}
		rs, os := schemaOf(rt.InputSchema), schemaOf(ot.InputSchema)
		if !slices.Equal(sorted(rs.Required), sorted(os.Required)) {
			t.Errorf("%s: required %v, ours %v", name, rs.Required, os.Required)
		}
		for prop, rp := range rs.Properties {
			op, ok := os.Properties[prop]
			if !ok {
				t.Errorf("%s: property %s missing", name, prop)
				continue
			}
			if !strict {
				if rp["type"] != op["type"] {
					t.Errorf("%s.%s: %s has type %v, ours %v", name, prop, ref.name, rp["type"], op["type"])
				}
				continue
			}
			if !reflect.DeepEqual(propShape(rp, nil), propShape(op, extraProps[name+"."+prop])) {
				t.Errorf("%s.%s: %s has %v, ours %v", name, prop, ref.name, propShape(rp, nil), propShape(op, nil))
			}
		}
		for prop := range os.Properties {
			if _, ok := rs.Properties[prop]; !ok && strict && !slices.Contains(extraProps[name], prop) {
				t.Errorf("%s: property %s is not in %s and not listed as an extra", name, prop, ref.name)
			}
		}
		if strict {
			if rt.Title != ot.Title || !reflect.DeepEqual(rt.Annotations, ot.Annotations) {
				t.Errorf("%s: title/annotations %q %+v, ours %q %+v", name, rt.Title, rt.Annotations, ot.Title, ot.Annotations)
			}
		}
	}
	for name := range ourTools {
		if _, ok := refTools[name]; !ok && strict && !slices.Contains(extraTools, name) {
			t.Errorf("tool %s is not in %s and not listed as an extra", name, ref.name)
		}
	}
}

type jsonSchema struct {
	Required   []string                  `json:"required"`
	Properties map[string]map[string]any `json:"properties"`
}

func schemaOf(v any) jsonSchema {
	data, _ := json.Marshal(v)
	var s jsonSchema
	json.Unmarshal(data, &s)
	return s
}

// propShape is what must agree about a property: its type, enum, default,
// and for arrays its items' type and properties (less the extras named).
func propShape(p map[string]any, extras []string) map[string]any {
	shape := map[string]any{"type": p["type"], "enum": p["enum"], "default": p["default"]}
	if items, ok := p["items"].(map[string]any); ok {
		shape["items.type"] = items["type"]
		shape["items.required"] = items["required"]
		if props, ok := items["properties"].(map[string]any); ok {
			var names []string
			for k := range props {
				if !slices.Contains(extras, k) {
					names = append(names, k)
				}
			}
			shape["items.properties"] = sorted(names)
		}
	}
	return shape
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// syncBuffer collects a process's stderr for failure messages.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
