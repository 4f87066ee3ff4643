package agentbackend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ProcessStarter is an optional interface for backends that can run a
// command in the background: Start returns as soon as the command runs, and
// the caller reads its output, writes to its input, signals it and waits
// for it through the *Process, while doing other work. LocalBackend,
// ContainerBackend (DockerBackend, the kubernetes package's Backend) and
// RemoteBackend implement it; ScopedBackend and CompositeBackend pass it
// through to the backend below them (and fail with NOT_IMPLEMENTED when
// that backend cannot start processes).
//
// Start checks the command exactly as Exec does (EMPTY_COMMAND,
// DANGEROUS_OPERATION, UNSAFE_COMMAND, the environment, the working
// directory) and runs it the same way: in its own process group, under the
// backend's isolation, with the same working directory, HOME and
// environment. ExecOptions apply as for Exec, with these differences:
//
//   - ctx bounds only the start. Once Start has returned, cancelling ctx does
//     nothing: the process runs until it exits, Kill, opts.Timeout (counted
//     from the start) or the backend's Close ends it.
//   - Stdout and Stderr receive the output live, as it is produced, from a
//     goroutine of the process; a writer that blocks holds the command up
//     once the pipe is full. The output is also kept, bounded, for Output
//     and ErrorOutput.
//   - Stdin, if set, is copied to the command's standard input and
//     Process.Stdin returns nil. If not set, the command's standard input is
//     a pipe that stays open until Process.Stdin is closed or the command
//     ends (programs that stop at end of input, such as watchers, keep
//     running).
//
// Processes lists the backend's processes: running ones, and ended ones
// until their result is collected (Wait returned it, or both output
// streams were read to the end) or the retention limit of ProcessConfig
// drops them. Process finds one by ID among those. Close of the backend
// kills every process it started and waits for them.
type ProcessStarter interface {
	Start(ctx context.Context, command string, opts *ExecOptions) (*Process, error)
	Processes() []ProcessInfo
	Process(id string) (*Process, bool)
}

// ProcessState says whether a background process runs and how it ended.
type ProcessState string

// The states of a background process.
const (
	ProcessRunning ProcessState = "running"
	ProcessExited  ProcessState = "exited" // it ended by itself; ExitCode says how
	ProcessKilled  ProcessState = "killed" // Kill, the Timeout or the backend's Close ended it
	// ProcessLost means the backend lost its connection to the process
	// (remote backends): its end and exit code are unknown, and it may
	// still be running on the other side.
	ProcessLost ProcessState = "lost"
)

// ProcessInfo describes a background process.
type ProcessInfo struct {
	ID        string
	Command   string
	State     ProcessState
	ExitCode  int       // -1 while running or when lost; 128+n after signal n
	StartedAt time.Time //
	EndedAt   time.Time // zero while running
	// StdoutBytes and StderrBytes count the output produced so far, kept or
	// not.
	StdoutBytes, StderrBytes int64
	// Terminal says the process runs on a pseudo-terminal
	// (ExecOptions.Terminal): its output, both streams merged, is all on
	// standard output.
	Terminal bool
}

// Defaults of ProcessConfig.
const (
	DefaultProcessOutputLimit = 1 << 20   // bytes kept per output stream
	DefaultProcessKeepExited  = 64        // ended processes kept listed
	DefaultProcessKeepFor     = time.Hour // how long an ended process stays listed
)

// ProcessConfig bounds what a backend keeps of its background processes.
// The zero value means the defaults.
type ProcessConfig struct {
	// OutputLimit is how many bytes of each output stream a process keeps:
	// the newest ones; older output is dropped and a reader that missed it
	// gets a line saying how many bytes it missed. 0 means
	// DefaultProcessOutputLimit.
	OutputLimit int
	// KeepExited is how many ended processes whose result nobody collected
	// stay listed; beyond it the oldest are dropped from the list. 0 means
	// DefaultProcessKeepExited.
	KeepExited int
	// KeepFor is how long an ended process whose result nobody collected
	// stays listed. 0 means DefaultProcessKeepFor.
	KeepFor time.Duration
}

