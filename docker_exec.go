package agentbackend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// dockerExecWrapper starts every command: it reports its PID on stderr (a
// line the backend strips) and then becomes the command's shell. A process
// started by exec is a session and process-group leader in the container
// (runc makes it one), so that PID names the group holding everything the
// command starts, which is what a timeout kills.
const dockerExecWrapper = `printf '%d\n' "$$" >&2; exec /bin/sh -c "$1"`

// dockerKillGrace is how long Exec waits for a killed command's output
// streams to close before it drops the connection.
const dockerKillGrace = 5 * time.Second

// Exec runs command with /bin/sh -c inside the container, in the workspace
// root (or opts.Cwd) with HOME set to that directory and the backend's Env
// under opts.Env. Dangerous commands are refused first unless the backend
// allows them. Output is captured (up to MaxOutputLength per stream) and
// copied live to opts.Stdout and opts.Stderr. A non-zero exit returns the
// result AND an EXEC_FAILED error. When opts.Timeout passes or ctx ends, the
// command's process group is killed inside the container and the error
// (EXEC_FAILED, with the partial result) wraps context.DeadlineExceeded or
// context.Canceled.
//
// The command is /bin/sh -c command, so the image's sh decides the syntax
// (busybox ash, dash, bash). A Stdin whose Read blocks after the command has
// ended keeps one goroutine until that Read returns, as with os/exec.
func (b *DockerBackend) Exec(ctx context.Context, command string, opts *ExecOptions) (*ExecResult, error) {
	var o ExecOptions
	if opts != nil {
		o = *opts
	}
	cwd, envList, err := b.prepareExec("exec", command, &o)
	if err != nil {
		return nil, err
	}

	runCtx := ctx
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	start := time.Now()
	created, err := b.cli.ContainerExecCreate(runCtx, b.id, container.ExecOptions{
		User:         b.user,
		AttachStdin:  o.Stdin != nil,
		AttachStdout: true,
		AttachStderr: true,
		Env:          envList,
		WorkingDir:   cwd,
		Cmd:          []string{"/bin/sh", "-c", dockerExecWrapper, "sh", command},
	})
	if err != nil {
		return nil, b.execSpawnErr(command, runCtx, err)
	}
	// Not runCtx: once the process may have started, ending the request
	// would not stop it; the kill below does.
	hr, err := b.cli.ContainerExecAttach(context.WithoutCancel(runCtx), created.ID, container.ExecAttachOptions{})
	if err != nil {
		return nil, b.execSpawnErr(command, runCtx, err)
	}
	defer hr.Close()

	stdout := newDockerCapture(b.maxOutput, o.Stdout)
	stderr := newDockerCapture(b.maxOutput, o.Stderr)
	pid := &pidLine{next: stderr, found: make(chan struct{})}
	streamed := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(stdout, pid, hr.Reader)
		streamed <- err
	}()
	var stdinDone chan struct{}
	if o.Stdin != nil {
		stdinDone = make(chan struct{})
		go func() {
			defer close(stdinDone)
			_, _ = io.Copy(hr.Conn, o.Stdin)
			_ = hr.CloseWrite()
		}()
	}

	var streamErr error
	var stopped error // why the command was killed, if it was
	select {
	case streamErr = <-streamed:
	case <-runCtx.Done():
		stopped = runCtx.Err()
		streamErr = b.killExec(pid, streamed, hr.Close)
	}
	if stdinDone != nil && stopped == nil {
		// The command is done; a Stdin that blocks must not hold Exec up
		// (the copy ends on its next write to the closed connection).
		hr.Close()
	}

	res := &ExecResult{Duration: time.Since(start), ExitCode: -1}
	inspectCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if info, err := b.cli.ContainerExecInspect(inspectCtx, created.ID); err == nil && !info.Running {
		res.ExitCode = info.ExitCode
	}
	res.Stdout, res.Truncated = stdout.result()
	var cut bool
	res.Stderr, cut = stderr.result()
	res.Truncated = res.Truncated || cut

	switch {
	case stopped != nil:
		return res, &Error{Code: CodeExecFailed, Op: "exec", Command: command, ExitCode: res.ExitCode, Err: stopped,
			Message: execStoppedMessage(stopped, o.Timeout, command)}
	case streamErr != nil && !errors.Is(streamErr, io.EOF):
		return res, &Error{Code: CodeExecError, Op: "exec", Command: command, Err: streamErr,
			Message: "docker: reading the command's output: " + streamErr.Error()}
	case !pid.seen() && res.ExitCode != 0:
		// The wrapper never ran: the engine could not start the process
		// (a missing working directory, no /bin/sh) and said why on stdout.
		return nil, execStartErr(command, o.Cwd, res)
	case res.ExitCode != 0:
		return res, errExecFailed(command, res.ExitCode, res.Stdout, res.Stderr)
	}
	return res, nil
}

// prepareExec checks an Exec or Start call before anything runs and
// returns the working directory and environment of the command.
func (b *DockerBackend) prepareExec(op, command string, o *ExecOptions) (cwd string, envList []string, err error) {
	if err := b.checkOpen(op); err != nil {
		return "", nil, err
	}
	if err := commandCheck(command, b.safety, b.allowDang, false); err != nil {
		return "", nil, err
	}
	if err := ValidateEnv(o.Env); err != nil {
		return "", nil, err
	}
	cwd = b.root
	if o.Cwd != "" {
		rel, err := resolve(b.root, op, o.Cwd)
		if err != nil {
			return "", nil, err
		}
		cwd = joinRoot(b.root, rel)
	}
	env := mergeEnv(b.env, o.Env)
	envList = make([]string, 0, len(env)+1)
	for _, k := range slices.Sorted(maps.Keys(env)) {
		if k != "HOME" {
			envList = append(envList, k+"="+env[k])
		}
	}
	envList = append(envList, "HOME="+cwd) // HOME is the working directory, as everywhere
	return cwd, envList, nil
}

