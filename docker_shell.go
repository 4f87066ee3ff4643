package agentbackend

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// Why file operations go through a long-lived shell
//
// Every Docker exec and every archive (CopyTo/FromContainer) request costs a
// runc exec or a re-exec of dockerd: 50-150 ms each on a small machine, while
// a fork inside the container costs about a millisecond. Doing each Stat,
// Rename or ReadDir as its own exec made a workload of a few thousand file
// operations take minutes. So a DockerBackend keeps a few plain /bin/sh
// processes running inside the container (started with one exec each, the
// "op shells") and sends them one small, fixed shell function call per file
// operation. Every argument is single-quoted by dockerQuote; the functions
// themselves are the constant prelude below, so nothing a caller passes is
// ever parsed as shell syntax.
//
// The wire protocol over the shell's stdin/stdout, per operation:
//
//	request:  <function call> ; ab_ctl "E$?" \n
//	reply:    <text> SENTINEL <control line> ...  SENTINEL E<exit code> \n
//
// SENTINEL is \x01 "AB" <random hex> \x02, unique per shell. Control lines:
// "E<n>" ends the reply; "R" asks for input (Write); "D<n>" is followed by
// exactly n raw bytes (Read); "L" says the file is too large to inline.
//
// Data sent INTO the container (small writes) travels as base64 lines each
// starting with '#': if the consumer died half way, the shell would read the
// rest as comments, never as commands. Data coming OUT (small reads) is raw
// and length-prefixed; the reader also watches for the sentinel inside the
// payload so that a consumer that failed cannot make it wait forever.
// Files larger than dockerInlineMax use the Engine API's tar streams.

// dockerInlineMax is the largest file moved through an op shell; larger
// files go through CopyToContainer/CopyFromContainer.
const dockerInlineMax = 1 << 20

// dockerShellsMax bounds the op shells per backend: enough to overlap
// operations from concurrent callers without crowding a pids limit.
const dockerShellsMax = 4

// Exit codes the prelude's functions use for errors they detect themselves.
const (
	dockerExitNotExist = 100 // ENOENT
	dockerExitNotDir   = 101 // ENOTDIR
	dockerExitIsDir    = 102 // EISDIR
	dockerExitNotFile  = 104 // not a regular file
	dockerExitEscape   = 103 // ab_in: a path leads out of the scope
)

