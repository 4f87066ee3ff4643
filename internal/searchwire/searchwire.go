// Package searchwire is the message format of the daemon's search
// subsystem (sshext.SearchSubsystem): RemoteBackend sends one Request as a
// JSON line, the daemon answers one Response. Both ends are this module, so
// the format only has to agree with itself; it is versioned by the
// subsystem name. Grep options and results travel as the JSON of
// agentbackend.GrepOptions and agentbackend.GrepResult (this package cannot
// import the root package, which imports it).
package searchwire

import "encoding/json"

// The operations.
const (
	OpGrep     = "grep"
	OpGlob     = "glob"
	OpRealPath = "realpath" // agentbackend.LinkResolver on Dir
)

// Request is one search. Paths are absolute paths as the client resolved
// them (its root joined with the relative path); the daemon applies the
// path rule again, so a client rooted below the daemon's root works too.
type Request struct {
	Op      string          `json:"op"`
	Grep    json.RawMessage `json:"grep,omitempty"` // agentbackend.GrepOptions
	Pattern string          `json:"pattern,omitempty"`
	Dir     string          `json:"dir,omitempty"`
}

// Response is the answer. Grep paths and Path are relative to Root, the
// directory of the session (the daemon's workspace root, or the scope's);
// Glob paths are relative to the searched directory.
type Response struct {
	Root  string          `json:"root"`
	Grep  json.RawMessage `json:"grep,omitempty"` // agentbackend.GrepResult
	Glob  []string        `json:"glob,omitempty"`
	Path  string          `json:"path,omitempty"` // the real path (OpRealPath)
	Error *Error          `json:"error,omitempty"`
}

// Error carries an *agentbackend.Error across.
type Error struct {
	Code     string `json:"code"`
	Message  string `json:"message"`
	Path     string `json:"path,omitempty"`
	NotExist bool   `json:"notExist,omitempty"` // errors.Is(err, fs.ErrNotExist)
}

// WatchRequest starts a watch of the daemon's watch subsystem
// (sshext.WatchSubsystem): the client sends it as a JSON line, then the
// daemon writes one WatchEvent per line, the first an empty one (Op "") once
// the watch is in place, or one with Error when it cannot be; it stops when
// the client closes the channel. Dir is an absolute path, as in Request.
type WatchRequest struct {
	Dir   string `json:"dir"`
	Queue int    `json:"queue,omitempty"`
}

// WatchEvent is one change (agentbackend.WatchEvent), Path relative to the
// session's directory, as Response paths are.
type WatchEvent struct {
	Op    string `json:"op"`
	Path  string `json:"path,omitempty"`
	Error *Error `json:"error,omitempty"`
}