// withDefaults checks c and fills in the defaults.
func (c ProcessConfig) withDefaults(field string) (ProcessConfig, error) {
	if c.OutputLimit < 0 || c.KeepExited < 0 || c.KeepFor < 0 {
		return c, errConfig("%s: limits must not be negative", field)
	}
	if c.OutputLimit == 0 {
		c.OutputLimit = DefaultProcessOutputLimit
	}
	if c.KeepExited == 0 {
		c.KeepExited = DefaultProcessKeepExited
	}
	if c.KeepFor == 0 {
		c.KeepFor = DefaultProcessKeepFor
	}
	return c, nil
}

// processControl is what a backend gives a Process to act on the command.
// Both return os.ErrProcessDone once the command has ended.
type processControl interface {
	signal(sig syscall.Signal) error
	kill() error
}

// Kill causes: why a process was ended by this package, not by itself.
var (
	errKilled  = errors.New("killed")
	errTimeout = errors.New("timeout")
)

var processIDs atomic.Uint64

// Process is a command running in the background, started by
// ProcessStarter.Start. Its methods are safe for concurrent use.
//
// Output is kept per stream (standard output and standard error apart,
// each in its own order), each up to ProcessConfig.OutputLimit bytes: the
// newest output is kept and the oldest dropped, so a chatty process cannot
// exhaust memory. Offsets count every byte the stream ever produced, kept
// or dropped, so a reader can follow a stream with Output(next) and knows
// exactly what it missed.
type Process struct {
	id      string
	command string
	backend BackendType
	started time.Time
	timeout time.Duration
	onTerm  bool            // started with ExecOptions.Terminal
	ctl     processControl  // set before the process is visible to anyone
	term    terminalControl // set with ctl for a process on a terminal; else nil
	stdin   io.WriteCloser
	done    chan struct{}
	table   *processTable

	mu        sync.Mutex
	streams   [2]outputRing
	changed   chan struct{} // closed on the next output or end; nil until asked for
	state     ProcessState
	ended     time.Time
	result    *ExecResult
	err       error
	readToEnd [2]bool // the stream was read to its end after the process ended
	listed    bool    // in table (running, or ended and not yet collected)
}

func newProcess(t *processTable, backend BackendType, command string, opts *ExecOptions) *Process {
	p := &Process{
		id:      "bg_" + strconv.FormatUint(processIDs.Add(1), 10),
		command: command,
		backend: backend,
		started: time.Now(),
		timeout: opts.Timeout,
		onTerm:  opts.Terminal != nil,
		done:    make(chan struct{}),
		table:   t,
		state:   ProcessRunning,
	}
	p.streams[0].limit = t.cfg.OutputLimit
	p.streams[1].limit = t.cfg.OutputLimit
	return p
}

// ID returns the process's identifier, unique within this program ("bg_7").
func (p *Process) ID() string { return p.id }

// Command returns the command line the process runs.
func (p *Process) Command() string { return p.command }

// Info describes the process now.
func (p *Process) Info() ProcessInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.infoLocked()
}

func (p *Process) infoLocked() ProcessInfo {
	info := ProcessInfo{
		ID: p.id, Command: p.command, State: p.state, ExitCode: -1,
		StartedAt: p.started, EndedAt: p.ended,
		StdoutBytes: p.streams[0].end, StderrBytes: p.streams[1].end,
		Terminal: p.onTerm,
	}
	if p.result != nil {
		info.ExitCode = p.result.ExitCode
	}
	return info
}

// Done returns a channel that is closed when the process has ended and
// all its output has been taken in.
func (p *Process) Done() <-chan struct{} { return p.done }

