package agentbackend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/agentbackend/agentbackend/internal/pathjail"
)

// RemoteConfig configures a RemoteBackend. Host, RootDir and a host-key
// policy (HostKey, HostKeyCallback or InsecureIgnoreHostKey) are required;
// every other zero value is the safe default.
type RemoteConfig struct {
	// Host is the daemon's host name or address.
	Host string
	// Port is the daemon's HTTP port; 0 means 3001.
	Port int
	// Secure uses wss:// and https://; port 443 implies it.
	Secure bool
	// RootDir is the workspace root on the daemon host, the daemon's
	// --rootDir (or a directory below it). Paths resolve against it.
	RootDir string
	// AuthToken is the daemon's --auth-token, sent as a bearer token.
	AuthToken string
	// Headers are extra HTTP headers for the WebSocket upgrade and the MCP
	// requests (for a proxy in front of the daemon). They cannot override
	// Authorization, X-Root-Dir or X-Scope-Path.
	Headers map[string]string
	// HTTPClient dials the WebSocket and sends MCP requests; nil means
	// http.DefaultClient.
	HTTPClient *http.Client

	// HostKey pins the daemon's SSH host key (see daemon.Daemon.HostKey, or
	// the fingerprint the daemon logs at start): any other key fails the
	// connection.
	HostKey ssh.PublicKey
	// HostKeyCallback, if set, decides about the host key instead (for
	// example golang.org/x/crypto/ssh/knownhosts).
	HostKeyCallback ssh.HostKeyCallback
	// InsecureIgnoreHostKey accepts ANY host key, as the reference client
	// does. DANGER: whoever can intercept the connection (a proxy, a
	// compromised network, a spoofed DNS answer) can then impersonate the
	// daemon, read every file and command you send and answer them with
	// anything. The WebSocket token does not help: it is sent to whoever
	// answers. Use it only on loopback, in tests, or behind wss:// whose TLS
	// certificate you verify; pin HostKey otherwise.
	InsecureIgnoreHostKey bool

	// ConnectTimeout bounds establishing a connection (WebSocket and SSH
	// handshakes); 0 means 30s.
	ConnectTimeout time.Duration
	// KeepaliveInterval is how often an idle-or-not connection is probed;
	// 0 means 30s, negative turns probing off. KeepaliveCountMax probes in
	// a row without an answer (0 means 3) declare the connection dead.
	KeepaliveInterval time.Duration
	KeepaliveCountMax int
	// Reconnect configures reconnection after a lost connection.
	Reconnect ReconnectConfig

	// AllowDangerous turns off the dangerous-command check that Exec runs
	// before sending a command. Safety is the policy; nil means
	// DefaultSafety.
	AllowDangerous bool
	Safety         *SafetyPolicy
	// MaxOutputLength bounds how many bytes of each of stdout and stderr
	// Exec keeps, as LocalConfig.MaxOutputLength.
	MaxOutputLength int
	// Env is given to every command, under scope and per-call variables.
	// Checked with ValidateEnv.
	Env map[string]string
	// Background bounds what the backend keeps of its background processes
	// (see Start); the zero value means the defaults.
	Background ProcessConfig
	// Logger receives the backend's warnings (a daemon that cannot jail
	// scopes, see ScopedBackend); nil means slog.Default().
	Logger *slog.Logger
}

// ReconnectConfig configures reconnection, with the specification's
// defaults for zero values: enabled, 5 retries, 1s initial delay growing by
// 2× up to 30s.
type ReconnectConfig struct {
	// Disabled turns reconnection off: after a loss the backend stays
	// disconnected until the next operation connects again.
	Disabled bool
	// MaxRetries bounds the attempts after a loss; 0 means 5 and a negative
	// value means no limit. (The reference's 0 = unlimited does not fit Go's
	// zero values.)
	MaxRetries int
	// InitialDelay is the delay before the first retry; 0 means 1s.
	InitialDelay time.Duration
	// MaxDelay caps the delay; 0 means 30s.
	MaxDelay time.Duration
	// Multiplier grows the delay after each attempt; 0 means 2.
	Multiplier float64
}

// delay returns the backoff before attempt (0-based):
// min(initial × multiplier^attempt, max).
func (c ReconnectConfig) delay(attempt int) time.Duration {
	d := float64(c.InitialDelay) * math.Pow(c.Multiplier, float64(attempt))
	if d > float64(c.MaxDelay) || math.IsInf(d, 0) || math.IsNaN(d) {
		return c.MaxDelay
	}
	return time.Duration(d)
}

