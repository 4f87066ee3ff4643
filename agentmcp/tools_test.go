package agentmcp_test

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	ab "github.com/agentbackend/agentbackend"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// pngBytes is the start of a PNG file; read_media_file goes by extension.
var pngBytes = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")

// seed writes the fixture every tool test starts from.
func seed(t testing.TB, b ab.FileBackend) {
	t.Helper()
	ctx := context.Background()
	for p, c := range map[string]string{
		"a.txt":            "line1\nline2\nline3\n",
		"code.go":          "func x() {\n    if a {\n        b()\n    }\n}\n",
		"sub/b.md":         "hello world\n",
		"sub/deep/c.txt":   "  indented\nfoo bar\n",
		"img.png":          string(pngBytes),
		".hidden/secret":   "foo hidden\n",
		"sub/deep/Zed.txt": "Foo\n",
	} {
		if err := b.Write(ctx, p, []byte(c)); err != nil {
			t.Fatal(err)
		}
	}
}

// backends returns the backends every tool is tested on: Local, Memory
// (with a non-root root) and a scope of each.
func backends(t *testing.T) map[string]ab.FileBackend {
	local := newLocal(t, ab.LocalConfig{})
	mem := newMemory(t, "/ws")
	localScope, err := newLocal(t, ab.LocalConfig{}).Scope("tenants/t1", nil)
	if err != nil {
		t.Fatal(err)
	}
	memScope, err := newMemory(t, "/").Scope("tenants/t1", nil)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]ab.FileBackend{"local": local, "memory": mem, "local-scope": localScope, "memory-scope": memScope}
}

func TestEveryToolThroughASession(t *testing.T) {
	noLeaks(t)
	for name, b := range backends(t) {
		t.Run(name, func(t *testing.T) {
			seed(t, b)
			cs := connect(t, b)
			testEveryTool(t, b, cs)
		})
	}
}

