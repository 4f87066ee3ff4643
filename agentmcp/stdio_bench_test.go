package agentmcp_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkStdio runs each tool of the official MCP filesystem server, in
// one run, against that server (raw: node, over stdio) and this project's
// (sdk: the agent-backend CLI, --local-only, over stdio), with the same
// client (the go-sdk's) on identical workspaces. benchratio prints sdk's
// time as a ratio of the official server's. tools/list is the ListTools
// round trip.
func BenchmarkStdio(b *testing.B) {
	pkg := referencePackage(b, officialPackage, officialVersion)
	cli := buildCLI(b)
	refDir, ourDir := b.TempDir(), b.TempDir()
	for _, dir := range []string{refDir, ourDir} {
		writeBenchWorkspace(b, dir)
	}
	peers := []*peer{
		startPeer(b, "raw", exec.Command("node", filepath.Join(pkg, "dist", "index.js"), refDir), refDir),
		startPeer(b, "sdk", exec.Command(cli, "daemon", "--rootDir", ourDir, "--local-only", "--isolation", "none"), ourDir),
	}
	ctx := context.Background()
	for _, c := range stdioCases() {
		b.Run(c.tool, func(b *testing.B) {
			for _, p := range peers {
				b.Run(p.name, func(b *testing.B) {
					i := 0
					defer reportCPU(b, p.cmd)()
					for b.Loop() {
						if c.args == nil {
							if _, err := p.cs.ListTools(ctx, nil); err != nil {
								b.Fatal(err)
							}
							continue
						}
						args := substituteRoot(c.args(i), p.root)
						i++
						res, err := p.cs.CallTool(ctx, &mcp.CallToolParams{Name: c.tool, Arguments: args})
						if err != nil || res.IsError {
							b.Fatalf("%s: %v %v", c.tool, err, res)
						}
					}
				})
			}
		})
	}
}

// stdioCase is one tool call of BenchmarkStdio: args returns its
// arguments the i-th time (nil args: tools/list).
type stdioCase struct {
	tool string
	args func(i int) map[string]any
}

func stdioCases() []stdioCase {
	content := strings.Repeat(strings.Repeat("y", 63)+"\n", 64)
	return []stdioCase{
		{"tools/list", nil},
		{"read_text_file", fixed(map[string]any{"path": "f.txt"})},
		{"read_multiple_files", fixed(map[string]any{"paths": []any{"f.txt", "g.txt"}})},
		{"write_file", fixed(map[string]any{"path": "w.txt", "content": content})},
		{"edit_file", func(i int) map[string]any {
			from, to := "alpha", "omega"
			if i%2 == 1 {
				from, to = to, from
			}
			return map[string]any{"path": "e.txt", "edits": []any{map[string]any{"oldText": from, "newText": to}}}
		}},
		{"create_directory", fixed(map[string]any{"path": "made/deeper"})},
		{"list_directory", fixed(map[string]any{"path": "hundred"})},
		{"list_directory_with_sizes", fixed(map[string]any{"path": "hundred"})},
		{"directory_tree", fixed(map[string]any{"path": "tree"})},
		{"move_file", func(i int) map[string]any {
			from, to := "m1.txt", "m2.txt"
			if i%2 == 1 {
				from, to = to, from
			}
			return map[string]any{"source": from, "destination": to}
		}},
		{"search_files", fixed(map[string]any{"path": "tree", "pattern": "**/*.go"})},
		{"get_file_info", fixed(map[string]any{"path": "f.txt"})},
		{"list_allowed_directories", fixed(map[string]any{})},
	}
}

func fixed(args map[string]any) func(int) map[string]any {
	return func(int) map[string]any { return args }
}

