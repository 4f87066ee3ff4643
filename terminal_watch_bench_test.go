//go:build linux

package agentbackend

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/fsnotify/fsnotify"
)

// BenchmarkTerminalRoundTrip: a line typed into a terminal and its echo
// read back, through a Process on a terminal (sdk: Stdin, then Changed and
// Output) beside the same through a raw creack/pty pair (raw: write to
// the master, read it). Both run cat on the host, its output discarded:
// the echo is the terminal's own. Target: ≤ 1.5x.
func BenchmarkTerminalRoundTrip(b *testing.B) {
	line := []byte("hello, terminal\r")
	echo := []byte("hello, terminal\r\n")
	b.Run("raw", func(b *testing.B) {
		cmd := exec.Command("/bin/sh", "-c", "exec cat >/dev/null")
		ptmx, err := pty.Start(cmd)
		if err != nil {
			b.Fatal(err)
		}
		defer func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			ptmx.Close()
		}()
		buf := make([]byte, 4096)
		var seen []byte
		for b.Loop() {
			if _, err := ptmx.Write(line); err != nil {
				b.Fatal(err)
			}
			for !bytes.Contains(seen, echo) {
				n, err := ptmx.Read(buf)
				if err != nil {
					b.Fatal(err)
				}
				seen = append(seen, buf[:n]...)
			}
			seen = seen[bytes.Index(seen, echo)+len(echo):]
		}
	})
	b.Run("sdk", func(b *testing.B) {
		_, lb := localBenchWorkspace(b, LocalConfig{})
		p, err := lb.Start(context.Background(), "exec cat >/dev/null", &ExecOptions{Terminal: &Terminal{}})
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = p.Kill(); _, _ = p.Wait(context.Background()) }()
		var next int64
		var seen []byte
		for b.Loop() {
			if _, err := p.Stdin().Write(line); err != nil {
				b.Fatal(err)
			}
			for !bytes.Contains(seen, echo) {
				changed := p.Changed()
				var chunk []byte
				chunk, next, _ = p.AppendOutput(seen, next)
				if len(chunk) == len(seen) {
					<-changed
				}
				seen = chunk
			}
			seen = seen[bytes.Index(seen, echo)+len(echo):]
		}
	})
}

// BenchmarkWatchLatency: a file created in a watched directory, and the
// time until its event is delivered: through LocalBackend.Watch (sdk)
// beside a raw fsnotify watcher of the same directory (raw). The
// median-ns metric is the median latency (target: under 5 ms on Local);
// ns/op adds the write itself.
func BenchmarkWatchLatency(b *testing.B) {
	run := func(b *testing.B, dir string, next func(name string)) {
		var lat []time.Duration
		i := 0
		for b.Loop() {
			name := fmt.Sprintf("f%d", i)
			i++
			start := time.Now()
			if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
				b.Fatal(err)
			}
			next(name)
			lat = append(lat, time.Since(start))
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "median-ns")
	}
	b.Run("raw", func(b *testing.B) {
		dir := b.TempDir()
		w, err := fsnotify.NewWatcher()
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		if err := w.Add(dir); err != nil {
			b.Fatal(err)
		}
		run(b, dir, func(name string) {
			for ev := range w.Events {
				if filepath.Base(ev.Name) == name && ev.Has(fsnotify.Create) {
					return
				}
			}
		})
	})
	b.Run("sdk", func(b *testing.B) {
		_, lb := localBenchWorkspace(b, LocalConfig{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		events, err := lb.Watch(ctx, "dir", nil)
		if err != nil {
			b.Fatal(err)
		}
		dir := filepath.Join(lb.RootDir(), "dir")
		run(b, dir, func(name string) {
			for ev := range events {
				if ev.Path == "dir/"+name && ev.Op == WatchCreate {
					return
				}
			}
		})
	})
}
