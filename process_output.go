package agentbackend

import (
	"slices"
	"strconv"
	"time"
)

// outputRing keeps the newest limit bytes of a stream. Offsets are absolute:
// byte o of the stream (counting from 0, dropped bytes included) is at
// buf[o % limit] while it is kept. buf grows as output comes, up to limit,
// so a quiet process costs little.
type outputRing struct {
	buf   []byte
	limit int   // > 0
	end   int64 // bytes written in all
}

// start returns the offset of the oldest byte kept.
func (r *outputRing) start() int64 { return r.end - min(r.end, int64(r.limit)) }

func (r *outputRing) write(p []byte) {
	if len(r.buf) < r.limit {
		if r.end+int64(len(p)) <= int64(r.limit) {
			r.buf = append(r.buf, p...)
			r.end += int64(len(p))
			return
		}
		// It wraps from now on: take the whole buffer. Offsets below limit
		// are still at their own index.
		r.buf = slices.Grow(r.buf, r.limit-len(r.buf))[:r.limit]
	}
	if len(p) > r.limit {
		r.end += int64(len(p) - r.limit)
		p = p[len(p)-r.limit:]
	}
	i := int(r.end % int64(r.limit))
	n := copy(r.buf[i:], p)
	copy(r.buf, p[n:])
	r.end += int64(len(p))
}

// read returns a copy of the bytes from offset since to the end, after a
// line saying how many bytes from since on were dropped, if any; and the
// end offset.
func (r *outputRing) read(since int64) ([]byte, int64) { return r.appendTo(nil, since) }

// appendTo is read appending to out.
func (r *outputRing) appendTo(out []byte, since int64) ([]byte, int64) {
	since = max(0, min(since, r.end))
	if start := r.start(); since < start {
		out = append(out, droppedLine(start-since)...)
		since = start
	}
	n := int(r.end - since)
	if n == 0 {
		return out, r.end
	}
	// Appending to nil (or to the short dropped line) allocates the
	// result without clearing it first, as slices.Grow would: on a stream
	// followed closely, that clearing was a fifth of the cost.
	i := int(since % int64(r.limit))
	first := min(n, len(r.buf)-i)
	out = append(out, r.buf[i:i+first]...)
	if first < n { // it wraps: a second piece, once per turn of the ring
		out = append(out, r.buf[:n-first]...)
	}
	return out, r.end
}

// all returns everything kept, and whether anything was dropped.
func (r *outputRing) all() ([]byte, bool) {
	out, _ := r.read(0)
	if out == nil {
		out = []byte{}
	}
	return out, r.start() > 0
}

// droppedLine says that n bytes of output were dropped.
func droppedLine(n int64) []byte {
	return []byte("[... " + strconv.FormatInt(n, 10) + " bytes of earlier output dropped ...]\n")
}

// sortProcesses orders procs by the time key returns, then by ID.
func sortProcesses(procs []*Process, key func(*Process) time.Time) {
	slices.SortFunc(procs, func(a, b *Process) int {
		if c := key(a).Compare(key(b)); c != 0 {
			return c
		}
		return cmpID(a.id, b.id)
	})
}

// cmpID orders process IDs by their number.
func cmpID(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
