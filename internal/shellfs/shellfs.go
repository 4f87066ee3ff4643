// Package shellfs runs file operations inside a container through a few
// long-lived POSIX shells, whatever carries the shells' input and output (the
// Docker Engine API's exec, Kubernetes' pods/exec).
//
// # Why file operations go through a long-lived shell
//
// Every exec in a container costs a runc exec and, on Kubernetes, a round
// trip through the API server and the kubelet: 50-150 ms each on a small
// machine, while a fork inside the container costs about a millisecond.
// Doing each Stat, Rename or ReadDir as its own exec made a workload of a
// few thousand file operations take minutes. So a Pool keeps a few plain
// /bin/sh processes running inside the container (started with one exec
// each, the "op shells") and sends them one small, fixed shell function call
// per file operation. Every argument is single-quoted by Quote; the
// functions themselves are the constant prelude, so nothing a caller passes
// is ever parsed as shell syntax.
//
// The wire protocol over the shell's stdin/stdout, per operation:
//
//	request:  <function call> ; ab_ctl "E$?" \n
//	reply:    <text> SENTINEL <control line> ...  SENTINEL E<exit code> \n
//
// SENTINEL is \x01 "AB" <random hex> \x02, unique per shell. Control lines:
// "E<n>" ends the reply; "R" asks for input (ab_put); "D<n>" is followed by
// exactly n raw bytes (ab_get); "L" says the file is too large to inline and
// is followed by its size and real path, one per line.
//
// Data sent INTO the container (small writes) travels as base64 lines each
// starting with '#': if the consumer died half way, the shell would read the
// rest as comments, never as commands; what arrived is checked against the
// length that was sent before it replaces anything. Data coming OUT (small
// reads) is raw and length-prefixed; the reader also watches for the
// sentinel inside the payload so that a consumer that failed cannot make it
// wait forever. Files larger than InlineMax move over an exec of their own.
package shellfs

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"time"
)

// InlineMax is the largest file moved through an op shell; larger files
// move over an exec stream of their own.
const InlineMax = 1 << 20

// MaxShells bounds the op shells of a Pool: enough to overlap operations
// from concurrent callers without crowding a pids limit.
const MaxShells = 4

// DefaultTimeout bounds one operation when the caller's context has no
// deadline, so that a wedged container cannot hang a caller forever.
const DefaultTimeout = 5 * time.Minute

// Process is a command started in the container.
type Process interface {
	// Wait waits until the command's output has ended and it has exited,
	// and returns its exit code.
	Wait() (int, error)
	// Close drops the connection to the command: its input and output end.
	Close() error
}

// Starter starts /bin/sh in the container with its standard input read
// from stdin and its standard output and error written to output, and
// returns once it is started (or its start is under way).
type Starter func(ctx context.Context, stdin io.Reader, output io.Writer) (Process, error)

// Reply is what one operation produced.
type Reply struct {
	Text  []byte // everything the function printed outside data frames
	Data  []byte // the payload of a D frame
	Large bool   // the function sent L: the file moves over an exec of its own
	Code  int    // the function's exit status
}

// Errors of the pool and its shells.
var (
	// ErrClosed reports an operation on a closed Pool.
	ErrClosed = errors.New("the backend is closed")
	// ErrProtocol reports output an op shell should never produce; the
	// shell is discarded.
	ErrProtocol = errors.New("op shell: protocol error")
)

// Quote single-quotes s for the shell. NUL cannot be passed to a program at
// all, so it is refused.
func Quote(s string) (string, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return "", errors.New("argument contains a NUL byte")
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'", nil
}

// call renders a call of a prelude function with quoted arguments.
func call(fn string, args ...string) (string, error) {
	var b strings.Builder
	b.WriteString(fn)
	for _, a := range args {
		q, err := Quote(a)
		if err != nil {
			return "", err
		}
		b.WriteByte(' ')
		b.WriteString(q)
	}
	return b.String(), nil
}

// Pool is a backend's set of op shells, started on demand.
type Pool struct {
	start Starter
	sem   chan struct{} // one token per live or starting shell
	idle  chan *shell   // shells ready for use; never more than the tokens

	mu     sync.Mutex
	all    map[*shell]struct{}
	closed bool
}