func testEveryTool(t *testing.T, b ab.FileBackend, cs *mcp.ClientSession) {
	ctx := context.Background()
	R := b.RootDir()
	canExec := b.Type() == ab.TypeLocal

	// tools/list: the filesystem server's tools, then grep, and exec only
	// where commands can run.
	list, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
		if tool.Annotations == nil || tool.OutputSchema == nil || tool.Title == "" || tool.Description == "" {
			t.Errorf("tool %s lacks annotations, output schema, title or description", tool.Name)
		}
	}
	wantNames := []string{"read_file", "read_text_file", "read_media_file", "read_multiple_files", "write_file",
		"edit_file", "create_directory", "list_directory", "list_directory_with_sizes", "directory_tree",
		"move_file", "search_files", "get_file_info", "list_allowed_directories"}
	if canExec {
		wantNames = append(wantNames, "exec", "run_in_background", "read_output", "send_input", "kill_shell", "list_shells")
	}
	wantNames = append(wantNames, "grep")
	slices.Sort(wantNames) // the Go SDK lists tools by name
	if !slices.Equal(names, wantNames) {
		t.Fatalf("tools:\n got %v\nwant %v", names, wantNames)
	}

	// Reading.
	want(t, cs, "read_text_file", obj{"path": "a.txt"}, "line1\nline2\nline3\n")
	want(t, cs, "read_text_file", obj{"path": R + "/a.txt"}, "line1\nline2\nline3\n")
	want(t, cs, "read_file", obj{"path": "a.txt", "head": 2}, "line1\nline2")
	want(t, cs, "read_text_file", obj{"path": "a.txt", "tail": 2}, "line2\nline3\n")
	want(t, cs, "read_text_file", obj{"path": "a.txt", "offset": 2, "limit": 1}, "line2\n[showing lines 2-2 of 3.]")
	want(t, cs, "read_text_file", obj{"path": "a.txt", "offset": 7}, "[offset 7 is beyond end of file (3 lines).]")
	want(t, cs, "read_text_file", obj{"path": "a.txt", "limit": 10}, "line1\nline2\nline3")
	wantError(t, cs, "read_text_file", obj{"path": "a.txt", "head": 1, "tail": 1}, "Cannot specify both head and tail parameters simultaneously")
	r := call(t, cs, "read_text_file", obj{"path": "a.txt"})
	if sc, _ := r.Raw.StructuredContent.(map[string]any); sc["content"] != "line1\nline2\nline3\n" {
		t.Errorf("structuredContent = %#v", r.Raw.StructuredContent)
	}
	want(t, cs, "read_multiple_files", obj{"paths": []string{"a.txt", "missing", "sub/b.md"}},
		"a.txt:\nline1\nline2\nline3\n\n\n---\nmissing: Error - ENOENT: no such file or directory, open '"+R+"/missing'\n---\nsub/b.md:\nhello world\n\n")

	r = call(t, cs, "read_media_file", obj{"path": "img.png"})
	if img, ok := r.Raw.Content[0].(*mcp.ImageContent); r.IsError || !ok || img.MIMEType != "image/png" || string(img.Data) != string(pngBytes) {
		t.Errorf("read_media_file img.png: %#v", r.Raw.Content[0])
	}
	r = call(t, cs, "read_media_file", obj{"path": "a.txt", "force": true})
	if res, ok := r.Raw.Content[0].(*mcp.EmbeddedResource); r.IsError || !ok || res.Resource.URI != "file://"+R+"/a.txt" ||
		res.Resource.MIMEType != "application/octet-stream" || string(res.Resource.Blob) != "line1\nline2\nline3\n" {
		t.Errorf("read_media_file a.txt: %#v", r.Raw.Content[0])
	}

	// Listing.
	want(t, cs, "list_directory", obj{"path": "."}, "[DIR] .hidden\n[FILE] a.txt\n[FILE] code.go\n[FILE] img.png\n[DIR] sub")
	want(t, cs, "list_directory", obj{"path": "sub/deep"}, "[FILE] Zed.txt\n[FILE] c.txt")
	want(t, cs, "list_directory_with_sizes", obj{"path": "sub/deep"},
		"[FILE] c.txt                                19 B\n[FILE] Zed.txt                               4 B\n\nTotal: 2 files, 0 directories\nCombined size: 23 B")
	// Sorted by size, directories count with the size the backend gives
	// them: 4096 on disk, 0 in memory.
	bySize := "[FILE] b.md                                 12 B\n[DIR] deep                           "
	if canExec {
		bySize = "[DIR] deep                           \n[FILE] b.md                                 12 B"
	}
	want(t, cs, "list_directory_with_sizes", obj{"path": "sub", "sortBy": "size"}, bySize+"\n\nTotal: 1 files, 1 directories\nCombined size: 12 B")
	want(t, cs, "directory_tree", obj{"path": "sub"},
		"[\n  {\n    \"name\": \"b.md\",\n    \"type\": \"file\"\n  },\n  {\n    \"name\": \"deep\",\n    \"type\": \"directory\",\n    \"children\": [\n      {\n        \"name\": \"Zed.txt\",\n        \"type\": \"file\"\n      },\n      {\n        \"name\": \"c.txt\",\n        \"type\": \"file\"\n      }\n    ]\n  }\n]")
	want(t, cs, "directory_tree", obj{"path": "sub", "excludePatterns": []string{"deep"}}, "[\n  {\n    \"name\": \"b.md\",\n    \"type\": \"file\"\n  }\n]")
	want(t, cs, "directory_tree", obj{"path": "sub/deep", "excludePatterns": []string{"*.txt"}}, "[]")
	want(t, cs, "search_files", obj{"path": ".", "pattern": "**/*.md"}, R+"/sub/b.md")
	want(t, cs, "search_files", obj{"path": ".", "pattern": "*.md"}, "No matches found")
	want(t, cs, "search_files", obj{"path": ".", "pattern": "**/*.txt", "excludePatterns": []string{"sub/deep"}}, R+"/a.txt")
	want(t, cs, "search_files", obj{"path": "sub", "pattern": "**", "sortBy": "path"}, R+"/sub/b.md\n"+R+"/sub/deep\n"+R+"/sub/deep/c.txt\n"+R+"/sub/deep/Zed.txt")
	want(t, cs, "search_files", obj{"path": "sub", "pattern": "**"}, R+"/sub/b.md\n"+R+"/sub/deep\n"+R+"/sub/deep/Zed.txt\n"+R+"/sub/deep/c.txt")
	info := call(t, cs, "get_file_info", obj{"path": "a.txt"})
	infoRE := regexp.MustCompile(`^size: 18\ncreated: \w{3} \w{3} \d\d \d{4} \d\d:\d\d:\d\d GMT[+-]\d{4} \(.+\)\nmodified: .+\naccessed: .+\nisDirectory: false\nisFile: true\npermissions: 6[0-7][0-7]$`)
	if info.IsError || !infoRE.MatchString(info.Text) {
		t.Errorf("get_file_info: %q", info.Text)
	}
	if info := call(t, cs, "get_file_info", obj{"path": "sub"}); !strings.Contains(info.Text, "isDirectory: true\nisFile: false\npermissions: 7") {
		t.Errorf("get_file_info dir: %q", info.Text)
	}
	want(t, cs, "list_allowed_directories", obj{}, "Allowed directories:\n"+R)

	// Changing.
	want(t, cs, "write_file", obj{"path": "new/x.txt", "content": "abc"}, "Successfully wrote to new/x.txt")
	want(t, cs, "read_text_file", obj{"path": "new/x.txt"}, "abc")
	want(t, cs, "create_directory", obj{"path": "made/a/b"}, "Successfully created directory made/a/b")
	want(t, cs, "list_directory", obj{"path": "made/a"}, "[DIR] b")
	want(t, cs, "edit_file", obj{"path": "code.go", "edits": []obj{{"oldText": "if a {\n    b()\n}", "newText": "if z {\n  c()\n  d()\n}"}}},
		"```diff\nIndex: "+R+"/code.go\n===================================================================\n--- "+R+"/code.go\toriginal\n+++ "+R+"/code.go\tmodified\n@@ -1,5 +1,6 @@\n func x() {\n-    if a {\n-        b()\n-    }\n+    if z {\n+    c()\n+  d()\n }\n+}\n```\n\n")
	want(t, cs, "read_text_file", obj{"path": "code.go"}, "func x() {\n    if z {\n    c()\n  d()\n}\n}\n")
	want(t, cs, "edit_file", obj{"path": "a.txt", "dryRun": true, "edits": []obj{{"oldText": "line", "newText": "L", "replaceAll": true}}},
		"```diff\nIndex: "+R+"/a.txt\n===================================================================\n--- "+R+"/a.txt\toriginal\n+++ "+R+"/a.txt\tmodified\n@@ -1,3 +1,3 @@\n-line1\n-line2\n-line3\n+L1\n+L2\n+L3\n```\n\n")
	want(t, cs, "read_text_file", obj{"path": "a.txt"}, "line1\nline2\nline3\n")
	wantError(t, cs, "edit_file", obj{"path": "a.txt", "edits": []obj{{"oldText": "nope", "newText": "x"}}}, "Could not find exact match for edit:\nnope")
	want(t, cs, "move_file", obj{"source": "new/x.txt", "destination": "moved/y.txt"}, "Successfully moved new/x.txt to moved/y.txt")
	wantError(t, cs, "move_file", obj{"source": "a.txt", "destination": "code.go"}, "Destination already exists: "+R+"/code.go")
	want(t, cs, "read_text_file", obj{"path": "moved/y.txt"}, "abc")

	// grep: ripgrep's output shapes, hidden files skipped.
	want(t, cs, "grep", obj{"pattern": "foo"}, "./sub/deep/c.txt")
	want(t, cs, "grep", obj{"pattern": "foo", "caseInsensitive": true, "outputMode": "count"}, "./sub/deep/Zed.txt:1\n./sub/deep/c.txt:1")
	want(t, cs, "grep", obj{"pattern": "bar", "path": "sub", "outputMode": "content", "lineNumbers": true, "contextBefore": 1},
		"sub/deep/c.txt-1-  indented\nsub/deep/c.txt:2:foo bar")
	want(t, cs, "grep", obj{"pattern": "line", "path": "a.txt", "outputMode": "content", "headLimit": 2}, "a.txt:line1\na.txt:line2\n[output truncated to first 2 lines; 1 more hidden]")
	want(t, cs, "grep", obj{"pattern": "zzz"}, "No matches found")

	// exec: where commands run, stdout trimmed; failures carry the exit
	// code and stderr. Elsewhere the tool does not exist.
	if canExec {
		want(t, cs, "exec", obj{"command": "echo hi; echo warn >&2"}, "hi")
		want(t, cs, "exec", obj{"command": "printf %s \"$X\"", "env": obj{"X": "y z"}}, "y z")
		wantError(t, cs, "exec", obj{"command": "echo out; echo bad >&2; exit 3"}, "Command execution failed with exit code 3: bad")
		want(t, cs, "exec", obj{"command": "cat moved/y.txt"}, "abc")
	} else {
		if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "exec", Arguments: obj{"command": "true"}}); err == nil {
			t.Error("exec on a backend without commands did not fail")
		}
	}
}
