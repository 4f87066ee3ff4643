package agentmcp

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"runtime/debug"
	"strings"

	ab "github.com/agentbackend/agentbackend"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// modulePath is this module's path, to find its version in the build info.
const modulePath = "github.com/agentbackend/agentbackend"

// ReferenceVersion is the release of agent-backend (npm; TypeScript) whose
// wire protocol this module speaks: the daemon's endpoints and flags, and
// the MCP tools' names, parameters and texts. Clients and daemons of that
// release interoperate with this module's.
const ReferenceVersion = "0.13.2"

// Version returns the version of this module as built into the running
// program ("v1.2.3"), or "dev" when it is not known (a build from a
// checkout). The CLI, the daemon's /health and the MCP handshake all
// report it, and ReferenceVersion beside it.
func Version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	v := info.Main.Version
	if info.Main.Path != modulePath {
		v = ""
		for _, d := range info.Deps {
			if d.Path == modulePath {
				v = d.Version
			}
		}
	}
	if v == "" || v == "(devel)" {
		return "dev"
	}
	return v
}

// NewServer returns an MCP server exposing b through the tools of the MCP
// filesystem server (read_text_file, read_file, read_media_file,
// read_multiple_files, write_file, edit_file, create_directory,
// list_directory, list_directory_with_sizes, directory_tree, move_file,
// search_files, get_file_info, list_allowed_directories), with the extra
// parameters of agent-backend's daemon, plus grep and, when b can run
// commands (see CanExec), exec; and when b can also run them in the
// background (see CanStartProcesses), run_in_background, read_output,
// kill_shell and list_shells, as pydantic-ai-backend's console tools, and send_input. When b is a scope with permissions, the
// tools they deny outright are left out, and refused calls are tool errors
// saying why (see agentbackend.Permissions).
//
// Paths are resolved against b's root by the workspace path rule, and
// list_allowed_directories names that root. A failing call is a tool result
// with isError set and a message for the model (see ToolError); bad input
// never ends the session. Results carry the text as content and as
// structuredContent {"content": text}, as the filesystem server's do.
//
// Serve it with Run on a transport, or use Connect, Handler or
// RequestHandler.
func NewServer(b ab.FileBackend, opts *Options) *mcp.Server {
	t := newToolset(b, opts)
	return newServer(opts, t.filter, func(context.Context) *toolset { return t })
}

// newServer returns a server with the tools the filter lets through, whose
// calls run on the toolset toolsetOf finds for the call's context.
func newServer(opts *Options, filter toolFilter, toolsetOf func(context.Context) *toolset) *mcp.Server {
	name, version := "agent-backend", ""
	var logger *slog.Logger
	if opts != nil {
		if opts.Name != "" {
			name = opts.Name
		}
		version, logger = opts.Version, opts.Logger
	}
	if version == "" {
		version = Version()
	}
	s := mcp.NewServer(&mcp.Implementation{Name: name, Version: version,
		Description: "workspace tools of agentbackend (Go), speaking agent-backend " + ReferenceVersion},
		&mcp.ServerOptions{Logger: logger})
	for _, sp := range allSpecs {
		if filter.serves(sp) {
			s.AddTool(sp.mcpToolFor(filter), mcpHandler(sp, toolsetOf))
		}
	}
	return s
}

// mcpTool is the MCP definition of the tool. It is built once per tool and
// shared by every server (the SDK does not change it).
func (s *spec) mcpTool() *mcp.Tool {
	s.toolOnce.Do(func() {
		a := s.ann
		ann := &mcp.ToolAnnotations{ReadOnlyHint: a.ReadOnly, IdempotentHint: a.Idempotent, OpenWorldHint: &a.OpenWorld}
		if !a.ReadOnly {
			ann.DestructiveHint = &a.Destructive
		}
		s.tool = &mcp.Tool{Name: s.name, Title: s.title, Description: s.desc, Annotations: ann,
			InputSchema: s.input.parsed, OutputSchema: s.output.parsed}
	})
	return s.tool
}

// mcpToolFor is the MCP definition of the tool for a backend with filter
// f: the shared one, or a copy with the description that says what the
// backend's commands reach.
func (s *spec) mcpToolFor(f toolFilter) *mcp.Tool {
	t := s.mcpTool()
	if d := s.description(f); d != t.Description {
		c := *t
		c.Description = d
		return &c
	}
	return t
}

// mcpHandler runs the tool for an MCP call (see toolResult).
func mcpHandler(s *spec, toolsetOf func(context.Context) *toolset) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		var raw json.RawMessage
		if req != nil && req.Params != nil {
			raw = req.Params.Arguments
		}
		t := toolsetOf(ctx)
		if t == nil {
			return nil, errors.New("agentmcp: no backend for this request")
		}
		return toolResult(t.call(ctx, s, raw)), nil
	}
}

// toolResult is the MCP result of a tool's outcome: the text as content
// and as structuredContent {"content": text}; read_media_file's file as an
// image, audio or embedded resource block; a failure as an isError result.
func toolResult(r *Result, err error) *mcp.CallToolResult {
	if err != nil {
		return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: err.Error()}}}
	}
	if m := r.Media; m != nil {
		var c mcp.Content
		switch {
		case strings.HasPrefix(m.MIMEType, "image/"):
			c = &mcp.ImageContent{Data: m.Data, MIMEType: m.MIMEType}
		case strings.HasPrefix(m.MIMEType, "audio/"):
			c = &mcp.AudioContent{Data: m.Data, MIMEType: m.MIMEType}
		default:
			c = &mcp.EmbeddedResource{Resource: &mcp.ResourceContents{URI: m.URI, MIMEType: m.MIMEType, Blob: m.Data}}
		}
		return &mcp.CallToolResult{Content: []mcp.Content{c}, StructuredContent: map[string]any{"content": []mcp.Content{c}}}
	}
	return &mcp.CallToolResult{
		Content:           []mcp.Content{&mcp.TextContent{Text: r.Text}},
		StructuredContent: map[string]any{"content": r.Text},
	}
}
