package agentmcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// stdioSession is a ServeStdio session over pipes, with a client that
// sends raw JSON-RPC and collects the answers by ID.
type stdioSession struct {
	t    *testing.T
	s    *stdio
	in   *io.PipeWriter
	done chan error

	mu      sync.Mutex
	answers map[string]json.RawMessage // whole responses, by raw ID
	arrived chan struct{}
	id      int
}

func newStdioSession(t *testing.T, b ab.FileBackend) *stdioSession {
	return startStdioSession(t, b, true)
}

// startStdioSession serves b over pipes: with ServeStdio (shortcut set),
// or with the SDK alone (NewServer on its IOTransport).
func startStdioSession(t *testing.T, b ab.FileBackend, shortcut bool) *stdioSession {
	t.Helper()
	sessions := make(chan *stdio, 1)
	stdioStarted = func(s *stdio) { sessions <- s }
	t.Cleanup(func() { stdioStarted = nil })
	sr, cw := io.Pipe()
	cr, sw := io.Pipe()
	ss := &stdioSession{t: t, in: cw, done: make(chan error, 1), answers: map[string]json.RawMessage{}, arrived: make(chan struct{}, 1000)}
	go func() {
		if shortcut {
			ss.done <- ServeStdio(context.Background(), b, nil, sr, sw)
			return
		}
		err := NewServer(b, nil).Run(context.Background(), &mcp.IOTransport{Reader: sr, Writer: sw})
		if errors.Is(err, mcp.ErrConnectionClosed) || errors.Is(err, io.EOF) {
			err = nil
		}
		ss.done <- err
	}()
	go func() {
		r := bufio.NewReaderSize(cr, 1<<20)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			var m struct{ ID json.RawMessage }
			require.NoError(t, json.Unmarshal(line, &m), "%s", line)
			ss.mu.Lock()
			ss.answers[string(m.ID)] = line
			ss.mu.Unlock()
			ss.arrived <- struct{}{}
		}
	}()
	if shortcut {
		ss.s = <-sessions
	}
	t.Cleanup(func() {
		cw.Close()
		require.NoError(t, <-ss.done)
		sw.Close()
	})
	return ss
}

// send writes a raw message.
func (ss *stdioSession) send(msg string) {
	ss.t.Helper()
	_, err := io.WriteString(ss.in, msg+"\n")
	require.NoError(ss.t, err)
}

