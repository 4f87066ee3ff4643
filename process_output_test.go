package agentbackend

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// The ring against a plain record of everything written: whatever the
// write sizes, a read returns the dropped line (when the reader is behind)
// and then exactly the newest bytes.
func TestOutputRing(t *testing.T) {
	for _, limit := range []int{1, 7, 64, 1000} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			r := outputRing{limit: limit}
			var all []byte
			rng := rand.New(rand.NewPCG(1, uint64(limit)))
			for range 300 {
				n := rng.IntN(3 * limit)
				chunk := make([]byte, n)
				for i := range chunk {
					chunk[i] = byte('a' + rng.IntN(26))
				}
				r.write(chunk)
				all = append(all, chunk...)
				if r.end != int64(len(all)) || len(r.buf) > limit {
					t.Fatalf("end %d (want %d), buffer %d > limit", r.end, len(all), len(r.buf))
				}
				start := max(0, len(all)-limit)
				since := int64(rng.IntN(len(all) + 2))
				got, next := r.read(since)
				want := all[min(int(since), len(all)):]
				if int(since) < start {
					want = append(droppedLine(int64(start)-since), all[start:]...)
				}
				if next != int64(len(all)) || !bytes.Equal(got, want) {
					t.Fatalf("read(%d) of %d bytes = %q, %d; want %q", since, len(all), got, next, want)
				}
				if app, next := r.appendTo([]byte("pre:"), since); next != int64(len(all)) || string(app) != "pre:"+string(want) {
					t.Fatalf("appendTo(pre:, %d) = %q, %d; want pre:%q", since, app, next, want)
				}
			}
			kept, cut := r.all()
			if cut != (len(all) > limit) || !bytes.HasSuffix(kept, all[max(0, len(all)-limit):]) {
				t.Errorf("all() = %q, %v", kept, cut)
			}
		})
	}
}

func TestOutputRingGrowsWithTheOutput(t *testing.T) {
	r := outputRing{limit: 1 << 20}
	r.write([]byte("hello\n"))
	if cap(r.buf) >= 1<<20 {
		t.Errorf("a 6-byte output took a %d-byte buffer", cap(r.buf))
	}
	if got, next := r.read(0); string(got) != "hello\n" || next != 6 {
		t.Errorf("read = %q %d", got, next)
	}
	if got, next := r.read(6); got != nil || next != 6 {
		t.Errorf("read at the end = %q %d", got, next)
	}
	if out, cut := (&outputRing{limit: 8}).all(); out == nil || len(out) != 0 || cut {
		t.Errorf("empty all() = %#v %v", out, cut)
	}
}
