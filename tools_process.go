package agentbackend

import (
	"context"
	"errors"
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

// maxInput bounds what one SendInput types: more than a terminal's input
// buffer holds is of no use to a program that reads it as a person types.
const maxInput = 64 << 10

// inputWait bounds how long SendInput waits for the program to take its
// input, when the backend can tell (a program that reads nothing fills
// the terminal's buffer and blocks the writer).
const inputWait = 5 * time.Second

// SendInput types text, then the named keys (see TerminalKey: "Enter",
// "Ctrl-C", "Up", "Tab", ...), into the input of background process id,
// and returns what the process printed since the previous ReadOutput of
// it, waiting up to wait (or until ctx ends) for something new, as
// ReadOutput does. It is meant for processes on a terminal (started with
// ExecOptions.Terminal), where Enter is "\r" and Ctrl-C interrupts; on
// others the text goes to standard input, where a line ends with "\n". An
// unknown key name, or more than 64 KiB of input, is INVALID_ARGUMENT and
// nothing is sent. A process whose input was supplied (ExecOptions.Stdin)
// or has ended takes none: EXEC_ERROR.
func SendInput(ctx context.Context, b FileBackend, id, text string, keys []string, wait time.Duration) (*ProcessOutput, error) {
	p, err := findProcess(b, "send_input", id)
	if err != nil {
		return nil, err
	}
	input := []byte(text)
	for _, k := range keys {
		seq, ok := TerminalKey(k)
		if !ok {
			return nil, errArgument("send_input", "", "unknown key %q: use Enter, Tab, Backspace, Escape, Space, Up, Down, Left, Right, Home, End, PageUp, PageDown, Delete, F1-F12 or Ctrl-<letter>", k)
		}
		input = append(input, seq...)
	}
	if len(input) > maxInput {
		return nil, errArgument("send_input", "", "%d bytes of input: at most %d at once", len(input), maxInput)
	}
	if err := p.writeInput(ctx, input); err != nil {
		return nil, err
	}
	p.settle(ctx, wait)
	return ReadOutput(ctx, b, id, 0)
}

// inputSettle is how long the output of a process must pause before
// SendInput takes it as the answer to the input: the echo of the input
// comes at once, what the program prints in answer a moment later.
const inputSettle = 300 * time.Millisecond

// settle waits, up to wait or until ctx ends, for the process to print
// something and then pause for inputSettle, or to end.
func (p *Process) settle(ctx context.Context, wait time.Duration) {
	if wait <= 0 {
		return
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	var quiet <-chan time.Time
	for {
		changed := p.Changed()
		select {
		case <-p.done:
			return
		case <-changed:
			t := time.NewTimer(inputSettle)
			defer t.Stop()
			quiet = t.C
		case <-quiet:
			return
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// writeInput writes data to the process's input, within ctx and inputWait
// where the writer takes a deadline.
func (p *Process) writeInput(ctx context.Context, data []byte) error {
	fail := func(err error) error {
		return &Error{Code: CodeExecError, Op: "send_input", Command: p.command, Err: err,
			Message: "Could not send input to " + p.id + ": " + err.Error()}
	}
	w := p.Stdin()
	if w == nil {
		return fail(errors.New("its input was given when it started"))
	}
	if len(data) == 0 {
		return nil
	}
	if dw, ok := w.(interface{ SetWriteDeadline(time.Time) error }); ok {
		deadline := time.Now().Add(inputWait)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		if dw.SetWriteDeadline(deadline) == nil {
			defer dw.SetWriteDeadline(time.Time{})
		}
	}
	if _, err := w.Write(data); err != nil {
		if p.Info().State != ProcessRunning {
			err = errors.New("it has ended")
		}
		return fail(err)
	}
	return nil
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
	if o.Terminal && o.Stdout != "" {
		// What the terminal shows, as text: a model reads escape sequences
		// badly.
		sb.WriteString("--- terminal ---\n")
		text := TerminalText([]byte(o.Stdout))
		sb.WriteString(text)
		if !strings.HasSuffix(text, "\n") {
			sb.WriteByte('\n')
		}
		return sb.String()
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
