//go:build linux

package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
)

// procStatus reads the fields of /proc/<pid>/status (kB values in bytes).
func (p *cliDaemon) procStatus(tb testing.TB) map[string]int64 {
	tb.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	require.NoError(tb, err)
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(value)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		if len(fields) > 1 && fields[1] == "kB" {
			n <<= 10
		}
		out[name] = n
	}
	return out
}

func (p *cliDaemon) rss(tb testing.TB) int64 { return p.procStatus(tb)["VmRSS"] }

// resetPeak starts a new peak RSS measurement (VmHWM).
func (p *cliDaemon) resetPeak(tb testing.TB) {
	tb.Helper()
	require.NoError(tb, os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.cmd.Process.Pid), []byte("5"), 0))
}

// raiseNoFile raises this process's open-file limit for n connections
// (Go raises the soft limit to the hard one at start; this checks there is
// room), restoring nothing: the benchmark process ends after it.
func raiseNoFile(tb testing.TB, n int) {
	tb.Helper()
	var lim syscall.Rlimit
	require.NoError(tb, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	want := uint64(2*n + 256)
	if lim.Cur >= want {
		return
	}
	lim.Cur = min(want, lim.Max)
	require.NoError(tb, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim))
	if lim.Cur < want {
		tb.Skipf("RLIMIT_NOFILE hard limit %d is too low for %d clients", lim.Max, n)
	}
}

// BenchmarkDaemonMemory measures the daemon's resident memory (a separate
// process, the built CLI) as N Remote clients, each on its own connection
// over loopback, connect and sit idle, then each write and read 1 MiB at
// once, then leave:
//
//   - idle-KB/client: RSS growth per connected idle client (its SFTP
//     session open), over the daemon's idle RSS;
//   - busy-peak-MB/client: peak RSS growth per client while all transfer;
//   - after-MB: RSS over the idle size once every client has left (the
//     first sample within 100 MB, or the last after 60 s), and
//     returned-s how long that took;
//   - threads: the daemon's threads at the busy peak.
func BenchmarkDaemonMemory(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			raiseNoFile(b, n)
			for b.Loop() {
				measureDaemonMemory(b, n)
			}
		})
	}
}

func measureDaemonMemory(b *testing.B, n int) {
	d := startCLIDaemon(b)
	ctx := context.Background()
	time.Sleep(time.Second) // let the runtime settle after start
	base := d.rss(b)

	clients := make([]*ab.RemoteBackend, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range clients {
		rb, err := ab.NewRemote(ab.RemoteConfig{Host: "127.0.0.1", Port: d.port, RootDir: d.root,
			InsecureIgnoreHostKey: true, KeepaliveInterval: -1})
		require.NoError(b, err)
		clients[i] = rb
		wg.Go(func() {
			if err := rb.Connect(ctx); err != nil {
				errs <- err
				return
			}
			_, err := rb.Exists(ctx, "x") // the SFTP session open
			errs <- err
		})
	}
	wg.Wait()
	defer func() {
		for _, rb := range clients {
			rb.Close()
		}
	}()
	for range n {
		require.NoError(b, <-errs)
	}
	idle := d.rss(b)

	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	d.resetPeak(b)
	start := make(chan struct{})
	for i, rb := range clients {
		wg.Go(func() {
			<-start
			name := fmt.Sprintf("c%d.bin", i)
			if err := rb.Write(ctx, name, payload); err != nil {
				errs <- err
				return
			}
			got, err := rb.Read(ctx, name)
			if err == nil && len(got) != len(payload) {
				err = fmt.Errorf("read %d bytes back", len(got))
			}
			errs <- err
		})
	}
	var threads int64
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			threads = max(threads, d.procStatus(b)["Threads"])
			select {
			case <-time.After(50 * time.Millisecond):
			case <-stop:
				return
			}
		}
	}()
	close(start)
	wg.Wait()
	close(stop)
	<-sampled
	for range n {
		require.NoError(b, <-errs)
	}
	peak := d.procStatus(b)["VmHWM"]

	for _, rb := range clients {
		rb.Close()
	}
	left := time.Now()
	after := d.rss(b)
	for time.Since(left) < 60*time.Second && after > base+100<<20 {
		time.Sleep(500 * time.Millisecond)
		after = d.rss(b)
	}
	returned := time.Since(left)

	b.ReportMetric(float64(base)/(1<<20), "base-MB")
	b.ReportMetric(float64(idle-base)/float64(n)/1024, "idle-KB/client")
	b.ReportMetric(float64(peak-base)/float64(n)/(1<<20), "busy-peak-MB/client")
	b.ReportMetric(float64(peak)/(1<<20), "peak-MB")
	b.ReportMetric(float64(after-base)/(1<<20), "after-MB")
	b.ReportMetric(returned.Seconds(), "returned-s")
	b.ReportMetric(float64(threads), "threads")
}
