// Package sftpbulk moves whole files over an SFTP session (version 3, any
// server) with many requests in flight and without copying: READ replies
// are read from the channel straight into the caller's buffer, and WRITE
// requests are written from the caller's slice. It speaks only what bulk
// transfers need (OPEN, STAT, READ, WRITE, CLOSE); a general SFTP client
// (github.com/pkg/sftp) does the rest.
//
// Why: a general client allocates a buffer for every reply it receives, so
// reading a file costs its size again in garbage on top of the result. A
// Session runs one transfer at a time.
package sftpbulk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
)

// Packet types and status codes of SFTP version 3.
const (
	fxpInit    = 1
	fxpVersion = 2
	fxpOpen    = 3
	fxpClose   = 4
	fxpRead    = 5
	fxpWrite   = 6
	fxpStat    = 17
	fxpStatus  = 101
	fxpHandle  = 102
	fxpData    = 103
	fxpAttrs   = 105

	fxOK       = 0
	fxEOF      = 1
	fxNoSuch   = 2
	fxDenied   = 3
	attrSize   = 0x1
	attrUIDGID = 0x2
	attrPerm   = 0x4
	attrTimes  = 0x8
	attrExt    = 0x80000000

	// Open flags.
	FlagRead  = 0x01
	FlagWrite = 0x02
	FlagCreat = 0x08
	FlagTrunc = 0x10
	FlagExcl  = 0x20
)

// sshPacket is the SSH channel packet size both ends use (x/crypto/ssh's
// and OpenSSH's 32 KiB), and sshHeader the channel-data header inside it.
const sshPacket, sshHeader = 32 << 10, 9

// Chunk is the size of one READ: the most data whose reply (13 bytes of
// SFTP header) still fits one SSH packet of 32 KiB with its header. The
// receiving SSH library copies every packet into a new buffer; at 32 KiB
// or less that buffer is a 32 KiB size class, a byte more and it is a
// 40 KiB span, a quarter more garbage per byte moved.
const Chunk = sshPacket - sshHeader - 13

// inFlight is how many requests a transfer keeps outstanding: 64 × 32 KiB
// fills an SSH channel window of 2 MiB.
const inFlight = 64

// StatusError is an SFTP status other than OK.
type StatusError struct {
	Code uint32
	Msg  string
}

func (e *StatusError) Error() string { return fmt.Sprintf("sftp: %q (status %d)", e.Msg, e.Code) }

// Is lets errors.Is match fs.ErrNotExist and fs.ErrPermission.
func (e *StatusError) Is(target error) bool {
	return (e.Code == fxNoSuch && target == fs.ErrNotExist) || (e.Code == fxDenied && target == fs.ErrPermission)
}

// Session is an SFTP session used for bulk transfers, one at a time.
type Session struct {
	mu    sync.Mutex
	ch    io.ReadWriteCloser
	id    uint32
	hdr   [9]byte
	in    []byte // the body of the last packet read with readPacket
	left  int    // bytes of the current packet not read yet
	out   []byte // requests being built
	start int    // where the request being built starts in out, or -1
	fixed int    // its length when set by setLength, or -1
	err   error  // once the session broke, every call fails with it
}

// Open starts an SFTP session on ch (a channel on which the "sftp"
// subsystem was requested).
func Open(ch io.ReadWriteCloser) (*Session, error) {
	s := &Session{ch: ch, start: -1, fixed: -1}
	if _, err := ch.Write([]byte{0, 0, 0, 5, fxpInit, 0, 0, 0, 3}); err != nil {
		return nil, err
	}
	typ, body, err := s.readPacket()
	if err != nil {
		return nil, err
	}
	if typ != fxpVersion || len(body) < 4 {
		return nil, fmt.Errorf("sftp: unexpected reply %d to INIT", typ)
	}
	return s, nil
}

// Err returns the error that broke the session, or nil while it works.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the session.
func (s *Session) Close() error { return s.ch.Close() }