// RemoteBackend is a workspace on another host, served by the agent-backend
// daemon (this module's daemon package, or the reference agent-backend
// 0.13.2 daemon): SSH carried over a WebSocket to the daemon's /ssh
// endpoint, file operations over one cached SFTP session, commands over SSH
// exec sessions.
//
// It connects on the first operation (or Connect) and moves through the
// statuses of the specification: disconnected → connecting → connected. On a
// lost connection (the daemon stopped, the network failed, KeepaliveCountMax
// probes went unanswered) the operations in flight fail with
// CONNECTION_CLOSED, the status goes to disconnected and, unless disabled,
// reconnection is tried with exponential backoff (status reconnecting while
// a retry runs). Operations made meanwhile try to connect themselves. A
// daemon that refuses the token fails with AUTH_FAILED and is not retried in
// the background. Close cancels a scheduled retry.
//
// Paths resolve against RemoteConfig.RootDir on this side, with the rule of
// every backend; the daemon jails them again. Cancelling an operation's ctx
// returns at once; a request already sent may still take effect on the
// daemon, except that a cancelled Write never replaces the file.
type RemoteBackend struct {
	*remoteCore // shared with the views of the backend's scopes

	root  string // this view's directory on the daemon host; RootDir()
	scope string // a scope's view: its levels, NUL-separated (see sshext.ScopeRequest); "" for the backend
}

// remoteCore is the part of a RemoteBackend that its scopes' views share:
// configuration, status, the connection, background processes.
type remoteCore struct {
	lifecycle

	cfg       RemoteConfig
	log       *slog.Logger
	noJail    sync.Once // the warning that the daemon cannot jail scopes, given once
	wsURL     string
	header    http.Header
	hostKeyCB ssh.HostKeyCallback
	safety    *SafetyPolicy
	dangerOK  bool
	maxOutput int
	bg        *processTable // background processes (Start)

	mu       sync.Mutex
	conn     *remoteConn // the live connection, if any
	dialing  *dialCall   // the connection attempt in flight, if any
	attempts int         // retries since the last successful connection
	retry    *time.Timer // the scheduled retry, if any
	authFail bool        // the daemon refused the token: no background retries
}

var (
	_ FileBackend = (*RemoteBackend)(nil)
	_ InfoLister  = (*RemoteBackend)(nil)
	_ Grepper     = (*RemoteBackend)(nil)
	_ Globber     = (*RemoteBackend)(nil)
)

// dialCall is one connection attempt; waiters block on done.
type dialCall struct {
	done   chan struct{}
	cancel context.CancelFunc // ends the attempt (Close)
	conn   *remoteConn
	err    error
}

// NewRemote checks cfg and returns a disconnected backend; it connects on
// the first operation, or with Connect. A configuration error is
// INVALID_CONFIGURATION.
func NewRemote(cfg RemoteConfig) (*RemoteBackend, error) {
	if strings.TrimSpace(cfg.Host) == "" {
		return nil, errConfig("RemoteConfig.Host is required")
	}
	if strings.TrimSpace(cfg.RootDir) == "" || !strings.HasPrefix(cfg.RootDir, "/") {
		return nil, errConfig("RemoteConfig.RootDir must be an absolute path on the daemon host, got %q", cfg.RootDir)
	}
	if cfg.Port == 0 {
		cfg.Port = 3001
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, errConfig("RemoteConfig.Port %d is not a port", cfg.Port)
	}
	if err := ValidateEnv(cfg.Env); err != nil {
		return nil, err
	}
	bg, err := cfg.Background.withDefaults("RemoteConfig.Background")
	if err != nil {
		return nil, err
	}
	b := &RemoteBackend{root: cleanRoot(cfg.RootDir), remoteCore: &remoteCore{cfg: cfg, log: cfg.Logger,
		safety: cfg.Safety, dangerOK: cfg.AllowDangerous, bg: newProcessTable(bg)}}
	if b.log == nil {
		b.log = slog.Default()
	}
	switch {
	case cfg.HostKeyCallback != nil:
		b.hostKeyCB = cfg.HostKeyCallback
	case cfg.HostKey != nil:
		b.hostKeyCB = ssh.FixedHostKey(cfg.HostKey)
	case cfg.InsecureIgnoreHostKey:
		b.hostKeyCB = ssh.InsecureIgnoreHostKey()
	default:
		return nil, errConfig("RemoteConfig needs a host-key policy: HostKey (pin the daemon's key), HostKeyCallback, or InsecureIgnoreHostKey")
	}
	b.maxOutput = cfg.MaxOutputLength
	if b.maxOutput == 0 {
		b.maxOutput = DefaultMaxOutputLength
	}
	rc := &b.cfg.Reconnect
	if rc.MaxRetries == 0 {
		rc.MaxRetries = 5
	}
	if rc.InitialDelay <= 0 {
		rc.InitialDelay = time.Second
	}
	if rc.MaxDelay <= 0 {
		rc.MaxDelay = 30 * time.Second
	}
	if rc.Multiplier <= 0 {
		rc.Multiplier = 2
	}
	if b.cfg.ConnectTimeout <= 0 {
		b.cfg.ConnectTimeout = 30 * time.Second
	}
	if b.cfg.KeepaliveInterval == 0 {
		b.cfg.KeepaliveInterval = 30 * time.Second
	}
	if b.cfg.KeepaliveCountMax <= 0 {
		b.cfg.KeepaliveCountMax = 3
	}
	scheme := "ws"
	if cfg.Secure || cfg.Port == 443 {
		scheme = "wss"
	}
	b.wsURL = scheme + "://" + hostPort(cfg.Host, cfg.Port) + "/ssh"
	b.header = http.Header{}
	for k, v := range cfg.Headers {
		switch http.CanonicalHeaderKey(k) {
		case "Authorization", "X-Root-Dir", "X-Scope-Path":
		default:
			b.header.Set(k, v)
		}
	}
	if cfg.AuthToken != "" {
		b.header.Set("Authorization", "Bearer "+cfg.AuthToken)
	}
	b.init(TypeRemote, StatusDisconnected)
	return b, nil
}

