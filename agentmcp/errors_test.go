package agentmcp_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/agentmcp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestToolErrors(t *testing.T) {
	noLeaks(t)
	for name, b := range backends(t) {
		t.Run(name, func(t *testing.T) {
			seed(t, b)
			cs := connect(t, b)
			R := b.RootDir()
			parent := path.Dir(R)

			// Paths that leave the workspace.
			wantError(t, cs, "read_text_file", obj{"path": "../x"}, "Access denied - path outside allowed directories: "+path.Join(parent, "x")+" not in "+R)
			wantError(t, cs, "write_file", obj{"path": "a/../../x", "content": ""}, "Access denied - path outside allowed directories: "+path.Join(parent, "x")+" not in "+R)
			wantError(t, cs, "move_file", obj{"source": "a.txt", "destination": "../y"}, "Access denied - path outside allowed directories: "+path.Join(parent, "y")+" not in "+R)
			wantError(t, cs, "list_directory", obj{"path": R + "/../.."}, "Access denied - path outside allowed directories: "+path.Clean(R+"/../..")+" not in "+R)
			r := call(t, cs, "read_multiple_files", obj{"paths": []string{"../z"}})
			if r.IsError || !strings.HasPrefix(r.Text, "../z: Error - Access denied - path outside allowed directories:") {
				t.Errorf("read_multiple_files escape: %q", r.Text)
			}
			wantError(t, cs, "grep", obj{"pattern": "x", "path": "../.."}, "Access denied - path outside allowed directories: "+path.Join(R, "../..")+" not in "+R)

			// Absolute paths elsewhere are taken as relative (spec/paths.md).
			wantError(t, cs, "read_text_file", obj{"path": "/etc/passwd"}, "ENOENT: no such file or directory, open '"+R+"/etc/passwd'")

			// Node's errors, with absolute paths.
			wantError(t, cs, "read_text_file", obj{"path": "sub"}, "EISDIR: illegal operation on a directory, read")
			wantError(t, cs, "get_file_info", obj{"path": "nope"}, "ENOENT: no such file or directory, stat '"+R+"/nope'")
			wantError(t, cs, "list_directory", obj{"path": "nope"}, "ENOENT: no such file or directory, scandir '"+R+"/nope'")
			wantError(t, cs, "list_directory", obj{"path": "a.txt"}, "ENOTDIR: not a directory, scandir '"+R+"/a.txt'")
			wantError(t, cs, "directory_tree", obj{"path": "a.txt"}, "ENOTDIR: not a directory, scandir '"+R+"/a.txt'")
			wantError(t, cs, "search_files", obj{"path": "a.txt", "pattern": "*"}, "ENOTDIR: not a directory, scandir '"+R+"/a.txt'")
			wantError(t, cs, "search_files", obj{"path": "nope", "pattern": "*"}, "ENOENT: no such file or directory, scandir '"+R+"/nope'")
			wantError(t, cs, "move_file", obj{"source": "nope", "destination": "n2"}, "ENOENT: no such file or directory, rename '"+R+"/nope' -> '"+R+"/n2'")
			wantError(t, cs, "edit_file", obj{"path": "nope", "edits": []obj{{"oldText": "a", "newText": "b"}}}, "ENOENT: no such file or directory, open '"+R+"/nope'")
			if r := call(t, cs, "create_directory", obj{"path": "a.txt"}); !r.IsError || !strings.HasSuffix(r.Text, ", mkdir '"+R+"/a.txt'") {
				t.Errorf("create_directory over a file: %q", r.Text)
			}
			wantError(t, cs, "grep", obj{"pattern": "x", "path": "nope"}, "ENOENT: no such file or directory, stat '"+R+"/nope'")
			if r := call(t, cs, "grep", obj{"pattern": "("}); !r.IsError || !strings.Contains(r.Text, "invalid regular expression") {
				t.Errorf("grep bad pattern: %q", r.Text)
			}

			// Bad arguments are tool errors naming the tool; the session
			// carries on.
			for _, c := range []struct {
				tool string
				args any
			}{
				{"read_text_file", obj{}},
				{"read_text_file", obj{"path": 7}},
				{"read_text_file", obj{"path": "a.txt", "offset": 0}},
				{"read_text_file", obj{"path": "a.txt", "limit": 1.5}},
				{"read_multiple_files", obj{"paths": []string{}}},
				{"list_directory_with_sizes", obj{"path": ".", "sortBy": "date"}},
				{"edit_file", obj{"path": "a.txt", "edits": "x"}},
				{"edit_file", obj{"path": "a.txt", "edits": []obj{{"oldText": "a"}}}},
				{"move_file", obj{"source": "a.txt"}},
				{"grep", obj{"pattern": "x", "outputMode": "lines"}},
				{"grep", obj{"pattern": "x", "headLimit": 0}},
			} {
				r := call(t, cs, c.tool, c.args)
				if !r.IsError || !strings.HasPrefix(r.Text, "Invalid arguments for tool "+c.tool+": ") {
					t.Errorf("%s(%s): %q (isError %v)", c.tool, jsonOf(c.args), r.Text, r.IsError)
				}
			}
			if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "no_such_tool", Arguments: obj{}}); err == nil {
				t.Error("unknown tool did not fail")
			}
			want(t, cs, "read_text_file", obj{"path": "a.txt", "head": 1}, "line1")
		})
	}
}