// ReadFile reads the file at path: its size is taken with STAT when it is
// opened, then it is read with concurrent requests into one buffer of that
// size. A file that shrinks meanwhile is returned short; bytes appended
// after the STAT are not read.
func (s *Session) ReadFile(path string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	data, err := s.readFile(path)
	return data, s.check(err)
}

// WriteFile creates the file at path with the given open flags (for
// example FlagWrite|FlagCreat|FlagExcl) and writes data to it with
// concurrent requests.
func (s *Session) WriteFile(path string, flags uint32, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	return s.check(s.writeFile(path, flags, data))
}

// check keeps a protocol or connection failure as the session's error:
// after one, the stream is out of step.
func (s *Session) check(err error) error {
	var se *StatusError
	if err != nil && !errors.As(err, &se) {
		s.err = err
		s.ch.Close()
	}
	return err
}

func (s *Session) readFile(path string) ([]byte, error) {
	openID, statID := s.next(), s.next()
	s.begin(fxpOpen, openID)
	s.putString(path)
	s.putUint32(FlagRead)
	s.putUint32(0) // no attributes
	s.begin(fxpStat, statID)
	s.putString(path)
	if err := s.flush(); err != nil {
		return nil, err
	}
	var handle string
	var size int64 = -1
	var firstErr error
	for range 2 {
		typ, body, err := s.readPacket()
		if err != nil {
			return nil, err
		}
		id, body := u32(body)
		switch {
		case typ == fxpHandle && id == openID:
			h, _ := str(body)
			handle = string(h)
		case typ == fxpAttrs && id == statID:
			size = attrsSize(body)
		case typ == fxpStatus:
			if err := statusErr(body); err != nil && firstErr == nil {
				firstErr = err
			}
		default:
			return nil, fmt.Errorf("sftp: unexpected reply %d", typ)
		}
	}
	if firstErr != nil || handle == "" || size < 0 {
		if handle != "" {
			_ = s.closeHandle(handle)
		}
		if firstErr == nil {
			firstErr = errors.New("sftp: STAT did not report a size")
		}
		return nil, firstErr
	}
	buf := make([]byte, size)
	n, err := s.readInto(handle, buf)
	if cerr := s.closeHandle(handle); err == nil {
		err = cerr
	}
	return buf[:n], err
}

// readInto reads len(buf) bytes of the open file into buf, keeping up to
// inFlight requests outstanding. It returns how many bytes the file had (up
// to len(buf)).
func (s *Session) readInto(handle string, buf []byte) (int, error) {
	type req struct{ off, n int }
	pending := make(map[uint32]req, inFlight)
	next, end := 0, len(buf) // next offset to request; end of the file as far as we know
	var reqErr error
	send := func() error {
		for len(pending) < inFlight && next < end {
			n := min(Chunk, end-next)
			id := s.next()
			s.begin(fxpRead, id)
			s.putString(handle)
			s.putUint64(uint64(next))
			s.putUint32(uint32(n))
			pending[id] = req{next, n}
			next += n
		}
		return s.flush()
	}
	if err := send(); err != nil {
		return 0, err
	}
	for len(pending) > 0 {
		typ, id, err := s.readHeader()
		if err != nil {
			return 0, err
		}
		r, ok := pending[id]
		if !ok {
			return 0, fmt.Errorf("sftp: reply to unknown request %d", id)
		}
		delete(pending, id)
		switch typ {
		case fxpData:
			n, err := s.readUint32()
			if err != nil {
				return 0, err
			}
			if int(n) > r.n {
				return 0, errors.New("sftp: DATA longer than requested")
			}
			if _, err := io.ReadFull(s.ch, buf[r.off:r.off+int(n)]); err != nil {
				return 0, err
			}
			s.left -= int(n)
			if s.left > 0 {
				if _, err := s.readBody(); err != nil {
					return 0, err
				}
			}
			if rest := r.n - int(n); rest > 0 && r.off+int(n) < end { // a short read: ask for the rest
				gid := s.next()
				s.begin(fxpRead, gid)
				s.putString(handle)
				s.putUint64(uint64(r.off + int(n)))
				s.putUint32(uint32(rest))
				pending[gid] = req{r.off + int(n), rest}
			}
		case fxpStatus:
			body, err := s.readBody()
			if err != nil {
				return 0, err
			}
			code, _ := u32(body)
			if code == fxEOF {
				end = min(end, r.off) // the file is shorter than it was
			} else if reqErr == nil {
				reqErr = statusErr(body)
			}
		default:
			if _, err := s.readBody(); err != nil {
				return 0, err
			}
			return 0, fmt.Errorf("sftp: unexpected reply %d to READ", typ)
		}
		if reqErr == nil {
			if err := send(); err != nil {
				return 0, err
			}
		}
	}
	if reqErr != nil {
		return 0, reqErr
	}
	return min(end, len(buf)), nil
}

