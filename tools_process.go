package agentbackend

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// The background-process tools: what a model gets besides exec to run dev
// servers, watchers and long test runs while it does other work. They
// mirror pydantic-ai-backend's console tools run_in_background,
// read_output, kill_shell and list_shells, and work on any FileBackend that
// implements ProcessStarter (NOT_IMPLEMENTED otherwise). Processes are
// found by the ID RunInBackground returned; through a scope, only the
// scope's own.

// ProcessOutput is what ReadOutput returns: the state of the process and
// the output it produced since the previous ReadOutput of it.
type ProcessOutput struct {
	ProcessInfo
	Stdout string
	Stderr string
}

// RunInBackground starts command in the background (see ProcessStarter)
// and describes the process; its ID is what the other tools take.
func RunInBackground(ctx context.Context, b FileBackend, command string, opts *ExecOptions) (ProcessInfo, error) {
	s, ok := processStarter(b)
	if !ok {
		return ProcessInfo{}, errNotImplemented("start", b.Type())
	}
	p, err := s.Start(ctx, command, opts)
	if err != nil {
		return ProcessInfo{}, err
	}
	return p.Info(), nil
}

// ReadOutput returns the output of process id produced since the previous
// ReadOutput of it (from the start, the first time), on each stream. When
// there is none yet and the process runs, it waits up to wait (or until
// ctx ends) for some. Once a read has returned everything an ended process
// produced, the process is no longer listed and its ID no longer found.
// If output was dropped between two reads (more than
// ProcessConfig.OutputLimit bytes came), the text starts with a line saying
// how many bytes were missed.
func ReadOutput(ctx context.Context, b FileBackend, id string, wait time.Duration) (*ProcessOutput, error) {
	p, err := findProcess(b, "read_output", id)
	if err != nil {
		return nil, err
	}
	changed := p.Changed()
	stdout, stderr, info, done := p.readNew()
	if len(stdout) == 0 && len(stderr) == 0 && !done && wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		stdout, stderr, info, _ = p.readNew()
	}
	return &ProcessOutput{ProcessInfo: info, Stdout: string(stdout), Stderr: string(stderr)}, nil
}

// killWait bounds how long KillProcess waits for a killed process to end.
const killWait = 5 * time.Second

// KillProcess kills process id and everything it started, waits (briefly,
// and within ctx) for it to end, and describes it. Killing a process that
// has already ended is not an error: the state says how it ended. Its
// remaining output can still be read.
func KillProcess(ctx context.Context, b FileBackend, id string) (ProcessInfo, error) {
	p, err := findProcess(b, "kill_shell", id)
	if err != nil {
		return ProcessInfo{}, err
	}
	if err := p.Kill(); err != nil && err != os.ErrProcessDone {
		return p.Info(), err
	}
	t := time.NewTimer(killWait)
	defer t.Stop()
	select {
	case <-p.Done():
	case <-t.C:
	case <-ctx.Done():
	}
	return p.Info(), nil
}

// ListProcesses lists the background processes of b (of the scope, for a
// scope): running ones, and ended ones whose output has not all been read
// yet, oldest first.
func ListProcesses(ctx context.Context, b FileBackend) ([]ProcessInfo, error) {
	s, ok := processStarter(b)
	if !ok {
		return nil, errNotImplemented("list_shells", b.Type())
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.Processes(), nil
}

// processStarter returns b as a ProcessStarter if it can start processes:
// scopes and composites implement the interface whatever lies below them.
func processStarter(b FileBackend) (ProcessStarter, bool) {
	s, ok := b.(ProcessStarter)
	if w, wraps := b.(interface{ startsProcesses() bool }); ok && wraps {
		ok = w.startsProcesses()
	}
	return s, ok
}

func findProcess(b FileBackend, op, id string) (*Process, error) {
	s, ok := processStarter(b)
	if !ok {
		return nil, errNotImplemented(op, b.Type())
	}
	p, ok := s.Process(id)
	if !ok {
		return nil, errArgument(op, "", "no background process %q: it never existed here, or it ended and its output was read; list the processes to see which remain", id)
	}
	return p, nil
}

// String describes the process in one line, as the tools show it:
// "bg_3 running: npm run dev", "bg_3 exited with code 1: make test".
func (i ProcessInfo) String() string {
	switch i.State {
	case ProcessRunning:
		return fmt.Sprintf("%s running for %s: %s", i.ID, time.Since(i.StartedAt).Round(time.Second), i.Command)
	case ProcessLost:
		return fmt.Sprintf("%s lost (connection closed; it may still run): %s", i.ID, i.Command)
	default:
		return fmt.Sprintf("%s %s with code %d: %s", i.ID, i.State, i.ExitCode, i.Command)
	}
}

// String renders the output for a model: the state line, then each
// stream that has new output under a header.
func (o *ProcessOutput) String() string {
	var sb strings.Builder
	sb.WriteString(o.ProcessInfo.String())
	sb.WriteByte('\n')
	if o.Stdout == "" && o.Stderr == "" {
		sb.WriteString("(no new output)\n")
	}
	for _, s := range []struct{ name, text string }{{"stdout", o.Stdout}, {"stderr", o.Stderr}} {
		if s.text == "" {
			continue
		}
		sb.WriteString("--- " + s.name + " ---\n")
		sb.WriteString(s.text)
		if !strings.HasSuffix(s.text, "\n") {
			sb.WriteByte('\n')
		}
	}
	return sb.String()
}
