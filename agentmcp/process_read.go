package agentmcp

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	ab "github.com/agentbackend/agentbackend"
)

// What read_output and send_input do on a process a model names by ID: a
// model cannot keep the offsets of Process.Output, so the tools keep them,
// per process, and each read returns what came since the previous one.

// processOutput is what read_output and send_input return: the state of
// the process and the output it produced since the previous read of it.
type processOutput struct {
	ab.ProcessInfo
	stdout, stderr []byte
}

// cursor is where the previous read of a process ended, on each stream.
type cursor struct {
	mu       sync.Mutex
	out, err int64
}

// cursors holds the cursor of every process read by ID in this program,
// by process ID (unique within the program). It is shared by every tool
// set, as the processes are by every request of a daemon; an entry goes
// with its process, when the garbage collector takes that.
var cursors sync.Map // string -> *cursor

func cursorOf(p *ab.Process) *cursor {
	if c, ok := cursors.Load(p.ID()); ok {
		return c.(*cursor)
	}
	c, loaded := cursors.LoadOrStore(p.ID(), new(cursor))
	if !loaded {
		runtime.AddCleanup(p, func(id string) { cursors.Delete(id) }, p.ID())
	}
	return c.(*cursor)
}

// findProcess returns the listed background process id of b.
func findProcess(b ab.FileBackend, op, id string) (*ab.Process, error) {
	s, ok := b.(ab.ProcessStarter)
	if !ok {
		return nil, &ab.Error{Code: ab.CodeNotImplemented, Op: op, Backend: b.Type(),
			Message: "Background processes are not available here: the backend cannot start them."}
	}
	p, ok := s.Process(id)
	if !ok {
		return nil, &ab.Error{Code: ab.CodeInvalidArgument, Op: op,
			Message: fmt.Sprintf("no background process %q: it never existed here, or it ended and its output was read; list the processes to see which remain", id)}
	}
	return p, nil
}

// readNew returns the output p produced since the previous readNew of it
// (from the start, the first time). When there is none yet and p runs, it
// waits up to wait (or until ctx ends) for some. Once a read has returned
// everything an ended process produced, the backend no longer lists it.
// If output was dropped between two reads, the text starts with a line
// saying how many bytes were missed.
func readNew(ctx context.Context, p *ab.Process, wait time.Duration) *processOutput {
	c := cursorOf(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := p.Changed()
	out := c.read(p)
	if len(out.stdout) == 0 && len(out.stderr) == 0 && out.State == ab.ProcessRunning && wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		out = c.read(p)
	}
	return out
}

// read reads both streams on from the cursor and moves it. The state it
// reports is taken after the reads: an ended process's output is all in
// it, and reading both streams to their end lets the backend forget it.
func (c *cursor) read(p *ab.Process) *processOutput {
	stdout, nextOut, outDone := p.Output(c.out)
	stderr, nextErr, errDone := p.ErrorOutput(c.err)
	if errDone && !outDone {
		// It ended between the two reads: take the rest of stdout too.
		var more []byte
		more, nextOut, _ = p.Output(nextOut)
		stdout = append(stdout, more...)
	}
	c.out, c.err = nextOut, nextErr
	return &processOutput{ProcessInfo: p.Info(), stdout: stdout, stderr: stderr}
}

// maxInput bounds what one send_input types: more than a terminal's input
// buffer holds is of no use to a program that reads it as a person types.
const maxInput = 64 << 10

// inputWait bounds how long send_input waits for the program to take its
// input, when the backend can tell (a program that reads nothing fills
// the terminal's buffer and blocks the writer).
const inputWait = 5 * time.Second

// sendKeys types text, then the named keys (see agentbackend.TerminalKey),
// into the input of background process id, and returns what the process
// printed since the previous read of it, waiting up to wait (or until ctx
// ends) for its output to pause. On a terminal Enter is "\r" and Ctrl-C
// interrupts; elsewhere the text goes to standard input. An unknown key
// name, or more than 64 KiB of input, is INVALID_ARGUMENT and nothing is
// sent. A process whose input was supplied, or that has ended, takes none:
// EXEC_ERROR.
func sendKeys(ctx context.Context, b ab.FileBackend, id, text string, keys []string, wait time.Duration) (*processOutput, error) {
	p, err := findProcess(b, "send_input", id)
	if err != nil {
		return nil, err
	}
	input := []byte(text)
	for _, k := range keys {
		seq, ok := ab.TerminalKey(k)
		if !ok {
			return nil, &ab.Error{Code: ab.CodeInvalidArgument, Op: "send_input", Message: fmt.Sprintf(
				"unknown key %q: use Enter, Tab, Backspace, Escape, Space, Up, Down, Left, Right, Home, End, PageUp, PageDown, Delete, F1-F12 or Ctrl-<letter>", k)}
		}
		input = append(input, seq...)
	}
	if len(input) > maxInput {
		return nil, &ab.Error{Code: ab.CodeInvalidArgument, Op: "send_input",
			Message: fmt.Sprintf("%d bytes of input: at most %d at once", len(input), maxInput)}
	}
	if err := writeInput(ctx, p, input); err != nil {
		return nil, err
	}
	settle(ctx, p, wait)
	return readNew(ctx, p, 0), nil
}

// inputSettle is how long the output of a process must pause before
// send_input takes it as the answer to the input: the echo of the input
// comes at once, what the program prints in answer a moment later.
const inputSettle = 300 * time.Millisecond

// settle waits, up to wait or until ctx ends, for p to print something and
// then pause for inputSettle, or to end.
func settle(ctx context.Context, p *ab.Process, wait time.Duration) {
	if wait <= 0 {
		return
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	var quiet <-chan time.Time
	for {
		changed := p.Changed()
		select {
		case <-p.Done():
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

// writeInput writes data to p's input, within ctx and inputWait where the
// writer takes a deadline.
func writeInput(ctx context.Context, p *ab.Process, data []byte) error {
	fail := func(err error) error {
		return &ab.Error{Code: ab.CodeExecError, Op: "send_input", Command: p.Command(), Err: err,
			Message: "Could not send input to " + p.ID() + ": " + err.Error()}
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
		if p.Info().State != ab.ProcessRunning {
			err = errors.New("it has ended")
		}
		return fail(err)
	}
	return nil
}

// String renders the output for a model: the state line, then each
// stream that has new output under a header; a terminal's output as the
// text the terminal shows (a model reads escape sequences badly).
func (o *processOutput) String() string {
	var sb strings.Builder
	sb.WriteString(o.ProcessInfo.String())
	sb.WriteByte('\n')
	if len(o.stdout) == 0 && len(o.stderr) == 0 {
		sb.WriteString("(no new output)\n")
	}
	section := func(name, text string) {
		sb.WriteString("--- " + name + " ---\n")
		sb.WriteString(text)
		if !strings.HasSuffix(text, "\n") {
			sb.WriteByte('\n')
		}
	}
	if o.Terminal && len(o.stdout) != 0 {
		section("terminal", ab.TerminalText(o.stdout))
		return sb.String()
	}
	if len(o.stdout) != 0 {
		section("stdout", string(o.stdout))
	}
	if len(o.stderr) != 0 {
		section("stderr", string(o.stderr))
	}
	return sb.String()
}