// killExec kills the process group of a command whose context ended and
// waits (boundedly) for its output to close; closeConn drops the
// connection when that takes too long. It returns the stream's error.
func (b *DockerBackend) killExec(pid *pidLine, streamed chan error, closeConn func()) error {
	select {
	case err := <-streamed: // it ended on its own just then
		return err
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), dockerKillGrace)
	defer cancel()
	// The PID is the first thing the command prints; it may still be on
	// its way, or the command may have ended meanwhile.
	select {
	case <-pid.found:
	case err := <-streamed:
		return err
	case <-ctx.Done():
		closeConn()
		return <-streamed
	}
	for {
		_, _ = b.shellRun(ctx, "ab_kill", nil, strconv.Itoa(pid.pid))
		select {
		case err := <-streamed:
			return err
		case <-time.After(100 * time.Millisecond):
			// A process forked between kill and exit: kill again.
		case <-ctx.Done():
			closeConn()
			return <-streamed
		}
	}
}

func execStoppedMessage(err error, timeout time.Duration, command string) string {
	if errors.Is(err, context.DeadlineExceeded) && timeout > 0 {
		return fmt.Sprintf("Command timed out after %s and was killed: %s", timeout, command)
	}
	return fmt.Sprintf("Command stopped (%v) and was killed: %s", err, command)
}

// execSpawnErr reports an exec that could not be created or attached.
func (b *DockerBackend) execSpawnErr(command string, ctx context.Context, err error) error {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return &Error{Code: CodeExecError, Op: "exec", Command: command, Err: err,
		Message: "docker: could not start the command: " + err.Error()}
}

// execStartErr reports a process the engine could not start; a missing
// working directory answers errors.Is(err, fs.ErrNotExist).
func execStartErr(command, cwd string, res *ExecResult) error {
	msg := strings.TrimSpace(string(res.Stdout) + string(res.Stderr))
	e := &Error{Code: CodeExecError, Op: "exec", Command: command, ExitCode: res.ExitCode,
		Message: "docker: could not start the command: " + msg}
	if strings.Contains(msg, "chdir") || strings.Contains(msg, "cd") { // the engine's chdir, the wrapper's cd
		e.Path = cwd
		e.Err = errnoFromMessage(msg)
	}
	return e
}

// pidLine passes stderr through after taking the wrapper's PID line off
// its front.
type pidLine struct {
	next  io.Writer
	found chan struct{} // closed once the PID is known
	onPID func()        // if set, called (by the writing goroutine) once found is closed
	buf   []byte
	pid   int
	done  bool
}

func (p *pidLine) Write(data []byte) (int, error) {
	n := len(data)
	if !p.done {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			p.buf = append(p.buf, data...)
			return n, nil
		}
		p.buf = append(p.buf, data[:i]...)
		data = data[i+1:]
		p.done = true
		if v, err := strconv.Atoi(string(p.buf)); err == nil && v > 1 {
			p.pid = v
			close(p.found)
			if p.onPID != nil {
				p.onPID()
			}
		} else {
			// Not the wrapper's line (the wrapper did not run): keep it.
			data = append(append(p.buf, '\n'), data...)
		}
		p.buf = nil
	}
	if len(data) > 0 {
		if _, err := p.next.Write(data); err != nil {
			return n, err
		}
	}
	return n, nil
}

// seen reports whether the PID line arrived. Call it after the stream ended.
func (p *pidLine) seen() bool {
	select {
	case <-p.found:
		return true
	default:
		return false
	}
}

// dockerCapture keeps up to max bytes of a stream (all when max < 0),
// counts the rest, and copies everything to live when set.
type dockerCapture struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	max    int
	total  int64
	live   io.Writer
	liveMu *sync.Mutex // shared with the other stream when both go to one writer
}

func newDockerCapture(max int, live io.Writer) *dockerCapture {
	return &dockerCapture{max: max, live: live}
}

// newCaptures returns the captures of a command's stdout and stderr. When
// both go live to one writer, its writes are serialized: a transport may
// copy the two streams from two goroutines.
func newCaptures(max int, stdout, stderr io.Writer) (*dockerCapture, *dockerCapture) {
	o, e := newDockerCapture(max, stdout), newDockerCapture(max, stderr)
	if stdout != nil && sameWriter(stdout, stderr) {
		mu := new(sync.Mutex)
		o.liveMu, e.liveMu = mu, mu
	}
	return o, e
}

func (c *dockerCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.total += int64(len(p))
	keep := p
	if c.max >= 0 {
		keep = p[:min(len(p), max(0, c.max-c.buf.Len()))]
	}
	c.buf.Write(keep)
	c.mu.Unlock()
	if c.live != nil {
		if c.liveMu != nil {
			c.liveMu.Lock()
			defer c.liveMu.Unlock()
		}
		// A failing live writer must not stop the command's output from
		// being read: the command would block on a full pipe.
		_, _ = c.live.Write(p)
	}
	return len(p), nil
}

// result returns the kept bytes, with the truncation line when output was
// cut.
func (c *dockerCapture) result() ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := bytes.Clone(c.buf.Bytes())
	if out == nil {
		out = []byte{}
	}
	if c.total <= int64(len(out)) {
		return out, false
	}
	out = fmt.Appendf(out, "\n\n... [Output truncated. Full output was %d bytes, showing first %d]", c.total, len(out))
	return out, true
}
