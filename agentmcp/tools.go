package agentmcp

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path"
	"runtime/debug"
	"strings"
	"sync"

	ab "github.com/agentbackend/agentbackend"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Tool is one tool of the set, for function-calling APIs that do not speak
// MCP: a name, a description and a JSON Schema to hand to the model, and a
// Call that runs the tool on the backend. Call is the very code the MCP
// server runs, so a tool behaves the same either way.
type Tool struct {
	Name        string
	Title       string // a short human-readable name
	Description string
	InputSchema json.RawMessage // a JSON Schema of type "object"
	Annotations Annotations
	// Call runs the tool with the model's arguments (a JSON object). A
	// failure the model should see and correct (a missing file, a bad
	// edit, a command that failed) is a *ToolError whose message is meant
	// for the model; pass it back as the tool result, marked as an error.
	Call func(ctx context.Context, args json.RawMessage) (*Result, error)
}

// Annotations are the hints a tool gives about what it does, as MCP tool
// annotations.
type Annotations struct {
	ReadOnly    bool // does not modify the workspace
	Destructive bool // may overwrite or remove data (meaningful when not ReadOnly)
	Idempotent  bool // calling it again with the same arguments changes nothing more
	OpenWorld   bool // reaches beyond the workspace (exec: the network, the host)
}

// Result is what a tool returns: text for every tool, and for
// read_media_file the file itself in Media.
type Result struct {
	Text  string
	Media *Media
}

// Media is a file returned whole by read_media_file.
type Media struct {
	MIMEType string // from the file's extension; application/octet-stream when unknown
	Data     []byte
	URI      string // file:// URI of the file's absolute path in the workspace
}

// Options adjusts the server and the tool set. The zero value (or nil)
// serves every tool the backend supports.
type Options struct {
	// Name and Version identify the server in the MCP handshake; empty means
	// "agent-backend" and this module's version.
	Name, Version string
	// NoExec leaves out the exec tool (and the background-process tools)
	// even when the backend can run commands.
	NoExec bool
	// Logger receives the MCP server's log and tool panics; nil discards.
	Logger *slog.Logger
}

// spec is the one definition of a tool, shared by the MCP server and Tools.
type spec struct {
	name, title, desc string
	input, output     *schema
	ann               Annotations
	exec              bool // only where the backend can run commands
	bg                bool // only where the backend can start background processes
	runs              bool // runs commands: its description says what they reach (see description)
	run               func(ctx context.Context, t *toolset, args map[string]any) (*Result, error)

	toolOnce sync.Once
	tool     *mcp.Tool // the MCP definition, built once (mcpTool)
}

// toolset is the tools bound to one backend.
type toolset struct {
	b      ab.FileBackend
	root   string // b.RootDir(), clean
	logger *slog.Logger
	filter toolFilter // the tools served (RequestHandler picks its server by it)
}

func newToolset(b ab.FileBackend, opts *Options) *toolset {
	t := &toolset{b: b, root: path.Clean("/" + b.RootDir()), filter: filterFor(b, opts)}
	if opts != nil {
		t.logger = opts.Logger
	}
	return t
}

// withExec reports whether to serve exec for b.
func withExec(b ab.FileBackend, opts *Options) bool {
	return (opts == nil || !opts.NoExec) && CanExec(b)
}

// specsFor returns the tools to serve for b, in the filesystem server's
// order with exec and grep last.
func specsFor(b ab.FileBackend, opts *Options) []*spec {
	filter := filterFor(b, opts)
	out := make([]*spec, 0, len(allSpecs))
	for _, s := range allSpecs {
		if filter.serves(s) {
			out = append(out, s)
		}
	}
	return out
}

// Tools returns the tool set for b as plain definitions: the same tools,
// schemas and behaviour as the MCP server of NewServer, without the tools
// b's permissions deny outright.
func Tools(b ab.FileBackend, opts *Options) []Tool {
	t := newToolset(b, opts)
	specs := specsFor(b, opts)
	tools := make([]Tool, len(specs))
	for i, s := range specs {
		tools[i] = Tool{
			Name: s.name, Title: s.title, Description: s.description(t.filter),
			InputSchema: s.input.raw, Annotations: s.ann,
			Call: func(ctx context.Context, args json.RawMessage) (*Result, error) {
				return t.call(ctx, s, args)
			},
		}
	}
	return tools
}