func hostPort(host string, port int) string {
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]" // IPv6 literal
	}
	return host + ":" + strconv.Itoa(port)
}

// RootDir returns the workspace root on the daemon host.
func (b *RemoteBackend) RootDir() string { return b.root }

// Scope returns a view of the subdirectory path, which this module's
// daemon jails beneath that directory (the reference daemon cannot: the
// path rule alone then keeps its paths inside). See ScopedBackend.
func (b *RemoteBackend) Scope(path string, cfg *ScopeConfig) (*ScopedBackend, error) {
	return NewScope(b, path, cfg)
}

// Connect connects now instead of on the first operation. It returns at
// once when connected.
func (b *RemoteBackend) Connect(ctx context.Context) error {
	if err := b.checkOpen("connect"); err != nil {
		return err
	}
	_, err := b.connection(ctx, "connect")
	return err
}

// Close ("destroy") cancels a scheduled retry, closes the tracked closers,
// kills the background processes still running (as Kill does) and waits
// for them, fails the operations in flight with CONNECTION_CLOSED and
// closes the connection. Later operations fail with BACKEND_DESTROYED.
// Idempotent.
func (b *RemoteBackend) Close() error {
	if b.scope != "" {
		return nil // a scope's view is released by its scope, never closed
	}
	first, err := b.destroy()
	if !first {
		return nil
	}
	b.closeProcesses()
	b.mu.Lock()
	if b.retry != nil {
		b.retry.Stop()
		b.retry = nil
	}
	c := b.conn
	b.conn = nil
	var dialing *dialCall
	if b.dialing != nil {
		dialing = b.dialing
		dialing.cancel()
	}
	b.mu.Unlock()
	if c != nil {
		c.close(errRemoteDestroyed)
	}
	if dialing != nil {
		<-dialing.done // the attempt ends at once, its connection closed
	}
	return err
}

var errRemoteDestroyed = errors.New("backend destroyed")

// connection returns the live connection, connecting (or waiting for the
// attempt in flight) when there is none.
func (b *RemoteBackend) connection(ctx context.Context, op string) (*remoteConn, error) {
	b.mu.Lock()
	if b.destroyed.Load() {
		b.mu.Unlock()
		return nil, errDestroyed(op, TypeRemote)
	}
	if c := b.conn; c != nil {
		b.mu.Unlock()
		return c, nil
	}
	call := b.startDialLocked()
	b.mu.Unlock()
	select {
	case <-call.done:
		return call.conn, call.err
	case <-ctx.Done():
		return nil, &Error{Code: CodeConnectionClosed, Op: op, Err: ctx.Err(),
			Message: "Connecting to " + b.wsURL + ": " + ctx.Err().Error()}
	}
}

// startDialLocked starts a connection attempt unless one is in flight.
func (b *RemoteBackend) startDialLocked() *dialCall {
	if b.dialing != nil {
		return b.dialing
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.ConnectTimeout)
	call := &dialCall{done: make(chan struct{}), cancel: cancel}
	b.dialing = call
	status := StatusConnecting
	if b.attempts > 0 {
		status = StatusReconnecting
	}
	go b.dial(ctx, call, status)
	return call
}