// Changed returns a channel that is closed when the process next produces
// output on either stream, or ends. Take it before reading, then wait on
// it when the read returned nothing new:
//
//	for {
//		changed := p.Changed()
//		chunk, next, done = p.Output(next)
//		...
//		if done { break }
//		if len(chunk) == 0 { <-changed }
//	}
func (p *Process) Changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != ProcessRunning {
		return p.done
	}
	if p.changed == nil {
		p.changed = make(chan struct{})
	}
	return p.changed
}

// Wait waits for the process to end and returns its result with the same
// errors as Exec: a non-zero exit returns the result AND an EXEC_FAILED
// error carrying the exit code; a process ended by Kill or opts.Timeout is
// EXEC_FAILED (exit code 137), wrapping context.DeadlineExceeded for the
// timeout; one ended by the backend's Close is BACKEND_DESTROYED. The
// result holds the output the process kept (the last OutputLimit bytes of
// each stream, after a line saying how much was dropped, with Truncated
// set). Wait may be called any number of times, from any goroutine; once it
// has returned the result, the process is no longer listed.
//
// ctx bounds only the waiting: when it ends first, Wait returns nil and
// ctx.Err(), and the process keeps running.
func (p *Process) Wait(ctx context.Context) (*ExecResult, error) {
	select {
	case <-p.done:
	default:
		select {
		case <-p.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	p.table.forget(p)
	return p.result, p.err
}

// Signal sends sig to the process's whole process group: the command and
// everything it started. sig must be a syscall.Signal. After the process
// has ended it returns os.ErrProcessDone.
func (p *Process) Signal(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return errArgument("signal", "", "unsupported signal %v: use a syscall.Signal", sig)
	}
	return p.ctl.signal(s)
}

// Kill ends the process and everything it started (its whole process
// group) with SIGKILL. It returns at once; Wait and Done tell when the
// process has ended. After the process has ended it returns
// os.ErrProcessDone.
func (p *Process) Kill() error { return p.ctl.kill() }

// Stdin returns the writer to the process's standard input, or nil when
// ExecOptions.Stdin supplied it. Closing it ends the input. Writes fail
// once the process has ended. For a process on a terminal it types into
// the terminal: "\r" is Enter, "\x03" Ctrl-C (see TerminalKey), and
// Close ends only the writer, not the terminal (type Ctrl-D for an end of
// input).
func (p *Process) Stdin() io.WriteCloser { return p.stdin }

// Output returns the standard output the process produced from offset
// since on, the offset to continue from, and whether that is all of it:
// done is true once the process has ended and chunk holds everything up to
// its end. Call it with 0 first, then with next. It never blocks (see
// Changed to wait for more). When since is older than what the process
// kept, chunk starts with a line saying how many bytes were dropped, then
// the oldest kept output; an offset beyond the end counts as the end.
func (p *Process) Output(since int64) (chunk []byte, next int64, done bool) {
	return p.read(nil, 0, since)
}

// ErrorOutput is Output for standard error, which is kept and counted
// apart.
func (p *Process) ErrorOutput(since int64) (chunk []byte, next int64, done bool) {
	return p.read(nil, 1, since)
}

// AppendOutput is Output appending the chunk to dst (which may be nil)
// and returning the extended slice, as strconv.AppendInt does: a reader
// that follows a chatty process with one reused buffer allocates nothing
// per read, and leaves the garbage collector nothing to do.
func (p *Process) AppendOutput(dst []byte, since int64) (chunk []byte, next int64, done bool) {
	return p.read(dst, 0, since)
}

// AppendErrorOutput is AppendOutput for standard error.
func (p *Process) AppendErrorOutput(dst []byte, since int64) (chunk []byte, next int64, done bool) {
	return p.read(dst, 1, since)
}

func (p *Process) read(dst []byte, stream int, since int64) ([]byte, int64, bool) {
	p.mu.Lock()
	chunk, next := p.streams[stream].appendTo(dst, since)
	done := p.state != ProcessRunning
	collected := false
	if done {
		p.readToEnd[stream] = true
		collected = p.readToEnd[0] && p.readToEnd[1]
	}
	p.mu.Unlock()
	if collected {
		p.table.forget(p)
	}
	return chunk, next, done
}

// appendOutput keeps output of one stream and wakes those waiting on
// Changed.
func (p *Process) appendOutput(stream int, data []byte) {
	p.mu.Lock()
	p.streams[stream].write(data)
	if p.changed != nil {
		close(p.changed)
		p.changed = nil
	}
	p.mu.Unlock()
}

// finish records the end of the process, once all its output is in:
// exitCode as the shell reports it, killed the cause when this package
// ended it (errKilled, errTimeout, errBackendClosed), failure an error that
// replaces the usual outcome (a lost connection, a failure to wait).
func (p *Process) finish(exitCode int, killed, failure error) {
	p.mu.Lock()
	res := &ExecResult{ExitCode: exitCode, Duration: time.Since(p.started)}
	var cut1, cut2 bool
	res.Stdout, cut1 = p.streams[0].all()
	res.Stderr, cut2 = p.streams[1].all()
	res.Truncated = cut1 || cut2
	p.state = ProcessExited
	switch {
	case failure != nil:
		p.err = failure
		if ErrorCode(failure) == CodeConnectionClosed {
			p.state = ProcessLost
		}
	case killed != nil:
		p.state = ProcessKilled
		p.err = killedErr(p.backend, p.command, exitCode, killed, p.timeout)
	case exitCode != 0:
		p.err = errExecFailed(p.command, exitCode, res.Stdout, res.Stderr)
	}
	p.result = res
	p.ended = time.Now()
	if p.changed != nil {
		close(p.changed)
		p.changed = nil
	}
	p.mu.Unlock()
	if p.stdin != nil {
		_ = p.stdin.Close() // the command is gone; release the pipe
	}
	close(p.done)
}

// killedErr reports a command this package ended (Exec or a Process) on
// a backend of type typ, and why: cause is errKilled, errTimeout,
// errBackendClosed or a context's error. The message names the command
// shortened; Error.Command keeps it whole.
func killedErr(typ BackendType, command string, exitCode int, cause error, timeout time.Duration) error {
	if cause == errBackendClosed {
		return errDestroyed("exec", typ)
	}
	e := &Error{Code: CodeExecFailed, Op: "exec", Command: command, ExitCode: exitCode, Err: cause}
	switch {
	case cause == errTimeout || errors.Is(cause, context.DeadlineExceeded) && timeout > 0:
		e.Err = context.DeadlineExceeded
		e.Message = fmt.Sprintf("Command timed out after %v and was killed: %s", timeout, shorten(command))
	case cause == errKilled:
		e.Message = "Command was killed: " + shorten(command)
	default:
		e.Message = fmt.Sprintf("Command cancelled (%v) and was killed: %s", cause, shorten(command))
	}
	return e
}

// processTable is a backend's list of background processes, with the
// retention rule of ProcessConfig.
type processTable struct {
	cfg ProcessConfig

	mu     sync.Mutex
	procs  map[string]*Process
	closed bool
}

func newProcessTable(cfg ProcessConfig) *processTable {
	return &processTable{cfg: cfg, procs: map[string]*Process{}}
}

// add lists a process about to be started. It fails once the backend is
// closing; otherwise the caller must end the process with finish, even if
// it fails to start, so that close can wait for it.
func (t *processTable) add(p *Process) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.expireLocked(time.Now())
	t.procs[p.id] = p
	p.mu.Lock()
	p.listed = true
	p.mu.Unlock()
	return true
}