func (s *Session) writeFile(path string, flags uint32, data []byte) error {
	id := s.next()
	s.begin(fxpOpen, id)
	s.putString(path)
	s.putUint32(flags)
	s.putUint32(0)
	if err := s.flush(); err != nil {
		return err
	}
	typ, body, err := s.readPacket()
	if err != nil {
		return err
	}
	_, body = u32(body)
	if typ == fxpStatus {
		return statusErr(body)
	}
	if typ != fxpHandle {
		return fmt.Errorf("sftp: unexpected reply %d to OPEN", typ)
	}
	h, _ := str(body)
	handle := string(h)
	err = s.writeFrom(handle, data)
	if cerr := s.closeHandle(handle); err == nil {
		err = cerr
	}
	return err
}

// writeFrom writes data at offset 0 with up to inFlight requests
// outstanding; each request's payload is written from data itself.
func (s *Session) writeFrom(handle string, data []byte) error {
	pending, next := 0, 0
	var reqErr error
	for next < len(data) || pending > 0 {
		for reqErr == nil && pending < inFlight && next < len(data) {
			// One request, header and data, in one SSH packet of 32 KiB
			// (see Chunk).
			s.begin(fxpWrite, s.next())
			s.putString(handle)
			s.putUint64(uint64(next))
			n := min(sshPacket-sshHeader-len(s.out)-4, len(data)-next)
			s.putUint32(uint32(n))
			s.out = append(s.out, data[next:next+n]...)
			if err := s.flush(); err != nil {
				return err
			}
			pending++
			next += n
		}
		if pending == 0 {
			break
		}
		typ, body, err := s.readPacket()
		if err != nil {
			return err
		}
		pending--
		if typ != fxpStatus {
			return fmt.Errorf("sftp: unexpected reply %d to WRITE", typ)
		}
		_, body = u32(body)
		if err := statusErr(body); err != nil && reqErr == nil {
			reqErr = err
		}
	}
	return reqErr
}

func (s *Session) closeHandle(handle string) error {
	s.begin(fxpClose, s.next())
	s.putString(handle)
	if err := s.flush(); err != nil {
		return err
	}
	typ, body, err := s.readPacket()
	if err != nil {
		return err
	}
	if typ != fxpStatus {
		return fmt.Errorf("sftp: unexpected reply %d to CLOSE", typ)
	}
	_, body = u32(body)
	return statusErr(body)
}

// Requests.

func (s *Session) next() uint32 { s.id++; return s.id }

// begin starts a request of type typ with id.
func (s *Session) begin(typ byte, id uint32) {
	s.finish()
	s.start, s.fixed = len(s.out), -1
	s.out = append(s.out, 0, 0, 0, 0, typ)
	s.putUint32(id)
}