// dial makes one connection attempt and settles the status.
func (b *RemoteBackend) dial(ctx context.Context, call *dialCall, status Status) {
	b.setStatus(status, nil)
	c, err := dialRemote(ctx, b)
	call.cancel()

	b.mu.Lock()
	b.dialing = nil
	if err == nil && b.destroyed.Load() {
		c.close(errRemoteDestroyed)
		c, err = nil, errDestroyed("connect", TypeRemote)
	}
	call.conn, call.err = c, err
	if err == nil {
		b.conn = c
		b.attempts = 0
		b.authFail = false
	} else {
		b.authFail = errors.Is(err, ErrAuthFailed)
	}
	b.mu.Unlock()

	// The status settles before the waiters return, so that a caller sees
	// connected (or disconnected) as soon as its operation has connected.
	if err != nil {
		b.setStatus(StatusDisconnected, err)
		b.scheduleRetry()
	} else {
		b.setStatus(StatusConnected, nil)
		go b.watch(c)
	}
	close(call.done)
}

// watch waits for a connection to end and, unless Close ended it, reports
// the loss and schedules reconnection.
func (b *RemoteBackend) watch(c *remoteConn) {
	<-c.done
	b.mu.Lock()
	if b.conn == c {
		b.conn = nil
	}
	b.mu.Unlock()
	if b.destroyed.Load() {
		return
	}
	b.setStatus(StatusDisconnected, &Error{Code: CodeConnectionClosed, Op: "connection", Err: c.err,
		Message: "SSH connection closed: " + c.err.Error()})
	b.scheduleRetry()
}

// scheduleRetry schedules the next reconnection attempt, if reconnection
// is enabled, the token was not refused and retries are left.
func (b *RemoteBackend) scheduleRetry() {
	b.mu.Lock()
	defer b.mu.Unlock()
	rc := b.cfg.Reconnect
	if b.destroyed.Load() || rc.Disabled || b.authFail || b.retry != nil || b.conn != nil ||
		(rc.MaxRetries > 0 && b.attempts >= rc.MaxRetries) {
		return
	}
	delay := rc.delay(b.attempts)
	b.attempts++
	b.retry = time.AfterFunc(delay, func() {
		b.mu.Lock()
		b.retry = nil
		if b.destroyed.Load() || b.authFail || b.conn != nil {
			b.mu.Unlock()
			return
		}
		b.startDialLocked()
		b.mu.Unlock()
	})
}

// connClosed is the error of an operation whose connection was lost.
func connClosed(op, path string, cause error) *Error {
	msg := "SSH connection closed"
	if cause != nil {
		msg += ": " + cause.Error()
	}
	if cause == errRemoteDestroyed {
		msg = "Backend destroyed"
	}
	return &Error{Code: CodeConnectionClosed, Op: op, Path: path, Err: cause, Message: msg}
}

// errAuth is the error of a connection whose token the daemon refused.
func errAuth(url string) *Error {
	return &Error{Code: CodeAuthFailed, Op: "connect",
		Message: fmt.Sprintf("SSH-WS authentication failed: the daemon at %s rejected the auth token (WebSocket closed 4001 Unauthorized). Check RemoteConfig.AuthToken.", url)}
}

// MCPEndpoint returns the URL of the daemon's MCP endpoint (POST /mcp,
// stateless Streamable HTTP) and the headers every request to it carries:
// the bearer token, X-Root-Dir and, when scope is not empty, X-Scope-Path
// (validated like Scope's argument). An MCP client built on them talks to
// the daemon's tools on this workspace; MCP calls are never retried
// automatically. HTTPClient is the client to send them with.
func (b *RemoteBackend) MCPEndpoint(scope string) (url string, header http.Header, err error) {
	header = b.header.Clone()
	header.Set("X-Root-Dir", b.root)
	if scope != "" {
		rel, err := resolveScope(scope)
		if err != nil {
			return "", nil, err
		}
		if rel != "." {
			header.Set("X-Scope-Path", rel)
		}
	}
	scheme := "http"
	if strings.HasPrefix(b.wsURL, "wss:") {
		scheme = "https"
	}
	return scheme + "://" + hostPort(b.cfg.Host, b.cfg.Port) + "/mcp", header, nil
}

// HTTPClient returns the HTTP client the backend uses (RemoteConfig.HTTPClient
// or http.DefaultClient).
func (b *RemoteBackend) HTTPClient() *http.Client {
	if b.cfg.HTTPClient != nil {
		return b.cfg.HTTPClient
	}
	return http.DefaultClient
}

// resolveScope validates a scope path as Scope does and returns it clean
// and relative.
func resolveScope(p string) (string, error) {
	rel, ok := pathjail.ValidScope(p)
	if !ok {
		return "", errPathEscape("scope", p)
	}
	return rel, nil
}
