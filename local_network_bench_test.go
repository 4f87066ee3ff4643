//go:build linux

package agentbackend_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/internal/netproxy"
	"github.com/agentbackend/agentbackend/internal/nettest"
	"github.com/agentbackend/agentbackend/internal/testenv"
)

// originProcess is what TestNetworkOriginProcess tells the benchmark.
type originProcess struct {
	Port  int    `json:"port"`
	CAPEM []byte `json:"ca"`
}

// TestNetworkOriginProcess is not a test: run by
// BenchmarkLocalNetworkDownload as a process of its own, it serves an
// Origin until its standard input ends, so that the server competes with
// the proxy for the CPU no more than a remote server would.
func TestNetworkOriginProcess(t *testing.T) {
	if os.Getenv("AGENTBE_ORIGIN_PROCESS") == "" {
		t.Skip("the server process of BenchmarkLocalNetworkDownload")
	}
	o := nettest.NewOrigin(t, "allowed.test")
	if err := json.NewEncoder(os.Stdout).Encode(originProcess{Port: o.Port(true), CAPEM: o.CAPEM}); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// startOrigin runs TestNetworkOriginProcess and returns what it serves.
func startOrigin(b *testing.B) originProcess {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestNetworkOriginProcess$")
	cmd.Env = append(os.Environ(), "AGENTBE_ORIGIN_PROCESS=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	var o originProcess
	if err := json.NewDecoder(bufio.NewReader(stdout)).Decode(&o); err != nil {
		b.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return o
}

// BenchmarkLocalNetworkDownload downloads 64 MiB over HTTPS with curl in
// the bubblewrap sandbox from a server on this host (another process, as
// a remote server would be): raw with the host's network (NetworkHost,
// straight to the server), sdk through the filtering proxy of an
// allow-list (a CONNECT tunnel). The target: sdk within 1.5x of raw.
func BenchmarkLocalNetworkDownload(b *testing.B) {
	testenv.NeedBwrap(b)
	if err := netproxy.CanListenIn(); err != nil {
		testenv.Need(b, "netproxy", false, err.Error())
	}
	testenv.NeedCommand(b, "netproxy", "curl")
	o := startOrigin(b)
	lo := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	b.Cleanup(netproxy.SetTestHosts(map[string][]netip.Addr{"allowed.test": lo}))
	const size = 64 << 20
	url := fmt.Sprintf("https://allowed.test:%d/bytes/%d", o.Port, size)
	backend := func(n ab.Network) *ab.LocalBackend {
		lb, err := ab.NewLocal(ab.LocalConfig{RootDir: b.TempDir(), Isolation: ab.IsolationBwrap, Network: n})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { lb.Close() })
		if err := os.WriteFile(filepath.Join(lb.RootDir(), "ca.pem"), o.CAPEM, 0o644); err != nil {
			b.Fatal(err)
		}
		return lb
	}
	download := func(b *testing.B, lb *ab.LocalBackend, command string) {
		b.SetBytes(size)
		for b.Loop() {
			res, err := lb.Exec(context.Background(), command, nil)
			if err != nil {
				b.Fatal(err)
			}
			if string(res.Stdout) != fmt.Sprint(size) {
				b.Fatalf("downloaded %s bytes", res.Stdout)
			}
		}
	}
	const curl = "curl -sS --cacert ca.pem -o /dev/null -w '%{size_download}' "
	b.Run("raw", func(b *testing.B) {
		download(b, backend(ab.NetworkHost), fmt.Sprintf("%s--resolve allowed.test:%d:127.0.0.1 %s", curl, o.Port, url))
	})
	b.Run("sdk", func(b *testing.B) {
		download(b, backend(ab.NetworkAllow(fmt.Sprintf("allowed.test:%d", o.Port), fmt.Sprintf("127.0.0.1:%d", o.Port))), curl+url)
	})
}
