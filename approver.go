package agentbackend

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/term"
)

// Approver answers the Ask decisions of Permissions: a human at a terminal,
// a chat UI, a policy service. Approve must honour ctx: when it ends, the
// operation is denied with an error wrapping ctx.Err(). It must be safe for
// concurrent use.
//
// Calls are coalesced: concurrent checks that need the same answer — the
// same scope layer, access and path (or command line, or host) — share one Approve
// call. The first caller's Request is what the approver sees and its
// Decision answers every caller waiting on it, once-decisions included. A
// waiting caller whose ctx ends is denied with its ctx error without
// disturbing the others; if the first caller's ctx ends during the call,
// the callers still waiting ask again. AllowAlways and DenyAlways are
// remembered for that key for the life of the scope whose permissions
// asked (and of the child scopes that share its layer).
type Approver interface {
	Approve(ctx context.Context, req Request) (Decision, error)
}

// ApproverFunc adapts a function to Approver.
type ApproverFunc func(ctx context.Context, req Request) (Decision, error)

// Approve calls f.
func (f ApproverFunc) Approve(ctx context.Context, req Request) (Decision, error) {
	return f(ctx, req)
}

// Request is what an Approver is asked to decide.
type Request struct {
	Access Access // the access the rule asks about
	Op     string // the operation: "read", "write", "rename", "exec", ...
	// Path is the path relative to the root of the scope whose rule asks
	// (Scope), for file accesses.
	Path string
	// Resolved is the real path Path leads to through symbolic links, when
	// it differs.
	Resolved string
	// Target is the other path of a two-path operation (the destination of
	// a rename when Path is its source, and the other way round).
	Target string
	// Command is the command line, for exec; for network, the command
	// that asks for the connection.
	Command string
	// Host is the host and port a command asks for ("pypi.org:443"), for
	// network.
	Host string
	// Rule is the rule that asked; its Pattern is empty when the policy's
	// default did.
	Rule  Rule
	Scope string // the root directory of the scope whose rule asks
	User  string // ScopeConfig.User of the scope the operation went through
}

// String describes the request in one line, for prompts and logs.
func (r Request) String() string {
	var sb strings.Builder
	sb.WriteString(r.Op)
	if r.Op != string(r.Access) {
		fmt.Fprintf(&sb, " (%s)", r.Access)
	}
	switch {
	case r.Host != "":
		sb.WriteString(" " + r.Host)
		if r.Command != "" {
			fmt.Fprintf(&sb, " for %q", r.Command)
		}
	case r.Command != "":
		fmt.Fprintf(&sb, " %q", r.Command)
	default:
		sb.WriteString(" " + displayPath(r.Path))
		if r.Resolved != "" {
			sb.WriteString(" -> " + displayPath(r.Resolved))
		}
		if r.Target != "" {
			sb.WriteString(" [with " + displayPath(r.Target) + "]")
		}
	}
	if r.User != "" {
		sb.WriteString(" by " + r.User)
	}
	sb.WriteString(" in " + r.Scope)
	if r.Rule.Pattern != "" {
		fmt.Fprintf(&sb, " (rule %q", r.Rule.Pattern)
		if r.Rule.Reason != "" {
			sb.WriteString(": " + r.Rule.Reason)
		}
		sb.WriteString(")")
	} else if r.Rule.Action != "" {
		fmt.Fprintf(&sb, " (the default %s policy)", r.Access)
	}
	return sb.String()
}

// displayPath shows the root as ".".
func displayPath(p string) string {
	if p == "" {
		return "."
	}
	return p
}

// Decision is an Approver's answer.
type Decision string

// The decisions. Anything else is taken as DenyOnce.
const (
	AllowOnce   Decision = "allow_once"   // allow this operation
	DenyOnce    Decision = "deny_once"    // deny this operation
	AllowAlways Decision = "allow_always" // allow it, and the same access to the same path, command or host from now on
	DenyAlways  Decision = "deny_always"  // deny it, and the same access to the same path, command or host from now on
)

// Allows reports whether the decision lets the operation run.
func (d Decision) Allows() bool { return d == AllowOnce || d == AllowAlways }

// ErrNotTerminal is what a TerminalApprover returns (with DenyOnce) when its
// input is not a terminal, so nobody could answer.
var ErrNotTerminal = errors.New("approval needs a terminal, and standard input is not one")

// TerminalApprover asks on a terminal: it prints the request and reads
// y (allow once), a (allow always), n (deny once) or d (deny always). When
// In is not a terminal — a pipe, a file, a CI job — it denies without
// prompting, so a non-interactive run never hangs. Prompts are shown one
// at a time. If ctx ends while it waits, the operation is denied; the line
// typed afterwards answers the next prompt.
type TerminalApprover struct {
	In  *os.File  // nil means os.Stdin
	Out io.Writer // nil means os.Stderr

	mu    sync.Mutex // one prompt at a time
	once  sync.Once
	lines chan string         // lines read from In by one goroutine, started on first use
	isTTY func(*os.File) bool // tests pretend a pipe is a terminal
}

// NewTerminalApprover returns an approver on os.Stdin and os.Stderr.
func NewTerminalApprover() *TerminalApprover { return &TerminalApprover{} }

// Approve prompts for req and waits for an answer.
func (t *TerminalApprover) Approve(ctx context.Context, req Request) (Decision, error) {
	in, out := t.In, t.Out
	if in == nil {
		in = os.Stdin
	}
	if out == nil {
		out = os.Stderr
	}
	isTTY := t.isTTY
	if isTTY == nil {
		isTTY = func(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
	}
	if !isTTY(in) {
		return DenyOnce, ErrNotTerminal
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.once.Do(func() {
		t.lines = make(chan string)
		sc := bufio.NewScanner(in)
		go func() {
			defer close(t.lines)
			for sc.Scan() {
				t.lines <- sc.Text()
			}
		}()
	})
	for {
		fmt.Fprintf(out, "\nAllow %s?\n  [y] once  [a] always  [n] no  [d] never: ", req)
		select {
		case <-ctx.Done():
			fmt.Fprintln(out, "(cancelled)")
			return DenyOnce, ctx.Err()
		case line, ok := <-t.lines:
			if !ok {
				return DenyOnce, io.ErrUnexpectedEOF
			}
			switch strings.ToLower(strings.TrimSpace(line)) {
			case "y", "yes":
				return AllowOnce, nil
			case "a", "always":
				return AllowAlways, nil
			case "n", "no", "":
				return DenyOnce, nil
			case "d", "never":
				return DenyAlways, nil
			}
			fmt.Fprintln(out, "Please answer y, a, n or d.")
		}
	}
}