// writeBenchWorkspace writes the files BenchmarkStdio works on: 4 KiB
// text files, a directory of 100 entries, a tree of 3×3×3 directories with
// a few files each.
func writeBenchWorkspace(b *testing.B, dir string) {
	b.Helper()
	put := func(rel, data string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	put("f.txt", benchFile)
	put("g.txt", benchFile)
	put("e.txt", "first line\nalpha\nlast line\n")
	put("m1.txt", "moving\n")
	for i := range 100 {
		put(fmt.Sprintf("hundred/entry-%03d.txt", i), "x\n")
	}
	for i := range 27 {
		d := fmt.Sprintf("tree/d%d/d%d/d%d", i/9, i/3%3, i%3)
		put(d+"/main.go", "package main\n")
		put(d+"/notes.md", "notes\n")
	}
}

// BenchmarkStdioServer is BenchmarkStdio with a client that costs next to
// nothing: it writes each request as bytes and reads lines until the
// answer with its ID comes, after a 2025-06-18 handshake. What it measures
// is the server's side of a round trip: the official server's (raw) and
// this project's (sdk). floor is a server that does no work at all (it
// answers every request with a fixed result, see serveStdioFloor): its
// ratio is the least any server can reach against raw over a pipe on this
// machine, the process wake-ups and pipe copies both ways.
func BenchmarkStdioServer(b *testing.B) {
	pkg := referencePackage(b, officialPackage, officialVersion)
	cli := buildCLI(b)
	type server struct {
		name string
		cmd  *exec.Cmd
		root string
	}
	refDir, ourDir := b.TempDir(), b.TempDir()
	for _, dir := range []string{refDir, ourDir} {
		writeBenchWorkspace(b, dir)
	}
	var clients []*lineClient
	for _, s := range []server{
		{"raw", exec.Command("node", filepath.Join(pkg, "dist", "index.js"), refDir), refDir},
		{"sdk", exec.Command(cli, "daemon", "--rootDir", ourDir, "--local-only", "--isolation", "none"), ourDir},
		{"floor", stdioFloorCommand(b), ourDir},
	} {
		clients = append(clients, startLineClient(b, s.name, s.cmd, s.root))
	}
	for _, c := range stdioCases() {
		b.Run(c.tool, func(b *testing.B) {
			for _, lc := range clients {
				b.Run(lc.name, func(b *testing.B) {
					i := 0
					defer reportCPU(b, lc.cmd)()
					for b.Loop() {
						method, params := "tools/list", []byte(`{}`)
						if c.args != nil {
							method = "tools/call"
							params, _ = json.Marshal(map[string]any{"name": c.tool, "arguments": substituteRoot(c.args(i), lc.root)})
						}
						i++
						if answer := lc.roundTrip(b, method, params); bytes.Contains(answer, []byte(`"isError":true`)) {
							b.Fatalf("%s: %s", c.tool, answer)
						}
					}
				})
			}
		})
	}
}

// lineClient speaks JSON-RPC over a server's standard streams with no
// more work than it takes.
type lineClient struct {
	name, root string
	cmd        *exec.Cmd
	in         io.WriteCloser
	out        *bufio.Reader
	id         int
	buf        []byte
}

func startLineClient(b *testing.B, name string, cmd *exec.Cmd, root string) *lineClient {
	b.Helper()
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		in.Close()
		_ = cmd.Wait()
	})
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		b.Fatal(err)
	}
	lc := &lineClient{name: name, root: real, cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20)}
	lc.roundTrip(b, "initialize", []byte(`{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}`))
	if _, err := io.WriteString(in, `{"jsonrpc":"2.0","method":"notifications/initialized"}`+"\n"); err != nil {
		b.Fatal(err)
	}
	return lc
}

// roundTrip sends a request and returns the answer's line.
func (lc *lineClient) roundTrip(b *testing.B, method string, params []byte) []byte {
	lc.id++
	lc.buf = fmt.Appendf(lc.buf[:0], `{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`+"\n", lc.id, method, params)
	if _, err := lc.in.Write(lc.buf); err != nil {
		b.Fatal(err)
	}
	want := fmt.Appendf(nil, `"id":%d`, lc.id)
	for {
		line, err := lc.out.ReadBytes('\n')
		if err != nil {
			b.Fatalf("%s: %v", lc.name, err)
		}
		// The ID, followed by the end of the object or another member
		// (servers order members differently).
		if i := bytes.Index(line, want); i >= 0 && i+len(want) < len(line) && (line[i+len(want)] == ',' || line[i+len(want)] == '}') {
			return line
		}
	}
}

// reportCPU measures the CPU time the server process spends (all its
// threads, from /proc/<pid>/task/*/schedstat) over the benchmark and
// reports it per operation as server-cpu-ns/op: on a busy machine the wall
// time of a round trip says little, the server's own CPU time does.
func reportCPU(b *testing.B, cmd *exec.Cmd) (stop func()) {
	if cmd == nil || cmd.Process == nil {
		return func() {}
	}
	start := processCPU(cmd.Process.Pid)
	return func() {
		if used := processCPU(cmd.Process.Pid) - start; used > 0 && b.N > 0 {
			b.ReportMetric(float64(used)/float64(b.N), "server-cpu-ns/op")
		}
	}
}

// processCPU returns the nanoseconds the process's live threads have run.
func processCPU(pid int) int64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var total int64
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		var ns int64
		if _, err := fmt.Sscan(string(data), &ns); err == nil {
			total += ns
		}
	}
	return total
}

// stdioFloorEnv makes the test binary serveStdioFloor instead of running
// tests (TestMain).
const stdioFloorEnv = "AGENTBE_STDIO_FLOOR"

func stdioFloorCommand(b *testing.B) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), stdioFloorEnv+"=1")
	return cmd
}

// serveStdioFloor answers each JSON-RPC request line on in with an empty
// tool result, decoding nothing but the ID: the cheapest server there is.
func serveStdioFloor(in io.Reader, out io.Writer) {
	r := bufio.NewReaderSize(in, 1<<20)
	w := bufio.NewWriter(out)
	var buf []byte
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		i := bytes.Index(line, []byte(`"id":`))
		if i < 0 {
			continue // a notification
		}
		id := line[i+len(`"id":`):]
		id = id[:bytes.IndexAny(id, ",}")]
		buf = append(append(append(buf[:0], `{"jsonrpc":"2.0","id":`...), id...), `,"result":{"content":[{"type":"text","text":""}]}}`+"\n"...)
		_, _ = w.Write(buf)
		if w.Flush() != nil {
			return
		}
	}
}