// dockerPrelude defines the file operations. ab_in ROOT... -- PATH... is
// the check of a scope's view (see DockerBackend.shellRunIn): each ROOT,
// its links followed (ab_resolve), must lie in the one before it, and each
// PATH in the last. Paths are always absolute
// (they start with the workspace dir), so no argument can look like an
// option; "--" is passed anyway where the tools accept it. Every tool used
// exists in busybox and in GNU coreutils/findutils. find is given "dir/" so
// that a directory reached through a symbolic link is listed too.
const dockerPrelude = `exec 2>&1
ab_ctl() { printf '\001AB%s\002%s\n' "$AB_T" "$1"; }
ab_missing() { ! [ -e "$1" ] && ! [ -L "$1" ]; }
ab_exists() { if ab_missing "$1"; then return 1; fi; return 0; }
ab_stat() { if ab_missing "$1"; then return 100; fi; stat -c '%f %s %y %n' -- "$1"; }
ab_ls() {
	if ab_missing "$1"; then return 100; fi
	[ -d "$1" ] || return 101
	find "$1/" -mindepth 1 -maxdepth 1 -print0
}
ab_lsinfo() {
	if ab_missing "$1"; then return 100; fi
	[ -d "$1" ] || return 101
	find "$1/" -mindepth 1 -maxdepth 1 -exec stat -c '%f %s %y %n' -- {} + 2>/dev/null
	return 0
}
ab_mkdir() { [ -d "$1" ] || mkdir -p -- "$1"; }
ab_touch() {
	if [ -d "$2" ]; then return 102; fi
	ab_mkdir "$1" && touch -- "$2"
}
ab_rm() {
	if ab_missing "$1"; then [ "$3" = 1 ] && return 0; return 100; fi
	if [ "$2" = 1 ]; then rm -rf -- "$1"; return; fi
	if [ -d "$1" ] && ! [ -L "$1" ]; then return 102; fi
	rm -f -- "$1"
}
ab_mv() {
	if ab_missing "$1"; then return 100; fi
	ab_mkdir "$3" && mv -f -T -- "$1" "$2"
}
ab_commit() { mv -f -T -- "$1" "$2" || { rm -f -- "$1"; return 1; }; }
ab_put() {
	ab_mkdir "$1" || return 1
	ab_ctl R
	sed -n '/^#END$/q; s/^#//p' | base64 -d > "$2" || { rm -f -- "$2"; return 1; }
	[ "$(stat -c %s -- "$2")" = "$4" ] || { rm -f -- "$2"; echo "short write"; return 1; }
	ab_commit "$2" "$3"
}
ab_get() {
	[ -e "$1" ] || return 100
	[ -d "$1" ] && return 102
	[ -f "$1" ] || return 104
	{
		AB_N=$(stat -L -c %s /proc/self/fd/3) || return 1
		if [ "$AB_N" -gt "$2" ]; then ab_ctl L; readlink -f -- "$1"; return 0; fi
		ab_ctl "D$AB_N"
		if [ "$AB_N" -gt 0 ]; then dd bs="$AB_N" count=1 iflag=fullblock conv=sync,noerror status=none <&3; fi
		return 0
	} 3< "$1"
}
ab_kill() { kill -9 -"$1" 2>/dev/null || kill -9 "$1" 2>/dev/null; return 0; }
ab_signal() { kill -"$1" -"$2" 2>/dev/null || kill -"$1" "$2" 2>/dev/null; return 0; }
ab_tree() {
	if ab_missing "$1"; then return 100; fi
	[ -d "$1" ] || return 101
	find "$1/" -mindepth 1 -exec stat -c '%f %s %y %n' -- {} + 2>/dev/null
	return 0
}
ab_grepl() { grep -rlF -e "$2" -- "$1/" 2>/dev/null; return 0; }
ab_real() { readlink -f -- "$1" && ab_resolve "$2"; }
ab_resolve() {
	AB_P="$1"; AB_R=""; AB_H=0
	while :; do
		while ! [ -e "$AB_P" ] && ! [ -L "$AB_P" ]; do
			AB_R="/${AB_P##*/}$AB_R"; AB_P="${AB_P%/*}"; [ -n "$AB_P" ] || AB_P=/
		done
		if [ -L "$AB_P" ] && ! [ -e "$AB_P" ]; then
			AB_H=$((AB_H+1)); [ "$AB_H" -gt 40 ] && return 1
			AB_L=$(readlink -- "$AB_P") || return 1
			case "$AB_L" in /*) AB_P="$AB_L" ;; *) AB_P="${AB_P%/*}/$AB_L" ;; esac
			continue
		fi
		printf '%s%s\n' "$(readlink -f -- "$AB_P")" "$AB_R"
		return 0
	done
}
ab_in() {
	AB_J=""
	while [ "$1" != -- ]; do
		AB_Q=$(ab_resolve "$1") || return 103
		if [ -n "$AB_J" ]; then case "$AB_Q" in "$AB_J"|"$AB_J"/*) ;; *) return 103 ;; esac; fi
		AB_J=$AB_Q; shift
	done
	shift
	for AB_X in "$@"; do
		AB_Q=$(ab_resolve "$AB_X") || return 103
		case "$AB_Q" in "$AB_J"|"$AB_J"/*) ;; *) return 103 ;; esac
	done
}
`

// dockerQuote single-quotes s for the shell. NUL cannot be passed to a
// program at all, so it is refused.
func dockerQuote(s string) (string, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return "", errors.New("argument contains a NUL byte")
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'", nil
}

// dockerCall renders a call of a prelude function with quoted arguments.
func dockerCall(fn string, args ...string) (string, error) {
	var b strings.Builder
	b.WriteString(fn)
	for _, a := range args {
		q, err := dockerQuote(a)
		if err != nil {
			return "", err
		}
		b.WriteByte(' ')
		b.WriteString(q)
	}
	return b.String(), nil
}

// dockerShellReply is what one operation produced.
type dockerShellReply struct {
	Text  []byte // everything the function printed outside data frames
	Data  []byte // the payload of a D frame
	Large bool   // the function sent L: use the tar path
	Code  int    // the function's exit status
}

// errShellProtocol reports output the op shell should never produce; the
// shell is discarded.
var errShellProtocol = errors.New("docker op shell: protocol error")

// dockerShell is one op shell: a /bin/sh inside the container reading
// requests on stdin.
type dockerShell struct {
	hr       types.HijackedResponse
	pr       *io.PipeReader
	out      *bufio.Reader
	sentinel []byte
	done     chan struct{} // closed when the demultiplexer has stopped
	broken   bool          // owned by the goroutine holding the shell
}