// request sends a request with a fresh ID and returns the ID.
func (ss *stdioSession) request(method, params string) string {
	ss.id++
	id := fmt.Sprint(ss.id)
	ss.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"method":%q,"params":%s}`, id, method, params))
	return id
}

// answer waits for the response to id and returns it decoded, less the ID.
func (ss *stdioSession) answer(id string) map[string]any {
	ss.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		ss.mu.Lock()
		line, ok := ss.answers[id]
		ss.mu.Unlock()
		if ok {
			var m map[string]any
			require.NoError(ss.t, json.Unmarshal(line, &m))
			delete(m, "id")
			return m
		}
		select {
		case <-ss.arrived:
		case <-deadline:
			ss.t.Fatalf("no answer to %s", id)
		}
	}
}

// call sends a request and waits for its answer.
func (ss *stdioSession) call(method, params string) map[string]any {
	return ss.answer(ss.request(method, params))
}

// newProtocolMeta is the _meta a go-sdk client of the protocol without a
// handshake sends with every request.
const newProtocolMeta = `{"io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"},"io.modelcontextprotocol/protocolVersion":"2026-07-28"}`

// TestStdioShortcutAnswersAsTheSDK: the shortcut's answer to a tools/call
// or tools/list is the SDK's answer to the same request, for every kind of
// result (text, error, media, bad arguments), in the protocol with a
// handshake and in the one without; and the shortcut does answer.
func TestStdioShortcutAnswersAsTheSDK(t *testing.T) {
	dir := t.TempDir()
	lb, err := ab.NewLocal(ab.LocalConfig{RootDir: dir, Isolation: ab.IsolationNone})
	require.NoError(t, err)
	defer lb.Close()
	ctx := context.Background()
	require.NoError(t, lb.Write(ctx, "f.txt", []byte("line one\n<b>&\"quoted\"\u00e9\x01\n")))
	require.NoError(t, lb.Write(ctx, "bad-utf8.txt", []byte("a\xffb\n")))
	require.NoError(t, lb.Write(ctx, "p.png", []byte("\x89PNG\r\n\x1a\n")))
	require.NoError(t, lb.Write(ctx, "d/x.go", []byte("package x\n")))

	calls := []string{
		`{"name":"read_text_file","arguments":{"path":"f.txt"}}`,
		`{"name":"read_text_file","arguments":{"path":"bad-utf8.txt"}}`,
		`{"name":"read_text_file","arguments":{"path":"missing.txt"}}`,
		`{"name":"read_text_file","arguments":{"path":"../escape"}}`,
		`{"name":"read_text_file","arguments":{"nopath":1}}`,
		`{"name":"read_text_file"}`,
		`{"name":"read_media_file","arguments":{"path":"p.png"}}`,
		`{"name":"list_directory","arguments":{"path":"."}}`,
		`{"name":"search_files","arguments":{"path":".","pattern":"**/*.go"}}`,
		`{"name":"get_file_info","arguments":{"path":"f.txt"}}`,
		`{"name":"exec","arguments":{"command":"echo out; echo err >&2; exit 3"}}`,
		`{"name":"no_such_tool","arguments":{}}`,
	}
	for _, protocol := range []string{"handshake", "no handshake"} {
		t.Run(protocol, func(t *testing.T) {
			sdk, ours := startStdioSession(t, lb, false), newStdioSession(t, lb)
			withMeta := func(params string) string { return params }
			for _, ss := range []*stdioSession{sdk, ours} {
				if protocol == "handshake" {
					ss.call("initialize", `{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}`)
					ss.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
				} else {
					withMeta = func(params string) string {
						if params == "{}" {
							return `{"_meta":` + newProtocolMeta + `}`
						}
						return `{"_meta":` + newProtocolMeta + `,` + params[1:]
					}
					ss.call("server/discover", withMeta("{}"))
				}
			}
			// The first call teaches the shortcut what the SDK adds.
			assert.Equal(t, sdk.call("tools/call", withMeta(calls[0])), ours.call("tools/call", withMeta(calls[0])))
			before := ours.s.answered.Load()
			for _, c := range calls {
				assert.Equal(t, sdk.call("tools/call", withMeta(c)), ours.call("tools/call", withMeta(c)), "%s", c)
			}
			for range 2 {
				assert.Equal(t, sdk.call("tools/list", withMeta("{}")), ours.call("tools/list", withMeta("{}")))
			}
			// The shortcut answered every call but the unknown tool's, and
			// the second list.
			assert.Equal(t, int64(len(calls)-1+1), ours.s.answered.Load()-before)
		})
	}
}

// TestStdioShortcutConcurrentAndCancelled: calls run at once and each is
// answered once; a call the host cancels is stopped (its command killed)
// and the session goes on; at the end of input every call read is
// answered before ServeStdio returns.
func TestStdioShortcutConcurrentAndCancelled(t *testing.T) {
	dir := t.TempDir()
	lb, err := ab.NewLocal(ab.LocalConfig{RootDir: dir, Isolation: ab.IsolationNone})
	require.NoError(t, err)
	defer lb.Close()
	ss := newStdioSession(t, lb)
	ss.call("initialize", `{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}`)
	ss.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	ss.call("tools/call", `{"name":"list_allowed_directories","arguments":{}}`)

	marker := filepath.Join(dir, "ran")
	slow := ss.request("tools/call", `{"name":"exec","arguments":{"command":"sleep 30; touch ran"}}`)
	var ids []string
	for i := range 50 {
		ids = append(ids, ss.request("tools/call", fmt.Sprintf(`{"name":"write_file","arguments":{"path":"w%d.txt","content":"%d"}}`, i, i)))
	}
	for i, id := range ids {
		res := ss.answer(id)["result"].(map[string]any)
		assert.Nil(t, res["isError"], "write %d: %v", i, res)
	}
	start := time.Now()
	ss.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":` + slow + `}}`)
	res := ss.answer(slow)["result"].(map[string]any)
	assert.Equal(t, true, res["isError"], "%v", res)
	assert.Less(t, time.Since(start), 20*time.Second)
	_, err = os.Stat(marker)
	assert.True(t, os.IsNotExist(err), "the cancelled command ran on")

	// Requests written and the input closed at once are all answered.
	last := ss.request("tools/call", `{"name":"exec","arguments":{"command":"sleep 0.3; echo late"}}`)
	ss.in.Close()
	text := ss.answer(last)["result"].(map[string]any)["content"].([]any)[0].(map[string]any)["text"]
	assert.True(t, strings.Contains(fmt.Sprint(text), "late"), "%v", text)
}

// TestStdioShortcutForgetsOnToolsChange: an announcement that the tools
// changed makes the shortcut forget the lists and extras it learnt.
func TestStdioShortcutForgetsOnToolsChange(t *testing.T) {
	s := &stdio{learning: map[string]learn{`7`: {list: true, key: "{}"}, `8`: {key: ""}},
		lists: map[string]json.RawMessage{}, extras: map[string][]byte{}}
	s.sdkWrote([]byte(`{"jsonrpc":"2.0","id":7,"result":{"tools":[]}}` + "\n"))
	s.sdkWrote([]byte(`{"jsonrpc":"2.0","id":8,"result":{"_meta":{"a":1},"content":[],"isError":true}}` + "\n"))
	assert.Equal(t, `{"tools":[]}`, string(s.lists["{}"]))
	assert.Equal(t, `"_meta":{"a":1}`, string(s.extras[""]))
	assert.JSONEq(t, `{"content":[],"_meta":{"a":1}}`, string(withExtra([]byte(`{"content":[]}`), s.extras[""])))
	s.sdkWrote([]byte(`{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}` + "\n"))
	assert.Empty(t, s.lists)
	assert.Empty(t, s.extras)
	assert.True(t, bytes.Equal(withExtra([]byte(`{}`), []byte(`"a":1`)), []byte(`{"a":1}`)))
}
