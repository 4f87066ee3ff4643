package agentbackend

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the prompt writer and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// The prompt and its answers, with a pipe standing in for a terminal.
func TestTerminalApproverPrompts(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out syncBuffer
	ta := &TerminalApprover{In: r, Out: &out, isTTY: func(*os.File) bool { return true }}
	req := Request{Access: AccessWrite, Op: "write", Path: "src/a.go", Scope: "/ws", User: "bot",
		Rule: Rule{Pattern: "src/**", Action: Ask, Reason: "review edits"}}
	go func() {
		io.WriteString(w, "maybe\ny\na\nn\nd\n\n")
		time.Sleep(50 * time.Millisecond)
		w.Close()
	}()
	for _, want := range []Decision{AllowOnce, AllowAlways, DenyOnce, DenyAlways, DenyOnce} {
		dec, err := ta.Approve(context.Background(), req)
		if err != nil || dec != want {
			t.Fatalf("Approve = %s, %v, want %s", dec, err, want)
		}
	}
	if _, err := ta.Approve(context.Background(), req); err != io.ErrUnexpectedEOF {
		t.Errorf("after EOF: %v", err)
	}
	prompt := out.String()
	for _, want := range []string{`Allow write src/a.go by bot in /ws (rule "src/**": review edits)?`, "[y] once  [a] always  [n] no  [d] never", "Please answer y, a, n or d."} {
		if !strings.Contains(prompt, want) {
			t.Errorf("prompt lacks %q:\n%s", want, prompt)
		}
	}
}

func TestTerminalApproverCancelled(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	ta := &TerminalApprover{In: r, Out: io.Discard, isTTY: func(*os.File) bool { return true }}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	dec, err := ta.Approve(ctx, Request{Access: AccessExec, Op: "exec", Command: "make"})
	if dec != DenyOnce || err != context.DeadlineExceeded {
		t.Errorf("Approve with an expiring context = %s, %v", dec, err)
	}
}

func TestRequestString(t *testing.T) {
	for _, c := range []struct {
		req  Request
		want string
	}{
		{Request{Access: AccessExec, Op: "exec", Command: "go test ./...", Scope: "/ws"}, `exec "go test ./..." in /ws`},
		{Request{Access: AccessDelete, Op: "rename", Path: "a", Target: "b", Scope: "/ws"}, `rename (delete) a [with b] in /ws`},
		{Request{Access: AccessRead, Op: "read", Path: "alias", Resolved: ".env", Scope: "/ws"}, `read alias -> .env in /ws`},
		{Request{Access: AccessList, Op: "readdir", Path: "", Scope: "/"}, `readdir (list) . in /`},
	} {
		if got := c.req.String(); got != c.want {
			t.Errorf("String() = %q, want %q", got, c.want)
		}
	}
}