// startDockerShell starts an op shell in container id as user and loads
// the prelude.
func startDockerShell(ctx context.Context, cli dockerAPI, id, user string) (*dockerShell, error) {
	created, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{
		User:         user,
		AttachStdin:  true,
		AttachStdout: true,
		AttachStderr: true,
		Env:          []string{"LC_ALL=C"}, // tool messages are parsed
		WorkingDir:   "/",
		Cmd:          []string{"/bin/sh"},
	})
	if err != nil {
		return nil, err
	}
	hr, err := cli.ContainerExecAttach(context.WithoutCancel(ctx), created.ID, container.ExecAttachOptions{})
	if err != nil {
		return nil, err
	}
	token := make([]byte, 16)
	_, _ = rand.Read(token)
	tok := hex.EncodeToString(token)
	pr, pw := io.Pipe()
	s := &dockerShell{
		hr:       hr,
		pr:       pr,
		out:      bufio.NewReaderSize(pr, 64<<10),
		sentinel: []byte("\x01AB" + tok + "\x02"),
		done:     make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		// The shell's stderr is merged into stdout by the prelude; anything
		// before that (a missing /bin/sh) goes to the same reader.
		_, err := stdcopy.StdCopy(pw, pw, hr.Reader)
		if err == nil {
			err = io.EOF
		}
		pw.CloseWithError(err)
	}()
	reply, err := s.run(ctx, "AB_T="+tok+"\n"+dockerPrelude+"true", nil)
	if err == nil && reply.Code != 0 {
		err = fmt.Errorf("prelude failed (%d): %s", reply.Code, bytes.TrimSpace(reply.Text))
	}
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// alive reports whether the shell's output is still open: a shell killed
// inside the container (by a command's kill -9 -1, or the OOM killer) is
// noticed here before a request is sent to it.
func (s *dockerShell) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// close ends the shell: closing its stdin makes it exit, closing the
// connection ends the demultiplexer, which close waits for.
func (s *dockerShell) close() {
	s.hr.Close()
	s.pr.Close()
	<-s.done
}

