// Package daemon is the agent-backend daemon: one HTTP server that serves a
// workspace directory to remote clients, wire-compatible with the
// agent-backend 0.13.2 daemon (npm `agent-backend daemon`).
//
//   - GET /health reports the version, the root and the transports.
//   - POST /mcp serves the MCP tools of package agentmcp over stateless
//     Streamable HTTP, on a backend built per request (dangerous-command
//     blocking on), scoped by the static scope or the X-Scope-Path header.
//   - GET /ssh upgrades to a WebSocket carrying SSH in binary messages: exec
//     and shell sessions run through the same sandbox as LocalBackend, and
//     the sftp subsystem serves the workspace through the same kind of
//     os.Root jail.
//
// A bearer token, compared in constant time, guards /mcp and /ssh when set.
// Without one the daemon serves loopback addresses only: Serve refuses any
// other listener unless Config.InsecureNoAuthPublic says the operator wants
// an open daemon. Embed it with New and Serve (or Handler), or run it with
// Run, which also stops on SIGTERM and SIGINT.
package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/agentmcp"
	"github.com/agentbackend/agentbackend/internal/pathjail"
	"github.com/agentbackend/agentbackend/internal/tmpfile"
	"github.com/agentbackend/agentbackend/internal/wsnet"
)

// Defaults of the limits and timeouts in Config.
const (
	DefaultPort               = 3001
	DefaultMaxBodyBytes       = 32 << 20 // a POST /mcp body (a write_file of a large file fits)
	DefaultMaxConnections     = 1024     // WebSocket /ssh clients connected at once
	DefaultMaxSessionsPerConn = 64       // SSH channels open at once on one connection (the reference client stays under 50)
	DefaultMaxExecsPerConn    = 16       // commands running at once on one connection; more wait their turn
	DefaultShutdownTimeout    = 10 * time.Second
	DefaultReadHeaderTimeout  = 30 * time.Second // to send a request's headers
	DefaultIdleTimeout        = 10 * time.Second // a keep-alive connection between requests
	DefaultWriteTimeout       = time.Minute      // for each write of a response to make progress
)

