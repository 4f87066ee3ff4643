package agentmcp_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	ab "github.com/agentbackend/agentbackend"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// testSessionConcurrency runs n clients' worth of calls at once on one
// session: each writes, reads, lists and searches its own files, and all
// edit one shared file, whose edits must all land.
func testSessionConcurrency(t *testing.T, cs *mcp.ClientSession, n int) {
	t.Helper()
	var shared strings.Builder
	for i := range n {
		fmt.Fprintf(&shared, "key%02d=old\n", i)
	}
	want(t, cs, "write_file", obj{"path": "conc/shared.txt", "content": shared.String()}, "Successfully wrote to conc/shared.txt")
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			dir := fmt.Sprintf("conc/g%02d", i)
			file := dir + "/f.txt"
			content := fmt.Sprintf("goroutine %d\n", i)
			want(t, cs, "write_file", obj{"path": file, "content": content}, "Successfully wrote to "+file)
			want(t, cs, "read_text_file", obj{"path": file}, content)
			want(t, cs, "list_directory", obj{"path": dir}, "[FILE] f.txt")
			want(t, cs, "grep", obj{"pattern": fmt.Sprintf("goroutine %d$", i), "path": dir}, file)
			key := fmt.Sprintf("key%02d=", i)
			r := call(t, cs, "edit_file", obj{"path": "conc/shared.txt", "edits": []obj{{"oldText": key + "old", "newText": key + "new"}}})
			if r.IsError {
				t.Errorf("edit %d: %s", i, r.Text)
			}
		})
	}
	wg.Wait()
	r := call(t, cs, "read_text_file", obj{"path": "conc/shared.txt"})
	if strings.Contains(r.Text, "=old") {
		t.Errorf("lost edits:\n%s", r.Text)
	}
}

func TestConcurrentCalls(t *testing.T) {
	noLeaks(t)
	for name, b := range map[string]ab.FileBackend{"local": newLocal(t, ab.LocalConfig{}), "memory": newMemory(t, "/")} {
		t.Run(name, func(t *testing.T) {
			// One session shared by many goroutines, and several sessions
			// on one backend at once.
			testSessionConcurrency(t, connect(t, b), 16)
			var wg sync.WaitGroup
			for i := range 4 {
				cs := connect(t, b)
				wg.Go(func() {
					file := fmt.Sprintf("s%d.txt", i)
					for j := range 10 {
						content := fmt.Sprint(j)
						want(t, cs, "write_file", obj{"path": file, "content": content}, "Successfully wrote to "+file)
						want(t, cs, "read_text_file", obj{"path": file}, content)
					}
				})
			}
			wg.Wait()
		})
	}
}
