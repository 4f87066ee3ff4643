package agentmcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"sync"
	"time"

	ab "github.com/agentbackend/agentbackend"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// newClient is the MCP client of this package's sessions. It advertises no
// roots: the server's workspace is the backend's, not the client's.
func newClient() *mcp.Client {
	return mcp.NewClient(&mcp.Implementation{Name: "agentbackend-client", Version: Version()},
		&mcp.ClientOptions{Capabilities: &mcp.ClientCapabilities{}})
}

// Connect serves b with NewServer(b, opts) in this process and returns an
// MCP client session connected to it over an in-memory transport, for
// agent frameworks that take an MCP session. The session is tracked on b:
// b.Close() closes it and ends the server's goroutines. Closing the
// session earlier is fine too (Close is idempotent).
func Connect(ctx context.Context, b ab.FileBackend, opts *Options) (*mcp.ClientSession, error) {
	if b.Status() == ab.StatusDestroyed {
		return nil, &ab.Error{Code: ab.CodeDestroyed, Op: "connect", Backend: b.Type(), Err: fs.ErrClosed,
			Message: fmt.Sprintf("%s backend is destroyed (Close was called)", b.Type())}
	}
	ct, st := mcp.NewInMemoryTransports()
	ss, err := NewServer(b, opts).Connect(ctx, st, nil)
	if err != nil {
		return nil, err
	}
	cs, err := newClient().Connect(ctx, ct, nil)
	if err != nil {
		ss.Close()
		ss.Wait()
		return nil, err
	}
	b.TrackCloser(&sessionCloser{cs: cs, wait: ss.Wait})
	return cs, nil
}

// sessionCloser closes a client session and waits for what serves it (the
// in-process server session, or the spawned process) to finish.
type sessionCloser struct {
	once sync.Once
	cs   *mcp.ClientSession
	wait func() error
	err  error
}

// Close closes the session once and waits for what served it.
func (c *sessionCloser) Close() error {
	c.once.Do(func() {
		c.err = c.cs.Close()
		if c.wait != nil {
			_ = c.wait()
		}
		if errors.Is(c.err, mcp.ErrConnectionClosed) || errors.Is(c.err, io.EOF) {
			c.err = nil
		}
	})
	return c.err
}

// StdioConfig starts an `agent-backend daemon --local-only` process for
// ConnectStdio. Only RootDir is required.
type StdioConfig struct {
	// Command is the agent-backend executable: a path, or a name looked up
	// in PATH. Empty means "agent-backend". It may be this module's CLI
	// (go install github.com/agentbackend/agentbackend/cmd/agent-backend@latest)
	// or the npm package's.
	Command string
	// Args are put before the daemon arguments, for a command such as node
	// that takes a script first.
	Args []string
	// RootDir is the workspace (--rootDir).
	RootDir string
	// ScopePath, if set, confines the daemon to a subdirectory (--scopePath).
	ScopePath string
	// Isolation and Shell are passed as --isolation and --shell when set.
	Isolation ab.Isolation
	Shell     ab.Shell
	// Env is the process's environment; nil inherits this process's.
	Env []string
	// Stderr receives the daemon's log; nil discards it.
	Stderr io.Writer
	// Owner, if set, tracks the session: Owner.Close() closes it and stops
	// the process.
	Owner ab.Backend
}

// ConnectStdio starts the agent-backend CLI as a local-only daemon serving
// MCP on its standard input and output, and returns a client session
// connected to it. Closing the session (or cfg.Owner) closes the daemon's
// input, which makes it exit; one that does not exit within five seconds
// is terminated.
func ConnectStdio(ctx context.Context, cfg StdioConfig) (*mcp.ClientSession, error) {
	if cfg.RootDir == "" {
		return nil, &ab.Error{Code: ab.CodeInvalidConfiguration, Message: "StdioConfig.RootDir is required"}
	}
	command := cfg.Command
	if command == "" {
		command = "agent-backend"
	}
	args := append(append([]string(nil), cfg.Args...), "daemon", "--rootDir", cfg.RootDir, "--local-only")
	if cfg.ScopePath != "" {
		args = append(args, "--scopePath", cfg.ScopePath)
	}
	if cfg.Isolation != "" {
		args = append(args, "--isolation", string(cfg.Isolation))
	}
	if cfg.Shell != "" {
		args = append(args, "--shell", string(cfg.Shell))
	}
	cmd := exec.Command(command, args...)
	cmd.Env = cfg.Env
	cmd.Stderr = cfg.Stderr
	cs, err := newClient().Connect(ctx, &mcp.CommandTransport{Command: cmd, TerminateDuration: 5 * time.Second}, nil)
	if err != nil {
		return nil, err
	}
	if cfg.Owner != nil {
		cfg.Owner.TrackCloser(&sessionCloser{cs: cs})
	}
	return cs, nil
}
