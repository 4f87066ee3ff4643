package agentbackend

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Operation names a logged operation.
type Operation string

// The operations a scope logs.
const (
	OpExec    Operation = "exec"
	OpStart   Operation = "start" // a background process started (ProcessStarter)
	OpRead    Operation = "read"
	OpWrite   Operation = "write"
	OpMkdir   Operation = "mkdir"
	OpDelete  Operation = "delete"
	OpTouch   Operation = "touch"
	OpRename  Operation = "rename"
	OpReadDir Operation = "readdir"
	OpExists  Operation = "exists"
	OpStat    Operation = "stat"
	OpGlob    Operation = "glob" // ScopedBackend.Glob
	OpGrep    Operation = "grep" // ScopedBackend.Grep
	// OpNetwork is a decision of the filtering proxy of an allow-list
	// Network about a connection a command asked for (Host): logged in
	// every mode.
	OpNetwork Operation = "network"
)

// Modifying reports whether the operation can change the workspace; those
// are the operations LogStandard records.
func (o Operation) Modifying() bool {
	switch o {
	case OpExec, OpStart, OpWrite, OpMkdir, OpDelete, OpTouch, OpRename:
		return true
	}
	return false
}

// LogMode selects which operations a logger receives.
type LogMode string

const (
	// LogStandard records the operations that can modify the workspace:
	// exec, start, write, mkdir, delete, touch, rename; and the network
	// decisions about commands' connections.
	LogStandard LogMode = "standard"
	// LogVerbose records every operation, reads included.
	LogVerbose LogMode = "verbose"
)

// OperationEntry is one logged operation.
type OperationEntry struct {
	Time      time.Time     // when the operation started
	Operation Operation     // what it was
	Success   bool          // whether it succeeded
	Duration  time.Duration // how long it took
	Path      string        // the path as the caller gave it, for file operations
	Target    string        // the destination, for rename
	Command   string        // the command, for exec (and network: the command that asked)
	Host      string        // the host and port asked for, for network
	User      string        // ScopeConfig.User of the scope it went through
	Workspace string        // the scope's root directory
	Stdout    string        // exec output, as kept in the ExecResult
	Stderr    string
	ExitCode  int
	Err       error // the failure, when Success is false
	// Permission is the notable permission decision taken for the
	// operation (a denial, or an ask and its answer); its Access is empty
	// when there was none. Operations with such a decision are logged
	// whatever the logger's mode.
	Permission PermissionRecord
}

// PermissionRecord is a permission decision in a log entry.
type PermissionRecord struct {
	Access Access // the access decided
	Action Action // what the rules said: deny or ask
	Rule   string // the deciding rule's pattern; empty when the default decided
	// Decision is the approver's answer to an ask; empty when nobody could
	// be asked.
	Decision   Decision
	Remembered bool // the answer was an earlier "always"
}

// OperationsLogger receives the operations done through a scope (see
// ScopeConfig.Logger). Log is called synchronously after each operation and
// must be safe for concurrent use. When no logger is set, nothing is
// measured or built: logging costs nothing.
type OperationsLogger interface {
	Log(OperationEntry)
	Mode() LogMode
}

// shouldLog reports whether logger wants entries for op.
func shouldLog(logger OperationsLogger, op Operation) bool {
	return logger != nil && (op.Modifying() || op == OpNetwork || logger.Mode() == LogVerbose)
}

// ConsoleLogger writes one line per operation to a writer (os.Stderr, say).
type ConsoleLogger struct {
	mode LogMode
	mu   sync.Mutex
	w    io.Writer
}

// NewConsoleLogger returns a logger writing human-readable lines to w.
func NewConsoleLogger(w io.Writer, mode LogMode) *ConsoleLogger {
	return &ConsoleLogger{w: w, mode: mode}
}

// Mode returns the logger's mode.
func (l *ConsoleLogger) Mode() LogMode { return l.mode }

// Log writes the entry as one line.
func (l *ConsoleLogger) Log(e OperationEntry) {
	subject := e.Path
	switch {
	case e.Operation == OpExec || e.Operation == OpStart:
		subject = e.Command
	case e.Operation == OpNetwork:
		subject = e.Host
	case e.Target != "":
		subject += " -> " + e.Target
	}
	outcome := "ok"
	if !e.Success {
		outcome = fmt.Sprintf("FAILED: %v", e.Err)
	}
	if e.Permission.Action == Ask {
		outcome = fmt.Sprintf("asked (%s) %s", e.Permission.Decision, outcome)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "%s [%s] %s %q (%s) %s\n", e.Time.Format(time.RFC3339), e.Workspace,
		e.Operation, subject, e.Duration.Round(time.Microsecond), outcome)
}

// ArrayLogger keeps entries in memory, for tests and for callers that show
// an agent's actions afterwards.
type ArrayLogger struct {
	mode    LogMode
	mu      sync.Mutex
	entries []OperationEntry
}

// NewArrayLogger returns an empty in-memory logger.
func NewArrayLogger(mode LogMode) *ArrayLogger { return &ArrayLogger{mode: mode} }

// Mode returns the logger's mode.
func (l *ArrayLogger) Mode() LogMode { return l.mode }

// Log appends the entry.
func (l *ArrayLogger) Log(e OperationEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, e)
}

// Entries returns a copy of the entries logged so far, oldest first.
func (l *ArrayLogger) Entries() []OperationEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.entries)
}

// Clear forgets every entry.
func (l *ArrayLogger) Clear() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = nil
}

// SlogLogger sends entries to a log/slog logger: successes at Info,
// failures at Warn, with the entry's fields as attributes.
type SlogLogger struct {
	mode   LogMode
	logger *slog.Logger
}

// NewSlogLogger returns a logger writing to l (slog.Default() when nil).
func NewSlogLogger(l *slog.Logger, mode LogMode) *SlogLogger {
	if l == nil {
		l = slog.Default()
	}
	return &SlogLogger{mode: mode, logger: l}
}

// Mode returns the logger's mode.
func (l *SlogLogger) Mode() LogMode { return l.mode }

// Log writes the entry as one slog record.
func (l *SlogLogger) Log(e OperationEntry) {
	attrs := []slog.Attr{
		slog.String("op", string(e.Operation)),
		slog.Bool("success", e.Success),
		slog.Duration("duration", e.Duration),
		slog.String("workspace", e.Workspace),
	}
	add := func(key, value string) {
		if value != "" {
			attrs = append(attrs, slog.String(key, value))
		}
	}
	add("path", e.Path)
	add("target", e.Target)
	add("command", e.Command)
	add("host", e.Host)
	add("user", e.User)
	level := slog.LevelInfo
	if e.Operation == OpExec {
		attrs = append(attrs, slog.Int("exitCode", e.ExitCode))
	}
	if !e.Success {
		level = slog.LevelWarn
		attrs = append(attrs, slog.Any("error", e.Err))
	}
	if p := e.Permission; p.Access != "" {
		attrs = append(attrs, slog.Group("permission", slog.String("access", string(p.Access)),
			slog.String("action", string(p.Action)), slog.String("rule", p.Rule),
			slog.String("decision", string(p.Decision)), slog.Bool("remembered", p.Remembered)))
	}
	l.logger.LogAttrs(context.Background(), level, "agentbackend operation", attrs...)
}
