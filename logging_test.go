package agentbackend

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestOperationModifying(t *testing.T) {
	for _, op := range []Operation{OpExec, OpWrite, OpMkdir, OpDelete, OpTouch, OpRename} {
		if !op.Modifying() || !shouldLog(NewArrayLogger(LogStandard), op) {
			t.Errorf("%s should be logged in standard mode", op)
		}
	}
	for _, op := range []Operation{OpRead, OpReadDir, OpExists, OpStat} {
		if op.Modifying() || shouldLog(NewArrayLogger(LogStandard), op) || !shouldLog(NewArrayLogger(LogVerbose), op) {
			t.Errorf("%s should be logged in verbose mode only", op)
		}
	}
	if shouldLog(nil, OpWrite) {
		t.Error("a nil logger logs")
	}
}

func TestConsoleAndSlogLoggers(t *testing.T) {
	entry := OperationEntry{
		Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Operation: OpRename, Success: false,
		Duration: 1500 * time.Microsecond, Path: "a.txt", Target: "b.txt", User: "alice", Workspace: "/ws",
		Err: errors.New("disk full"),
	}
	var buf bytes.Buffer
	c := NewConsoleLogger(&buf, LogVerbose)
	c.Log(entry)
	got := buf.String()
	for _, want := range []string{"2026-01-02T03:04:05Z", "[/ws]", "rename", `"a.txt -> b.txt"`, "FAILED: disk full"} {
		if !strings.Contains(got, want) {
			t.Errorf("console line %q lacks %q", got, want)
		}
	}
	if c.Mode() != LogVerbose {
		t.Error("mode")
	}

	buf.Reset()
	s := NewSlogLogger(slog.New(slog.NewTextHandler(&buf, nil)), LogStandard)
	s.Log(entry)
	exec := OperationEntry{Operation: OpExec, Success: true, Command: "go test", ExitCode: 0, Workspace: "/ws"}
	s.Log(exec)
	got = buf.String()
	for _, want := range []string{"level=WARN", "op=rename", "path=a.txt", "target=b.txt", "user=alice", `error="disk full"`,
		"level=INFO", "op=exec", `command="go test"`, "exitCode=0"} {
		if !strings.Contains(got, want) {
			t.Errorf("slog output %q lacks %q", got, want)
		}
	}
	if NewSlogLogger(nil, LogStandard).logger == nil {
		t.Error("nil slog logger not defaulted")
	}

	a := NewArrayLogger(LogStandard)
	a.Log(entry)
	if len(a.Entries()) != 1 {
		t.Error("array logger lost the entry")
	}
	a.Clear()
	if len(a.Entries()) != 0 {
		t.Error("Clear kept entries")
	}
}