// finish writes the length of the request being built.
func (s *Session) finish() {
	if s.start < 0 {
		return
	}
	n := s.fixed
	if n < 0 {
		n = len(s.out) - s.start - 4
	}
	binary.BigEndian.PutUint32(s.out[s.start:], uint32(n))
	s.start, s.fixed = -1, -1
}

func (s *Session) putUint32(v uint32) { s.out = binary.BigEndian.AppendUint32(s.out, v) }
func (s *Session) putUint64(v uint64) { s.out = binary.BigEndian.AppendUint64(s.out, v) }
func (s *Session) putString(v string) {
	s.putUint32(uint32(len(v)))
	s.out = append(s.out, v...)
}

// flush sends the requests built so far.
func (s *Session) flush() error {
	s.finish()
	if len(s.out) == 0 {
		return nil
	}
	_, err := s.ch.Write(s.out)
	s.out = s.out[:0]
	return err
}

// Replies.

// readPacket reads a whole reply: its type and the rest (usually starting
// with the request id). The body is valid until the next read.
func (s *Session) readPacket() (byte, []byte, error) {
	if _, err := io.ReadFull(s.ch, s.hdr[:4]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(s.hdr[:4]))
	if n < 1 || n > 1<<20 {
		return 0, nil, fmt.Errorf("sftp: bad packet length %d", n)
	}
	if cap(s.in) < n {
		s.in = make([]byte, n)
	}
	s.in = s.in[:n]
	if _, err := io.ReadFull(s.ch, s.in); err != nil {
		return 0, nil, err
	}
	return s.in[0], s.in[1:], nil
}

// readHeader reads the length, type and id of a reply, leaving the rest
// for readUint32, readBody or the caller.
func (s *Session) readHeader() (byte, uint32, error) {
	if _, err := io.ReadFull(s.ch, s.hdr[:9]); err != nil {
		return 0, 0, err
	}
	n := int(binary.BigEndian.Uint32(s.hdr[:4]))
	if n < 5 || n > 1<<20 {
		return 0, 0, fmt.Errorf("sftp: bad packet length %d", n)
	}
	s.left = n - 5
	return s.hdr[4], binary.BigEndian.Uint32(s.hdr[5:9]), nil
}

func (s *Session) readUint32() (uint32, error) {
	if s.left < 4 {
		return 0, errors.New("sftp: short packet")
	}
	var b [4]byte
	if _, err := io.ReadFull(s.ch, b[:]); err != nil {
		return 0, err
	}
	s.left -= 4
	return binary.BigEndian.Uint32(b[:]), nil
}

// readBody reads the rest of the current reply.
func (s *Session) readBody() ([]byte, error) {
	if cap(s.in) < s.left {
		s.in = make([]byte, s.left)
	}
	s.in = s.in[:s.left]
	_, err := io.ReadFull(s.ch, s.in)
	s.left = 0
	return s.in, err
}

// u32 splits a uint32 off the front of b (0 when too short).
func u32(b []byte) (uint32, []byte) {
	if len(b) < 4 {
		return 0, nil
	}
	return binary.BigEndian.Uint32(b), b[4:]
}

// str splits a string off the front of b.
func str(b []byte) ([]byte, []byte) {
	n, b := u32(b)
	if int(n) > len(b) {
		return nil, nil
	}
	return b[:n], b[n:]
}

// statusErr returns the error a STATUS body (after the id) stands for, nil
// for OK.
func statusErr(body []byte) error {
	code, rest := u32(body)
	if len(body) < 4 {
		return errors.New("sftp: short STATUS")
	}
	if code == fxOK {
		return nil
	}
	msg, _ := str(rest)
	return &StatusError{Code: code, Msg: string(msg)}
}

// attrsSize returns the size in an ATTRS body (after the id), or -1.
func attrsSize(body []byte) int64 {
	flags, rest := u32(body)
	if flags&attrSize == 0 || len(rest) < 8 {
		return -1
	}
	return int64(binary.BigEndian.Uint64(rest))
}
