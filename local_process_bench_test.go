//go:build unix

package agentbackend

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"testing"
)

// BenchmarkProcessStartWait: a background process started and waited for
// (sdk) beside Exec of the same command (raw), on Local without sandbox.
// Both spawn `bash -c true` in its own process group; the background path
// adds the stdin pipe, the output buffers, the listing and the goroutine
// that waits. Target: ≤ 1.1x.
func BenchmarkProcessStartWait(b *testing.B) {
	_, lb := localBenchWorkspace(b, LocalConfig{})
	ctx := context.Background()
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			if _, err := lb.Exec(ctx, "true", nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sdk", func(b *testing.B) {
		for b.Loop() {
			p, err := lb.Start(ctx, "true", nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := p.Wait(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// processOutputBytes is what the command of BenchmarkProcessOutput writes.
const processOutputBytes = 256 << 20

// BenchmarkProcessOutput: 256 MiB of standard output followed through
// Process.Output (sdk), beside the floor of moving those bytes out of a
// pipe at all (raw): the same shell command run with os/exec, its output
// pipe read in 32 KiB reads (the size the SDK's copier uses) and
// discarded. Exec is not the baseline: it keeps the first MaxOutputLength
// bytes, which is its own cost, not a floor. The sdk reader waits on
// Changed and reads whatever is new, as a client following a dev server's
// log would; it is fast enough that little or nothing is dropped (the
// dropped-B/op metric says how much was). Target: ≥ 500 MB/s.
func BenchmarkProcessOutput(b *testing.B) {
	_, lb := localBenchWorkspace(b, LocalConfig{})
	command := "head -c " + strconv.Itoa(processOutputBytes) + " /dev/zero"
	b.Run("raw", func(b *testing.B) {
		b.SetBytes(processOutputBytes)
		buf := make([]byte, 32<<10)
		for b.Loop() {
			cmd := exec.Command(lb.shell, "-c", command)
			out, err := cmd.StdoutPipe()
			if err != nil {
				b.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			n := 0
			for {
				m, err := out.Read(buf)
				n += m
				if err != nil {
					break
				}
			}
			if err := cmd.Wait(); err != nil || n != processOutputBytes {
				b.Fatalf("read %d bytes: %v", n, err)
			}
		}
	})
	b.Run("sdk", func(b *testing.B) {
		followOutput(b, lb, command, func(p *Process, next int64) ([]byte, int64, bool) { return p.Output(next) })
	})
	// The same reader with AppendOutput into one reused buffer: no
	// allocation per read.
	b.Run("sdk-append", func(b *testing.B) {
		buf := make([]byte, 0, DefaultProcessOutputLimit+64)
		followOutput(b, lb, command, func(p *Process, next int64) ([]byte, int64, bool) {
			chunk, n, done := p.AppendOutput(buf[:0], next)
			buf = chunk
			return chunk, n, done
		})
	})
}

// followOutput runs command b.N times, following its standard output with
// read until it ends, and reports how much was dropped.
func followOutput(b *testing.B, lb *LocalBackend, command string, read func(p *Process, next int64) ([]byte, int64, bool)) {
	ctx := context.Background()
	b.SetBytes(processOutputBytes)
	var dropped int64
	for b.Loop() {
		p, err := lb.Start(ctx, command, nil)
		if err != nil {
			b.Fatal(err)
		}
		var next int64
		for {
			changed := p.Changed()
			chunk, n, done := read(p, next)
			if len(chunk) > 0 && chunk[0] == '[' { // the output is zeros: this is the dropped line
				var missed int64
				fmt.Sscanf(string(chunk), "[... %d bytes", &missed)
				dropped += missed
			}
			next = n
			if done {
				break
			}
			if len(chunk) == 0 {
				<-changed
			}
		}
		if _, err := p.Wait(ctx); err != nil || next != processOutputBytes {
			b.Fatalf("followed %d bytes: %v", next, err)
		}
	}
	b.ReportMetric(float64(dropped)/float64(b.N), "dropped-B/op")
}