// forget drops an ended process from the list.
func (t *processTable) forget(p *Process) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p.mu.Lock()
	ended := p.state != ProcessRunning
	if ended {
		p.listed = false
	}
	p.mu.Unlock()
	if ended && t.procs[p.id] == p {
		delete(t.procs, p.id)
	}
}

// isListed reports whether p is still in its table.
func (p *Process) isListed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.listed
}

// expireLocked drops ended processes beyond KeepExited (the oldest first)
// and those that ended more than KeepFor ago.
func (t *processTable) expireLocked(now time.Time) {
	var ended []*Process
	for _, p := range t.procs {
		p.mu.Lock()
		if p.state != ProcessRunning {
			if now.Sub(p.ended) > t.cfg.KeepFor {
				p.listed = false
				delete(t.procs, p.id)
			} else {
				ended = append(ended, p)
			}
		}
		p.mu.Unlock()
	}
	if len(ended) <= t.cfg.KeepExited {
		return
	}
	sortProcesses(ended, func(p *Process) time.Time { return p.ended })
	for _, p := range ended[:len(ended)-t.cfg.KeepExited] {
		p.mu.Lock()
		p.listed = false
		p.mu.Unlock()
		delete(t.procs, p.id)
	}
}

// get returns a listed process.
func (t *processTable) get(id string) (*Process, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expireLocked(time.Now())
	p, ok := t.procs[id]
	return p, ok
}