// run sends one request and reads its reply. input, if not nil, is sent
// when the function asks for it (R). A failure of the connection, the
// protocol or ctx marks the shell broken.
func (s *dockerShell) run(ctx context.Context, call string, input []byte) (dockerShellReply, error) {
	var reply dockerShellReply
	stop := context.AfterFunc(ctx, func() { s.hr.Close() })
	defer stop()
	if _, err := io.WriteString(s.hr.Conn, call+"; ab_ctl \"E$?\"\n"); err != nil {
		s.broken = true
		return reply, s.ctxErr(ctx, err)
	}
	var text bytes.Buffer
	var writer chan error // the goroutine sending input, if started
	defer func() {
		if writer != nil {
			if err := <-writer; err != nil {
				s.broken = true
			}
		}
	}()
	for {
		if err := s.readText(&text); err != nil {
			s.broken = true
			return reply, s.ctxErr(ctx, err)
		}
		line, err := s.out.ReadString('\n')
		if err != nil {
			s.broken = true
			return reply, s.ctxErr(ctx, err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case strings.HasPrefix(line, "E"):
			code, err := strconv.Atoi(line[1:])
			if err != nil {
				s.broken = true
				return reply, errShellProtocol
			}
			reply.Text, reply.Code = text.Bytes(), code
			if writer != nil && code != 0 {
				// The input may not all have been consumed; it is inert
				// (comments), but do not reuse the shell.
				s.broken = true
			}
			return reply, nil
		case line == "R" && input != nil && writer == nil:
			// Written from another goroutine so that output the shell
			// produces meanwhile is read and cannot fill its pipe.
			writer = make(chan error, 1)
			go func() { writer <- writeInline(s.hr.Conn, input) }()
		case line == "L":
			reply.Large = true
		case strings.HasPrefix(line, "D"):
			n, err := strconv.Atoi(line[1:])
			if err != nil || n < 0 || n > dockerInlineMax {
				s.broken = true
				return reply, errShellProtocol
			}
			if reply.Data, err = s.readData(n); err != nil {
				s.broken = true
				return reply, s.ctxErr(ctx, err)
			}
		default:
			s.broken = true
			return reply, errShellProtocol
		}
	}
}

// ctxErr prefers the context's error: a cancelled operation closes the
// connection, and "use of closed connection" would hide why.
func (s *dockerShell) ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// readText appends output to buf up to the next sentinel, which it consumes.
func (s *dockerShell) readText(buf *bytes.Buffer) error {
	for {
		chunk, err := s.out.ReadSlice(0x01)
		switch {
		case err == bufio.ErrBufferFull:
			buf.Write(chunk)
			continue
		case err != nil:
			buf.Write(chunk)
			return err
		}
		buf.Write(chunk[:len(chunk)-1])
		rest, err := s.out.Peek(len(s.sentinel) - 1)
		if err == nil && bytes.Equal(rest, s.sentinel[1:]) {
			_, _ = s.out.Discard(len(rest))
			return nil
		}
		if err != nil && len(rest) < len(s.sentinel)-1 && !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
		buf.WriteByte(0x01)
	}
}

// readData reads an n-byte payload. A sentinel inside it means the producer
// failed and the shell moved on to its reply: better an error than waiting
// for bytes that will never come.
func (s *dockerShell) readData(n int) ([]byte, error) {
	data := make([]byte, n)
	got := 0
	for got < n {
		m, err := s.out.Read(data[got:])
		from := max(0, got-len(s.sentinel)+1)
		got += m
		if bytes.Contains(data[from:got], s.sentinel) {
			return nil, errShellProtocol
		}
		if err != nil {
			return nil, err
		}
	}
	return data, nil
}

// writeInline sends data as '#'-prefixed base64 lines and an end marker.
func writeInline(w io.Writer, data []byte) error {
	const lineBytes = 3 * 1024 // 4 KiB of base64 per line
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := make([]byte, base64.StdEncoding.EncodedLen(lineBytes))
	for len(data) > 0 {
		n := min(len(data), lineBytes)
		m := base64.StdEncoding.EncodedLen(n)
		base64.StdEncoding.Encode(enc, data[:n])
		bw.WriteByte('#')
		bw.Write(enc[:m])
		bw.WriteByte('\n')
		data = data[n:]
	}
	// sed reads a line ahead (to know whether the current one is the last),
	// so one more comment follows the end marker: sed takes it or, if it did
	// not need it, the shell skips it as a comment.
	bw.WriteString("#END\n#\n")
	return bw.Flush()
}

// dockerShells is a backend's pool of op shells, started on demand.
type dockerShells struct {
	start func(ctx context.Context) (*dockerShell, error)
	sem   chan struct{}     // one token per live or starting shell
	idle  chan *dockerShell // shells ready for use; never more than the tokens

	mu     sync.Mutex
	all    map[*dockerShell]struct{}
	closed bool
}

func newDockerShells(start func(context.Context) (*dockerShell, error)) *dockerShells {
	return &dockerShells{
		start: start,
		sem:   make(chan struct{}, dockerShellsMax),
		idle:  make(chan *dockerShell, dockerShellsMax),
		all:   map[*dockerShell]struct{}{},
	}
}

// acquire returns an idle shell, or starts one while there are fewer than
// dockerShellsMax, or waits for one to come back.
func (p *dockerShells) acquire(ctx context.Context) (*dockerShell, error) {
	for {
		if p.isClosed() {
			return nil, errShellsClosed
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
			s, err := p.start(ctx)
			if err != nil {
				<-p.sem
				return nil, err
			}
			p.mu.Lock()
			if p.closed {
				p.mu.Unlock()
				s.close()
				<-p.sem
				return nil, errShellsClosed
			}
			p.all[s] = struct{}{}
			p.mu.Unlock()
			return s, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (p *dockerShells) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// release gives a shell back, or ends it when it is broken.
func (p *dockerShells) release(s *dockerShell) {
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
func (p *dockerShells) discard(s *dockerShell) {
	p.mu.Lock()
	delete(p.all, s)
	p.mu.Unlock()
	s.close()
	<-p.sem
}

// close ends every shell, idle or busy; operations in flight fail.
func (p *dockerShells) close() {
	p.mu.Lock()
	p.closed = true
	shells := make([]*dockerShell, 0, len(p.all))
	for s := range p.all {
		shells = append(shells, s)
	}
	p.mu.Unlock()
	for _, s := range shells {
		s.close()
	}
}

var errShellsClosed = errors.New("docker backend is closed")

// dockerShellTimeout bounds one file operation when the caller's context
// has no deadline, so that a wedged container cannot hang a caller forever.
const dockerShellTimeout = 5 * time.Minute
