package daemon

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentbackend/agentbackend/agentmcp"
)

// routes builds the daemon's handler: the three endpoints behind request
// logging.
func (d *Daemon) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", d.serveHealth)
	mux.HandleFunc("POST /mcp", d.serveMCP)
	if !d.cfg.DisableSSHWS {
		mux.HandleFunc("GET /ssh", d.serveSSH)
	}
	return d.logRequests(mux)
}

// health is the body of GET /health: the reference's fields, with this
// module's version (the reference's clients only check the status code),
// plus the reference release whose protocol it speaks.
type health struct {
	Status           string          `json:"status"`
	Version          string          `json:"version"`
	ReferenceVersion string          `json:"referenceVersion"`
	RootDir          string          `json:"rootDir"`
	Transports       map[string]bool `json:"transports"`
}

func (d *Daemon) serveHealth(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, health{
		Status:           "ok",
		Version:          d.version(),
		ReferenceVersion: agentmcp.ReferenceVersion,
		RootDir:          d.cfg.RootDir,
		Transports:       map[string]bool{"mcp": true, "ssh-ws": !d.cfg.DisableSSHWS, "ssh": false},
	})
}

// errorBody is the JSON body of the daemon's 4xx answers.
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// serveMCP checks a POST /mcp request the way the reference daemon does,
// in its order (token, root directory, scope), then serves MCP on a backend
// built for the request.
func (d *Daemon) serveMCP(w http.ResponseWriter, r *http.Request) {
	if d.cfg.AuthToken != "" && !secretsEqual(r.Header.Get("Authorization"), "Bearer "+d.cfg.AuthToken) {
		// The challenge tells MCP clients a bearer token is what is
		// missing. It names no resource_metadata: the daemon serves no
		// OAuth metadata, so a client must not go looking for a login.
		challenge := `Bearer realm="agent-backend"`
		if r.Header.Get("Authorization") != "" {
			challenge += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
		writeJSON(w, http.StatusUnauthorized, errorBody{"Unauthorized", "Invalid or missing authentication token"})
		return
	}
	if root := r.Header.Get("X-Root-Dir"); root != "" && root != "undefined" && !d.isRoot(root) {
		writeJSON(w, http.StatusForbidden, errorBody{"Root directory mismatch",
			fmt.Sprintf("Server is configured for %s, not %s", d.cfg.RootDir, root)})
		return
	}
	dynamic := r.Header.Get("X-Scope-Path")
	if d.cfg.ScopePath != "" && dynamic != "" {
		writeJSON(w, http.StatusBadRequest, errorBody{"Scope conflict",
			fmt.Sprintf("Server was started with static scope '%s', but request also specified scope '%s'. Use one or the other, not both.",
				d.cfg.ScopePath, dynamic)})
		return
	}
	scope := d.scope
	if dynamic != "" {
		var ok bool
		if scope, ok = validScope(dynamic); !ok {
			writeJSON(w, http.StatusBadRequest, errorBody{"Invalid scope path",
				"Scope path must not contain path traversal sequences"})
			return
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, d.maxBody())
	d.mcp(w, r, scope)
}

// validScope applies the reference daemon's rule to an X-Scope-Path: the
// leading slashes are stripped and any ".." refuses it. It returns the
// scope relative to the root ("" for the root itself).
func validScope(p string) (string, bool) {
	p = strings.TrimLeft(p, "/")
	if strings.Contains(p, "..") {
		return "", false
	}
	if c := filepath.ToSlash(filepath.Clean(p)); c != "." {
		return c, true
	}
	return "", true
}

// isRoot reports whether an X-Root-Dir names the workspace: the configured
// spelling, its absolute form or the real directory.
func (d *Daemon) isRoot(p string) bool {
	if p == d.cfg.RootDir || d.jail != nil && p == d.jail.real {
		return true
	}
	if d.jail == nil {
		return false
	}
	return d.jail.alias != "" && filepath.ToSlash(filepath.Clean(p)) == d.jail.alias
}

func (d *Daemon) maxBody() int64 {
	if d.cfg.MaxBodyBytes > 0 {
		return d.cfg.MaxBodyBytes
	}
	return DefaultMaxBodyBytes
}

// secretsEqual compares a supplied secret with the expected one in
// constant time; both are hashed first, so neither the content nor the
// length leaks.
func secretsEqual(supplied, expected string) bool {
	a := sha256.Sum256([]byte(supplied))
	b := sha256.Sum256([]byte(expected))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// wsAuthorized checks the token of a WS /ssh upgrade: the token query
// parameter or an Authorization: Bearer header.
func (d *Daemon) wsAuthorized(r *http.Request) bool {
	if d.cfg.AuthToken == "" {
		return true
	}
	if q := r.URL.Query(); q.Has("token") && secretsEqual(q.Get("token"), d.cfg.AuthToken) {
		return true
	}
	h := r.Header.Get("Authorization")
	return strings.HasPrefix(h, "Bearer ") && secretsEqual(h[len("Bearer "):], d.cfg.AuthToken)
}

// statusWriter records the status code and size of a response, and gives
// each write writeTimeout to complete (see Config.WriteTimeout).
type statusWriter struct {
	http.ResponseWriter
	rc           *http.ResponseController
	writeTimeout time.Duration
	status       int
	bytes        int64
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.writeTimeout))
	n, err := s.ResponseWriter.Write(p)
	s.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController (and the WebSocket upgrade) reach
// the underlying writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// logRequests logs every request once it is done: method, path, status,
// size, duration and client address. Health checks log at debug level. The
// token query parameter of /ssh is never logged.
//
// It also sets the write deadlines: none while the handler works (a server
// WriteTimeout, or a deadline left by the connection's previous request,
// would cut a long exec off, or the WebSocket /ssh hijacks), then
// Config.WriteTimeout for each write.
func (d *Daemon) logRequests(next http.Handler) http.Handler {
	writeTimeout := positiveOr(d.cfg.WriteTimeout, DefaultWriteTimeout)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rc := http.NewResponseController(w)
		_ = rc.SetWriteDeadline(time.Time{})
		sw := &statusWriter{ResponseWriter: w, rc: rc, writeTimeout: writeTimeout}
		next.ServeHTTP(sw, r)
		level := slog.LevelInfo
		if r.URL.Path == "/health" {
			level = slog.LevelDebug
		}
		status := sw.status
		if status == 0 && r.URL.Path == "/ssh" {
			status = http.StatusSwitchingProtocols
		}
		d.log.Log(r.Context(), level, "request", "method", r.Method, "path", r.URL.Path,
			"status", status, "bytes", sw.bytes, "duration", time.Since(start), "remote", r.RemoteAddr)
	})
}