func TestSymlinkEscapesRefused(t *testing.T) {
	noLeaks(t)
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644)
	b := newLocal(t, ab.LocalConfig{})
	R := b.RootDir()
	if err := os.Symlink(outside, filepath.Join(R, "evil")); err != nil {
		t.Fatal(err)
	}
	cs := connect(t, b)
	denied := func(p string) string {
		return "Access denied - symlink target outside allowed directories: " + R + "/" + p + " not in " + R
	}
	wantError(t, cs, "read_text_file", obj{"path": "evil/secret"}, denied("evil/secret"))
	wantError(t, cs, "read_media_file", obj{"path": "evil/secret"}, denied("evil/secret"))
	wantError(t, cs, "write_file", obj{"path": "evil/new", "content": "x"}, denied("evil/new"))
	wantError(t, cs, "list_directory", obj{"path": "evil"}, denied("evil"))
	wantError(t, cs, "get_file_info", obj{"path": "evil/secret"}, denied("evil/secret"))
	wantError(t, cs, "edit_file", obj{"path": "evil/secret", "edits": []obj{{"oldText": "secret", "newText": "x"}}}, denied("evil/secret"))
	if _, err := os.Stat(filepath.Join(outside, "new")); err == nil {
		t.Fatal("a write went through the link")
	}
	if data, _ := os.ReadFile(filepath.Join(outside, "secret")); string(data) != "secret" {
		t.Fatal("an edit went through the link")
	}
	// The link itself is listed, not followed.
	if r := call(t, cs, "directory_tree", obj{"path": "."}); r.IsError || strings.Contains(r.Text, "secret") {
		t.Errorf("directory_tree through a link: %q", r.Text)
	}
	want(t, cs, "search_files", obj{"path": ".", "pattern": "**/secret"}, "No matches found")
}

// panicky is a backend whose Read panics, standing for a bug anywhere
// below a tool.
type panicky struct{ ab.FileBackend }

func (panicky) Read(context.Context, string) ([]byte, error) { panic("boom") }

func TestPanicIsAToolError(t *testing.T) {
	noLeaks(t)
	b := panicky{newMemory(t, "/")}
	cs := connect(t, b)
	wantError(t, cs, "read_text_file", obj{"path": "a"}, "internal error in tool read_text_file: boom")
	want(t, cs, "read_multiple_files", obj{"paths": []string{"a", "b"}}, "a: Error - internal error: boom\n---\nb: Error - internal error: boom")
	want(t, cs, "write_file", obj{"path": "a", "content": "x"}, "Successfully wrote to a")
}

func TestPlainToolsShareTheImplementation(t *testing.T) {
	b := newMemory(t, "/w")
	seed(t, b)
	tools := agentmcp.Tools(b, nil)
	byName := map[string]agentmcp.Tool{}
	for _, tool := range tools {
		if !json.Valid(tool.InputSchema) || tool.Call == nil {
			t.Fatalf("tool %s: bad definition", tool.Name)
		}
		byName[tool.Name] = tool
	}
	if _, ok := byName["exec"]; ok {
		t.Fatal("exec offered on a memory backend")
	}
	if len(agentmcp.Tools(newLocal(t, ab.LocalConfig{}), nil)) != len(tools)+6 {
		t.Fatal("exec and the five background-process tools not offered on a local backend")
	}
	if len(agentmcp.Tools(newLocal(t, ab.LocalConfig{}), &agentmcp.Options{NoExec: true})) != len(tools) {
		t.Fatal("NoExec ignored")
	}
	ctx := context.Background()
	r, err := byName["read_text_file"].Call(ctx, json.RawMessage(`{"path":"a.txt","head":1}`))
	if err != nil || r.Text != "line1" {
		t.Fatalf("read_text_file: %v, %v", r, err)
	}
	_, err = byName["read_text_file"].Call(ctx, json.RawMessage(`{"path":"../x"}`))
	var te *agentmcp.ToolError
	if !errors.As(err, &te) || te.Tool != "read_text_file" || !errors.Is(err, ab.ErrPathEscape) ||
		err.Error() != "Access denied - path outside allowed directories: /x not in /w" {
		t.Fatalf("escape: %v", err)
	}
	r, err = byName["read_media_file"].Call(ctx, json.RawMessage(`{"path":"img.png"}`))
	if err != nil || r.Media == nil || r.Media.MIMEType != "image/png" || string(r.Media.Data) != string(pngBytes) || r.Media.URI != "file:///w/img.png" {
		t.Fatalf("read_media_file: %+v, %v", r, err)
	}
	if _, err := byName["write_file"].Call(ctx, json.RawMessage(`not json`)); err == nil || !strings.HasPrefix(err.Error(), "Invalid arguments for tool write_file: ") {
		t.Fatalf("bad JSON: %v", err)
	}
	if r, err := byName["list_allowed_directories"].Call(ctx, nil); err != nil || r.Text != "Allowed directories:\n/w" {
		t.Fatalf("no arguments: %v, %v", r, err)
	}
	b.Close()
	if _, err := byName["read_text_file"].Call(ctx, json.RawMessage(`{"path":"a.txt"}`)); !errors.Is(err, ab.ErrDestroyed) {
		t.Fatalf("after Close: %v", err)
	}
}