// Config configures a daemon. Only RootDir is required.
type Config struct {
	// RootDir is the workspace directory; it is created if missing.
	RootDir string
	// ScopePath, if set, is a static scope: every POST /mcp request works
	// in RootDir/ScopePath (requests that name a scope of their own are
	// refused), and so does every SSH session: SFTP resolves paths against
	// the scope's directory and beneath it (links cannot lead out of it),
	// and commands run there, under bubblewrap with only the scope's
	// directory bound. It must not contain "..". (The reference daemon
	// serves the whole RootDir over SFTP whatever its scope.)
	ScopePath string
	// Isolation, Shell and Network configure commands as for LocalBackend
	// (SSH sessions included); the zero values are auto, auto and none. An
	// allow-list Network (see agentbackend.Network) gives every command,
	// MCP's and SSH's, a filtering proxy of its own; its decisions go to
	// Logger, and for POST /mcp the Network policy of Permissions applies
	// too (an Ask is denied: nobody can answer over HTTP).
	Isolation ab.Isolation
	Shell     ab.Shell
	Network   ab.Network
	// AuthToken, if set, is required on POST /mcp (Authorization: Bearer)
	// and on the /ssh upgrade (?token= or Authorization: Bearer). Run
	// removes it from the process environment (see Run); an embedder
	// calling New keeps it out of the environment commands inherit itself.
	AuthToken string
	// InsecureNoAuthPublic lets Serve accept a listener on an address other
	// than loopback while AuthToken is empty: then anyone who can reach the
	// address can run commands as the daemon's user. Without it Serve
	// refuses such a listener.
	InsecureNoAuthPublic bool
	// DisableSSHWS turns off WS /ssh.
	DisableSSHWS bool
	// Permissions, if set, is enforced on every POST /mcp request (tools
	// it denies outright are not offered; refused calls are tool errors).
	// It requires DisableSSHWS: an SSH client runs commands and reaches
	// files below any policy, so New refuses the combination rather than
	// pretend the workspace is guarded. Ask rules are denied (no one can
	// answer over HTTP) unless the policy says otherwise.
	Permissions *ab.Permissions
	// HostKeyPath is the SSH host key file: loaded if present, else a new
	// Ed25519 key is generated and saved there (kept in memory when saving
	// fails). Empty means DefaultHostKeyPath.
	HostKeyPath string
	// HostKey, if set, is the SSH host key, and HostKeyPath is ignored.
	HostKey ssh.Signer
	// Logger receives request and connection logs; nil means slog.Default().
	Logger *slog.Logger
	// MaxBodyBytes bounds a POST /mcp request body; 0 means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxConnections bounds the WS /ssh clients connected at once; 0 means
	// DefaultMaxConnections. One more is answered 503 Service Unavailable
	// with the JSON body {"error":"Too many connections","message":...}
	// and Retry-After, before the upgrade (RemoteBackend reports it as
	// RESOURCE_LIMIT). POST /mcp requests do not count.
	MaxConnections int
	// MaxSessionsPerConn bounds the SSH channels one connection may have
	// open at once; 0 means DefaultMaxSessionsPerConn. One more is refused
	// with the SSH reason "resource shortage" and a message naming the
	// limit; RemoteBackend then opens another connection for it.
	MaxSessionsPerConn int
	// MaxExecsPerConn bounds the commands one connection may run at once
	// (more wait for one to end); 0 means DefaultMaxExecsPerConn.
	// Background processes (sessions that sent
	// agentbackend.RemoteBackgroundRequest) do not count: they are bounded
	// by MaxSessionsPerConn.
	MaxExecsPerConn int
	// Version is what /health and the MCP handshake report; empty means
	// agentmcp.Version(), this module's version.
	Version string
	// ShutdownTimeout bounds how long Serve waits for HTTP requests in
	// flight when it stops; 0 means DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Workspace, if set, is the backend POST /mcp serves instead of the
	// directory RootDir of this host: a pod of the kubernetes package, a
	// container, any FileBackend, with dangerous-command blocking as it was
	// configured there. RootDir must then be empty or the backend's RootDir,
	// and DisableSSHWS is required (SSH and SFTP serve a directory of this
	// host). The daemon does not close it.
	Workspace ab.FileBackend
	// ReadHeaderTimeout bounds how long a client may take to send a
	// request's headers; 0 means DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection may wait for its next
	// request before the server closes it; 0 means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// WriteTimeout bounds each write of an HTTP response, so a client that
	// stops reading is cut off; 0 means DefaultWriteTimeout. It bounds
	// progress, not the whole answer: a command that runs for an hour is
	// answered when it ends, and WS /ssh streams are not subject to it.
	WriteTimeout time.Duration
}

// Daemon serves one workspace. Create it with New; it is safe for
// concurrent use.
type Daemon struct {
	cfg   Config
	log   *slog.Logger
	local *ab.LocalBackend // the workspace, dangerous-command blocking on; nil with Config.Workspace
	ws    ab.FileBackend   // what POST /mcp serves: local or Config.Workspace
	jail  *jail            // the SFTP view of the same directory
	// sessionJail is where SSH sessions start: the workspace, or the
	// static scope (a session may narrow it with ab.RemoteScopeRequest).
	sessionJail *jail
	hostKey     ssh.Signer
	exec        execEnv
	scope       string // the static scope, clean and relative ("" for none)
	handler     http.Handler

	sshServer *ssh.ServerConfig
	mcpServer http.Handler

	trim    *trimmer       // returns memory to the OS after clients leave
	sweep   func()         // stops the sweep of stale temporary files and waits for it
	pending *pendingWrites // the unnamed temporary files of SFTP writes in flight

	mu       sync.Mutex
	conns    map[*wsnet.Conn]struct{} // live WebSocket clients
	admitted int                      // WS /ssh clients admitted (upgrading or live), for MaxConnections
	stopping bool
	connWG   sync.WaitGroup // one per live WebSocket client
	closed   bool
}