// NewPool returns a pool that starts its shells with start.
func NewPool(start Starter) *Pool {
	return &Pool{
		start: start,
		sem:   make(chan struct{}, MaxShells),
		idle:  make(chan *shell, MaxShells),
		all:   map[*shell]struct{}{},
	}
}

// Run runs one prelude function, fn, with args quoted. input, if not nil,
// is sent when the function asks for it. Without a deadline on ctx the
// operation is bounded by DefaultTimeout. An operation that only reads is
// tried once more on a new shell when its shell died under it.
func (p *Pool) Run(ctx context.Context, fn string, input []byte, args ...string) (Reply, error) {
	c, err := call(fn, args...)
	if err != nil {
		return Reply{}, err
	}
	return p.run(ctx, fn, c, input)
}

// RunIn is Run for an operation on paths of a jail: in the same shell
// call, ab_in first checks that each of roots, its symbolic links
// followed, lies within the one before it, and that each of paths,
// resolved the same way, lies within the last; the function runs only if
// so, else the reply's code is ExitEscape. With no roots it is Run.
//
// The check and the operation are two steps of one shell, so a process
// running in the container at the same time could swap a link between
// them; a jail here keeps the path rule honest against links that are
// there, it does not race processes that can reach the whole container
// anyway.
func (p *Pool) RunIn(ctx context.Context, roots, paths []string, fn string, input []byte, args ...string) (Reply, error) {
	if len(roots) == 0 {
		return p.Run(ctx, fn, input, args...)
	}
	guard, err := call("ab_in", append(append(append([]string{}, roots...), "--"), paths...)...)
	if err != nil {
		return Reply{}, err
	}
	c, err := call(fn, args...)
	if err != nil {
		return Reply{}, err
	}
	return p.run(ctx, fn, guard+" && "+c, input)
}

// run runs the rendered call c of the prelude function fn.
func (p *Pool) run(ctx context.Context, fn, c string, input []byte) (Reply, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	for attempt := 0; ; attempt++ {
		s, err := p.acquire(ctx)
		if err != nil {
			return Reply{}, err
		}
		reply, err := s.run(ctx, c, input)
		p.release(s)
		// A shell that died under an operation (killed inside the
		// container, its connection lost) costs that operation; one that
		// only reads is tried once more.
		if err == nil || ctx.Err() != nil || attempt > 0 || !readOnly[fn] {
			return reply, err
		}
	}
}

// acquire returns an idle shell, or starts one while there are fewer than
// MaxShells, or waits for one to come back.
func (p *Pool) acquire(ctx context.Context) (*shell, error) {
	for {
		if p.isClosed() {
			return nil, ErrClosed
		}
		select {
		case s := <-p.idle:
			if s.alive() {
				return s, nil
			}
			p.discard(s)
			continue
		default:
		}
		select {
		case s := <-p.idle:
			if s.alive() {
				return s, nil
			}
			p.discard(s)
			continue
		case p.sem <- struct{}{}:
			s, err := startShell(ctx, p.start)
			if err != nil {
				<-p.sem
				return nil, err
			}
			p.mu.Lock()
			if p.closed {
				p.mu.Unlock()
				s.close()
				<-p.sem
				return nil, ErrClosed
			}
			p.all[s] = struct{}{}
			p.mu.Unlock()
			return s, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (p *Pool) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// release gives a shell back, or ends it when it is broken.
func (p *Pool) release(s *shell) {
	p.mu.Lock()
	if !s.broken && !p.closed {
		p.mu.Unlock()
		p.idle <- s // cannot block: there are no more shells than slots
		return
	}
	p.mu.Unlock()
	p.discard(s)
}

// discard ends a shell and frees its slot.
func (p *Pool) discard(s *shell) {
	p.mu.Lock()
	delete(p.all, s)
	p.mu.Unlock()
	s.close()
	<-p.sem
}

// Close ends every shell, idle or busy; operations in flight fail, later
// ones fail with ErrClosed.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	shells := make([]*shell, 0, len(p.all))
	for s := range p.all {
		shells = append(shells, s)
	}
	p.mu.Unlock()
	for _, s := range shells {
		s.close()
	}
}
