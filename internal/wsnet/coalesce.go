package wsnet

import (
	"io"
	"net"
	"sync"
	"time"
)

// SSH writes one packet (at most 32 KiB) per Write, holding its own lock
// until the Write returns, and reads through a 4 KiB buffer. Over a
// WebSocket each of those would be a frame and a system call or more (the
// client masks its frames through a 4 KiB buffer). A Conn instead hands
// writes to a goroutine that sends whatever has queued meanwhile as one
// message, and reads through a buffer of its own.
//
// Nothing is held back to wait for more: a small write while nothing is
// queued or being sent (an exec's input, an SFTP request) is sent at once
// by the writer itself, as before, without a hand-over between goroutines;
// a larger one is queued, the sender sends as soon as it is free, and the
// writes that arrive meanwhile are merged into the next message. Message boundaries mean nothing
// on this stream to either end (nor to the reference daemon and client).
const (
	maxMessage = 128 << 10 // a Write waits while this much is queued
	directMax  = 16 << 10  // a Write up to this size is sent by the writer when the line is free
	readBuf    = 64 << 10  // the read buffer
	closeWait  = 5 * time.Second
)

// sender queues writes for one goroutine that sends them.
type sender struct {
	w io.Writer // the WebSocket net.Conn

	mu     sync.Mutex
	cond   *sync.Cond // signalled when the queue or state changes
	queue  []byte     // written, not yet taken by the goroutine
	spare  []byte     // the goroutine's last send buffer, for reuse
	busy   bool       // a message is being sent (by the goroutine or a writer)
	err    error      // the first send error; every later Write fails with it
	closed bool       // no more writes; the goroutine ends once the queue is empty
	done   chan struct{}
}

func newSender(w io.Writer) *sender {
	s := &sender{w: w, done: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	go s.run()
	return s
}

// Write queues p, waiting while the queue is full. It fails with the error
// of an earlier send: the stream is broken from there on.
func (s *sender) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.err == nil && !s.closed && len(s.queue) > 0 && len(s.queue)+len(p) > maxMessage {
		s.cond.Wait()
	}
	if s.err != nil {
		return 0, s.err
	}
	if s.closed {
		return 0, errClosedConn
	}
	if !s.busy && len(s.queue) == 0 && len(p) <= directMax {
		s.busy = true
		s.mu.Unlock()
		n, err := s.w.Write(p)
		s.mu.Lock()
		s.busy = false
		if err != nil && s.err == nil {
			s.err = err
		}
		s.cond.Broadcast()
		return n, err
	}
	s.queue = append(s.queue, p...)
	s.cond.Broadcast()
	return len(p), nil
}

func (s *sender) run() {
	defer close(s.done)
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		for (len(s.queue) == 0 && !s.closed || s.busy) && s.err == nil {
			s.cond.Wait()
		}
		if len(s.queue) == 0 || s.err != nil {
			return // closed and drained, or broken
		}
		msg := s.queue
		s.queue = s.spare[:0]
		s.busy = true
		s.cond.Broadcast() // room for writers
		s.mu.Unlock()
		_, err := s.w.Write(msg)
		s.mu.Lock()
		s.busy = false
		// The two buffers are kept (at most maxMessage and a packet
		// each): dropping them between bursts costs more in garbage than
		// they weigh.
		s.spare = msg[:0]
		if err != nil {
			s.err = err
			s.queue = nil
		}
		s.cond.Broadcast()
	}
}

// close stops taking writes and waits (up to closeWait) until what was
// queued has been sent or the sending failed, so that the last messages of
// a protocol (SSH's disconnect, a channel's close) precede the close frame.
func (s *sender) close() {
	s.mu.Lock()
	s.closed = true
	s.cond.Broadcast()
	s.mu.Unlock()
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C:
	}
}

// stop ends the goroutine once the connection is closed (a send blocked
// on it has failed by then), and waits for it.
func (s *sender) stop() {
	s.mu.Lock()
	s.closed = true
	if s.err == nil {
		s.err = errClosedConn
	}
	s.queue = nil
	s.cond.Broadcast()
	s.mu.Unlock()
	<-s.done
}

// errClosedConn is the error of a Write after Close.
var errClosedConn = net.ErrClosed