// list describes the listed processes, oldest first.
func (t *processTable) list() []ProcessInfo {
	t.mu.Lock()
	t.expireLocked(time.Now())
	procs := make([]*Process, 0, len(t.procs))
	for _, p := range t.procs {
		procs = append(procs, p)
	}
	t.mu.Unlock()
	return processInfos(procs)
}

// processInfos describes procs, oldest first.
func processInfos(procs []*Process) []ProcessInfo {
	sortProcesses(procs, func(p *Process) time.Time { return p.started })
	infos := make([]ProcessInfo, len(procs))
	for i, p := range procs {
		infos[i] = p.Info()
	}
	return infos
}

// close refuses new processes and returns the running ones, for the
// backend to kill.
func (t *processTable) close() []*Process {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	var running []*Process
	for _, p := range t.procs {
		select {
		case <-p.done:
		default:
			running = append(running, p)
		}
	}
	return running
}

// processCloseWait bounds how long Close waits for killed processes to
// end (a process in uninterruptible sleep cannot be killed at once).
const processCloseWait = 10 * time.Second

// waitAll waits, up to processCloseWait, for procs to end.
func waitAll(procs []*Process) {
	timer := time.NewTimer(processCloseWait)
	defer timer.Stop()
	for _, p := range procs {
		select {
		case <-p.done:
		case <-timer.C:
			return
		}
	}
}

// processStream takes one output stream of a process: it keeps it and
// passes it on to the caller's live writer, if any. It never fails, so the
// command is never stopped by it; an error from live stops only the live
// copy.
type processStream struct {
	p       *Process
	stream  int
	live    io.Writer
	liveErr error
	mu      *sync.Mutex // shared with the other stream when both go to one writer
}

// processStreams returns the two stream writers of p for the live writers
// stdout and stderr.
func processStreams(p *Process, stdout, stderr io.Writer) (*processStream, *processStream) {
	o := &processStream{p: p, stream: 0, live: stdout}
	e := &processStream{p: p, stream: 1, live: stderr}
	if stdout != nil && sameWriter(stdout, stderr) {
		mu := new(sync.Mutex)
		o.mu, e.mu = mu, mu
	}
	return o, e
}

// terminalStream returns the one output writer of a process on a
// terminal, whose output is all standard output. It may be given to two
// writers (a daemon that ignores the terminal sends standard error apart).
func terminalStream(p *Process, live io.Writer) *processStream {
	return &processStream{p: p, stream: 0, live: live, mu: new(sync.Mutex)}
}

func (s *processStream) Write(data []byte) (int, error) {
	if s.mu != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
	}
	s.p.appendOutput(s.stream, data)
	if s.live != nil && s.liveErr == nil {
		_, s.liveErr = s.live.Write(data)
	}
	return len(data), nil
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