// call validates the arguments and runs the tool. A panic in a tool is a
// tool error, never a crash of the caller or of an MCP session.
func (t *toolset) call(ctx context.Context, s *spec, raw json.RawMessage) (res *Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			if t.logger != nil {
				t.logger.Error("agentmcp: tool panicked", "tool", s.name, "panic", r, "stack", string(debug.Stack()))
			}
			res, err = nil, toolError(s.name, fmt.Sprintf("internal error in tool %s: %v", s.name, r), nil)
		}
	}()
	args, verr := s.input.validate(raw)
	if verr != nil {
		return nil, toolError(s.name, "Invalid arguments for tool "+s.name+": "+verr.Error(), verr)
	}
	res, err = s.run(ctx, t, args)
	if perr := permissionError(s.name, err); perr != nil {
		return nil, perr
	}
	return res, err
}

// description is the tool's description for a backend with filter f: for
// a tool that runs commands, followed by what they reach over the network
// when the backend says (agentbackend.Network.Describe).
func (s *spec) description(f toolFilter) string {
	if s.runs && f.network != "" {
		return s.desc + " " + f.network.Describe()
	}
	return s.desc
}

// runner returns the backend that runs b's commands: scopes and
// composites (their default route) looked through.
func runner(b ab.FileBackend) ab.FileBackend {
	for {
		switch v := b.(type) {
		case *ab.ScopedBackend:
			b = v.Unwrap()
		case *ab.CompositeBackend:
			b = v.Default()
		default:
			return b
		}
	}
}

// networkOf returns the network of the backend that runs b's commands, or
// "" when it does not say (only LocalBackend has a Network method).
func networkOf(b ab.FileBackend) ab.Network {
	if n, ok := runner(b).(interface{ Network() ab.Network }); ok {
		return n.Network()
	}
	return ""
}

// CanExec reports whether b can run commands, so that the exec tool is
// worth offering: scopes and composites are looked through, memory
// backends cannot, and any other backend is asked with an empty command,
// which a backend that can run commands refuses as EMPTY_COMMAND without
// running anything, and one that cannot as NOT_IMPLEMENTED.
func CanExec(b ab.FileBackend) bool {
	b = runner(b)
	switch b.(type) {
	case *ab.MemoryBackend:
		return false
	case *ab.LocalBackend:
		return true
	}
	_, err := b.Exec(context.Background(), "", nil)
	return ab.ErrorCode(err) != ab.CodeNotImplemented
}

// abs is the absolute path the filesystem server would name for p in its
// messages: the path rule's answer, or for a path that leaves the workspace
// where it leads (as Node's path.resolve).
func (t *toolset) abs(p string) string {
	if a, err := ab.ResolvePath(t.root, p); err == nil {
		return a
	}
	if strings.HasPrefix(p, "/") {
		if p == t.root || strings.HasPrefix(p, strings.TrimSuffix(t.root, "/")+"/") {
			return path.Clean(p)
		}
		return path.Join(t.root, strings.TrimLeft(p, "/"))
	}
	return path.Join(t.root, p)
}

// Argument accessors: the arguments were validated against the schema, so
// a present value has the schema's type.

func str(args map[string]any, k string) string {
	s, _ := args[k].(string)
	return s
}

func boolean(args map[string]any, k string) bool {
	v, _ := args[k].(bool)
	return v
}

// num returns a number argument and whether it was given (not null).
func num(args map[string]any, k string) (float64, bool) {
	v, ok := args[k].(float64)
	return v, ok
}

func strs(args map[string]any, k string) []string {
	list, _ := args[k].([]any)
	out := make([]string, 0, len(list))
	for _, v := range list {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func text(s string) *Result { return &Result{Text: s} }
