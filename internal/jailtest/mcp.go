package jailtest

import (
	"context"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// AttackMCP calls every path-taking tool of cs, an MCP session whose
// workspace is the scope users/alice of w, with paths through each of
// Vias: each call must be a tool error (or, for listings and searches of
// the scope, an answer) that reveals and changes nothing of the target.
// sandboxed says the server runs commands in a sandbox that holds only the
// scope (bubblewrap), so the exec tool is attacked too.
func AttackMCP(t *testing.T, cs *mcp.ClientSession, target Target, sandboxed bool) {
	t.Helper()
	call := func(name string, args map[string]any) (string, bool) {
		t.Helper()
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
		require.NoError(t, err, "%s: protocol error", name)
		var b strings.Builder
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				b.WriteString(tc.Text)
			}
		}
		assert.NotContains(t, b.String(), target.Secret(), "%s(%v) revealed the secret", name, args)
		return b.String(), res.IsError
	}
	refused := func(name string, args map[string]any) {
		t.Helper()
		text, isErr := call(name, args)
		assert.True(t, isErr, "%s(%v) succeeded: %s", name, args, text)
	}
	for _, via := range Vias {
		file := via + "/secret"
		refused("read_text_file", map[string]any{"path": file})
		refused("read_file", map[string]any{"path": file})
		refused("read_media_file", map[string]any{"path": file})
		call("read_multiple_files", map[string]any{"paths": []any{file, "own.txt"}}) // per-file errors
		refused("write_file", map[string]any{"path": file, "content": "pwned"})
		refused("edit_file", map[string]any{"path": file, "edits": []any{map[string]any{"oldText": target.Secret(), "newText": "pwned"}}})
		refused("create_directory", map[string]any{"path": via + "/planted"})
		refused("list_directory", map[string]any{"path": via})
		refused("list_directory_with_sizes", map[string]any{"path": via})
		refused("directory_tree", map[string]any{"path": via})
		refused("move_file", map[string]any{"source": file, "destination": "stolen.txt"})
		refused("move_file", map[string]any{"source": "own.txt", "destination": file})
		refused("search_files", map[string]any{"path": via, "pattern": "*"})
		refused("get_file_info", map[string]any{"path": file})
		refused("grep", map[string]any{"pattern": "secret", "path": via})
		refused("grep", map[string]any{"pattern": "secret", "path": file})
		text, _ := call("search_files", map[string]any{"path": ".", "pattern": "**/secret"})
		assert.NotContains(t, text, "bob", "search_files of the scope found the sibling's file")
		if sandboxed {
			text, _ = call("exec", map[string]any{"command": "cat " + file + "; ls -a ..; ls " + via})
			for line := range strings.Lines(text) {
				assert.NotContains(t, []string{"bob\n", "secret\n", "users\n"}, line, "exec saw the workspace around the scope")
			}
		}
	}
	text, _ := call("directory_tree", map[string]any{"path": "."})
	assert.NotContains(t, text, `"secret"`, "directory_tree of the scope descended into a link")
	text, _ = call("grep", map[string]any{"pattern": target.Secret()})
	assert.NotContains(t, text, "secret:", "grep of the scope searched through a link")
	target.Untouched(t)
}
