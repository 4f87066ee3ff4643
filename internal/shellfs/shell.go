package shellfs

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
	"sync/atomic"
	"time"
)

// shell is one op shell: a /bin/sh inside the container reading requests on
// its standard input.
type shell struct {
	proc     Process
	in       *io.PipeWriter // the shell's standard input
	out      *bufio.Reader  // its output
	outPipe  *io.PipeReader
	sentinel []byte
	done     chan struct{} // closed when the shell has ended
	ended    atomic.Value  // error: why the shell ended (Wait's error), set before its input closes
	broken   bool          // owned by the goroutine holding the shell
}

// startShell starts an op shell and loads the prelude.
func startShell(ctx context.Context, start Starter) (*shell, error) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	proc, err := start(ctx, inR, outW)
	if err != nil {
		return nil, err
	}
	token := make([]byte, 16)
	_, _ = rand.Read(token)
	tok := hex.EncodeToString(token)
	s := &shell{
		proc:     proc,
		in:       inW,
		out:      bufio.NewReaderSize(outR, 64<<10),
		outPipe:  outR,
		sentinel: []byte("\x01AB" + tok + "\x02"),
		done:     make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		_, err := proc.Wait()
		if err == nil {
			err = io.EOF
		}
		s.ended.Store(err)
		outW.CloseWithError(err)
		// A request written now fails instead of blocking; the transport,
		// if it still reads the input, sees its end.
		inW.Close()
	}()
	reply, err := s.run(ctx, "AB_T="+tok+"\n"+prelude+"true", nil)
	if err == nil && reply.Code != 0 {
		err = fmt.Errorf("prelude failed (%d): %s", reply.Code, bytes.TrimSpace(reply.Text))
	}
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// alive reports whether the shell still runs: a shell killed inside the
// container (by a command's kill -9 -1, or the OOM killer) or whose
// connection was lost is noticed here before a request is sent to it.
func (s *shell) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// closeGrace is how long a shell whose input was closed gets to exit
// before its connection is dropped.
const closeGrace = 2 * time.Second

// close ends the shell: the end of its input makes it exit, and its
// streams end as they would for any command (dropping the connection makes
// transports complain); one that does not exit in time loses its
// connection. close waits for the end.
func (s *shell) close() {
	s.in.Close()
	go func() { _, _ = io.Copy(io.Discard, s.outPipe) }() // whatever it still says; ends with the shell
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C:
		_ = s.proc.Close()
		<-s.done
	}
}

// run sends one request and reads its reply. input, if not nil, is sent
// when the function asks for it (R). A failure of the connection, the
// protocol or ctx marks the shell broken.
func (s *shell) run(ctx context.Context, call string, input []byte) (Reply, error) {
	var reply Reply
	stop := context.AfterFunc(ctx, func() { _ = s.proc.Close() })
	defer stop()
	if _, err := io.WriteString(s.in, call+"; ab_ctl \"E$?\"\n"); err != nil {
		return reply, s.fail(ctx, err)
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
			return reply, s.fail(ctx, err)
		}
		line, err := s.out.ReadString('\n')
		if err != nil {
			return reply, s.fail(ctx, err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case strings.HasPrefix(line, "E"):
			code, err := strconv.Atoi(line[1:])
			if err != nil {
				s.broken = true
				return reply, ErrProtocol
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
			go func() { writer <- writeInline(s.in, input) }()
		case line == "L":
			reply.Large = true
		case strings.HasPrefix(line, "D"):
			n, err := strconv.Atoi(line[1:])
			if err != nil || n < 0 || n > InlineMax {
				s.broken = true
				return reply, ErrProtocol
			}
			if reply.Data, err = s.readData(n); err != nil {
				return reply, s.fail(ctx, err)
			}
		default:
			s.broken = true
			return reply, ErrProtocol
		}
	}
}

// fail says why an operation failed: the context's end (a cancelled
// operation drops the connection, and "closed pipe" would hide why), else
// why the shell ended, else err.
func (s *shell) fail(ctx context.Context, err error) error {
	s.broken = true
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if ended, ok := s.ended.Load().(error); ok && ended != io.EOF {
		return ended
	}
	return err
}

// readText appends output to buf up to the next sentinel, which it consumes.
func (s *shell) readText(buf *bytes.Buffer) error {
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
func (s *shell) readData(n int) ([]byte, error) {
	data := make([]byte, n)
	got := 0
	for got < n {
		m, err := s.out.Read(data[got:])
		from := max(0, got-len(s.sentinel)+1)
		got += m
		if bytes.Contains(data[from:got], s.sentinel) {
			return nil, ErrProtocol
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