// New checks cfg, opens the workspace and loads (or creates) the host key.
func New(cfg Config) (*Daemon, error) {
	if cfg.Workspace != nil {
		return newOnWorkspace(cfg)
	}
	if strings.TrimSpace(cfg.RootDir) == "" {
		return nil, errors.New("daemon: RootDir is required")
	}
	d, err := newDaemon(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Permissions != nil && !cfg.DisableSSHWS {
		return nil, errors.New("daemon: Permissions apply to POST /mcp only, and an SSH client on /ssh could run anything: disable SSH over WebSocket (DisableSSHWS, --disable-ssh-ws) to serve a permission policy")
	}
	local, err := ab.NewLocal(ab.LocalConfig{RootDir: cfg.RootDir, Isolation: cfg.Isolation, Shell: cfg.Shell,
		Network: cfg.Network, Logger: d.log})
	if err != nil {
		return nil, err
	}
	d.local, d.ws = local, local
	fail := func(err error) (*Daemon, error) {
		local.Close()
		if d.jail != nil {
			d.jail.close()
		}
		return nil, err
	}
	if cfg.Permissions != nil {
		// Permissions a scope of this workspace refuses (network rules
		// under the host's network) fail here, not on every request.
		s, err := local.Scope(".", &ab.ScopeConfig{Permissions: cfg.Permissions})
		if err != nil {
			return fail(fmt.Errorf("daemon: %w", err))
		}
		s.Close()
	}
	if d.scope != "" {
		if err := local.Mkdir(context.Background(), d.scope); err != nil {
			return fail(err)
		}
	}
	abs, err := filepath.Abs(cfg.RootDir)
	if err != nil {
		return fail(err)
	}
	if d.jail, err = openJail(local.RootDir(), filepath.ToSlash(abs)); err != nil {
		return fail(err)
	}
	d.sessionJail = d.jail
	if d.scope != "" {
		d.sessionJail = d.jail.scoped(d.scope)
	}
	if d.exec, err = newExecEnv(local, cfg, d.log); err != nil {
		return fail(err)
	}
	d.hostKey = cfg.HostKey
	if d.hostKey == nil && !cfg.DisableSSHWS {
		path := cfg.HostKeyPath
		if path == "" {
			path = DefaultHostKeyPath
		}
		if d.hostKey, err = loadOrCreateHostKey(path, d.log); err != nil {
			return fail(err)
		}
	}
	if d.hostKey != nil {
		d.sshServer = d.sshConfig()
	}
	d.mcpServer = d.mcpHandler()
	d.handler = d.routes()
	d.trim = startTrimmer()
	d.sweep = d.startSweep()
	return d, nil
}

// newOnWorkspace makes a daemon that serves POST /mcp from cfg.Workspace.
func newOnWorkspace(cfg Config) (*Daemon, error) {
	root := cfg.Workspace.RootDir()
	if cfg.RootDir != "" && cfg.RootDir != root {
		return nil, fmt.Errorf("daemon: RootDir %q is not the workspace's root %q", cfg.RootDir, root)
	}
	if !cfg.DisableSSHWS {
		return nil, errors.New("daemon: SSH over WebSocket serves a directory of this host, not Workspace: disable it (DisableSSHWS, --disable-ssh-ws)")
	}
	if cfg.Isolation != "" || cfg.Shell != "" || cfg.Network != "" {
		return nil, errors.New("daemon: Isolation, Shell and Network configure a directory of this host, not Workspace, whose commands run as its backend runs them")
	}
	cfg.RootDir = root
	d, err := newDaemon(cfg)
	if err != nil {
		return nil, err
	}
	d.ws = cfg.Workspace
	if d.scope != "" {
		if err := d.ws.Mkdir(context.Background(), d.scope); err != nil {
			return nil, err
		}
	}
	d.mcpServer = d.mcpHandler()
	d.handler = d.routes()
	return d, nil
}

// newDaemon makes the Daemon of cfg with its logger and static scope, the
// part both kinds of workspace share.
func newDaemon(cfg Config) (*Daemon, error) {
	d := &Daemon{cfg: cfg, log: cfg.Logger, conns: make(map[*wsnet.Conn]struct{}), pending: newPendingWrites()}
	if d.log == nil {
		d.log = slog.Default()
	}
	if cfg.ScopePath != "" {
		if strings.Contains(cfg.ScopePath, "..") {
			return nil, fmt.Errorf("daemon: ScopePath %q must not contain path traversal sequences (..)", cfg.ScopePath)
		}
		if rel, _ := pathjail.ValidScope(cfg.ScopePath); rel != "." {
			d.scope = rel
		}
	}
	return d, nil
}

// version is what /health and the MCP handshake report.
func (d *Daemon) version() string {
	return cmp.Or(d.cfg.Version, agentmcp.Version())
}

// RootDir returns the workspace directory as configured.
func (d *Daemon) RootDir() string { return d.cfg.RootDir }

// HostKey returns the public SSH host key clients should pin, or nil when
// WS /ssh is disabled.
func (d *Daemon) HostKey() ssh.PublicKey {
	if d.hostKey == nil {
		return nil
	}
	return d.hostKey.PublicKey()
}

// Backend returns the workspace backend the daemon serves (dangerous-command
// blocking on), nil when it serves Config.Workspace. It is closed by Close.
func (d *Daemon) Backend() *ab.LocalBackend { return d.local }

// Handler returns the daemon's HTTP handler, for embedding in a server of
// the caller's. WebSocket clients it accepts are closed by Shutdown. It
// sets each response's write deadlines itself (see Config.WriteTimeout),
// replacing the server's WriteTimeout; the server's ReadHeaderTimeout and
// IdleTimeout are the caller's to set.
func (d *Daemon) Handler() http.Handler { return d.handler }

// Serve serves HTTP on ln until ctx is cancelled or the listener fails,
// then shuts down in the order of the reference daemon: every WebSocket
// client is closed with 1000 "Server shutting down" and its sessions end
// (their commands are killed), then the HTTP server stops, waiting up to
// Config.ShutdownTimeout for requests in flight. It returns nil after a
// shutdown caused by ctx. Serve does not Close the daemon.
//
// Without Config.AuthToken, Serve refuses (and closes) a listener on an
// address other than loopback, unless Config.InsecureNoAuthPublic is set.
func (d *Daemon) Serve(ctx context.Context, ln net.Listener) error {
	return d.serve(ctx, []net.Listener{ln})
}

// serve is Serve on several listeners (Run's loopback pair) with one
// server.
func (d *Daemon) serve(ctx context.Context, lns []net.Listener) error {
	for _, ln := range lns {
		if err := d.checkExposure(ln.Addr()); err != nil {
			for _, ln := range lns {
				ln.Close()
			}
			return err
		}
	}
	srv := &http.Server{
		Handler:           d.handler,
		ReadHeaderTimeout: positiveOr(d.cfg.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		IdleTimeout:       positiveOr(d.cfg.IdleTimeout, DefaultIdleTimeout),
		// No WriteTimeout: it would cut a long answer off; the handler
		// bounds each write instead (see logRequests).
		ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { serveErr <- srv.Serve(ln) }()
	}
	var err error
	select {
	case err = <-serveErr:
		d.Shutdown()
		_ = srv.Close()
	case <-ctx.Done():
		d.log.Info("agentbe-daemon shutting down")
		d.Shutdown()
		sctx, cancel := context.WithTimeout(context.Background(), positiveOr(d.cfg.ShutdownTimeout, DefaultShutdownTimeout))
		defer cancel()
		err = srv.Shutdown(sctx)
		if errors.Is(err, context.DeadlineExceeded) {
			err = srv.Close()
		}
		<-serveErr // http.ErrServerClosed
		d.log.Info("agentbe-daemon stopped")
	}
	for range len(lns) - 1 {
		<-serveErr
	}
	return err
}

func positiveOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Shutdown closes every WebSocket client with 1000 "Server shutting down",
// refuses new ones, and waits until their SSH sessions have ended. It is
// the first step of Serve's shutdown, for callers that embed Handler in
// their own server.
func (d *Daemon) Shutdown() {
	d.mu.Lock()
	d.stopping = true
	conns := make([]*wsnet.Conn, 0, len(d.conns))
	for c := range d.conns {
		conns = append(conns, c)
	}
	d.mu.Unlock()
	for _, c := range conns {
		_ = c.CloseWith(1000, "Server shutting down")
	}
	d.connWG.Wait()
}

// Close shuts down the WebSocket clients (see Shutdown) and releases the
// workspace. It is idempotent.
func (d *Daemon) Close() error {
	d.Shutdown()
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	if d.local == nil {
		return nil // Config.Workspace is the caller's
	}
	d.trim.close()
	d.sweep()
	return errors.Join(d.local.Close(), d.jail.close())
}

// Run runs a daemon for cfg on addr until ctx is cancelled or the process
// receives SIGTERM or SIGINT, then shuts it down gracefully (see Serve) and
// returns nil.
//
// addr is host:port. An empty host (":3001"; an empty addr means
// DefaultPort) is every interface when cfg.AuthToken is set, and loopback
// only, 127.0.0.1 and ::1, when it is not; "localhost" is loopback too.
// Without a token, a host that is not loopback is refused (see Serve).
//
// Run removes the daemon's credentials from the process environment
// before it starts anything, so no command it runs inherits them: the
// variables AUTH_TOKEN and MCP_AUTH_TOKEN, and any variable holding the
// token.
func Run(ctx context.Context, cfg Config, addr string) error {
	if addr == "" {
		addr = fmt.Sprintf(":%d", DefaultPort)
	}
	scrubSecrets(cfg.AuthToken)
	d, err := New(cfg)
	if err != nil {
		return err
	}
	defer d.Close()
	lns, err := d.listen(addr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	d.logStart(lns)
	return d.serve(ctx, lns)
}

// startSweep removes, in the background, the temporary files that writers
// killed before their rename left in the workspace (a daemon killed in the
// instant a write takes its place, or mid-write on a file system without
// O_TMPFILE): those unchanged since the daemon started (see
// internal/tmpfile). It returns the function that stops it.
func (d *Daemon) startSweep() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	started := time.Now()
	go func() {
		defer close(done)
		n, err := tmpfile.Sweep(ctx, d.jail.root, started)
		if n > 0 || (err != nil && ctx.Err() == nil) {
			d.log.Info("removed temporary files left by interrupted writes", "count", n, "err", err)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// track registers a WebSocket client; it fails once shutdown has begun.
func (d *Daemon) track(c *wsnet.Conn) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopping {
		return false
	}
	d.conns[c] = struct{}{}
	d.connWG.Add(1)
	return true
}

func (d *Daemon) untrack(c *wsnet.Conn) {
	d.mu.Lock()
	delete(d.conns, c)
	d.mu.Unlock()
	d.connWG.Done()
}

// admit reserves a place for one more WS /ssh client, or reports false
// when MaxConnections are there already. release gives it back.
func (d *Daemon) admit() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.admitted >= d.maxConnections() {
		return false
	}
	d.admitted++
	return true
}

func (d *Daemon) release() {
	d.mu.Lock()
	d.admitted--
	d.mu.Unlock()
	d.trim.clientLeft()
}

func (d *Daemon) maxConnections() int {
	if d.cfg.MaxConnections > 0 {
		return d.cfg.MaxConnections
	}
	return DefaultMaxConnections
}
