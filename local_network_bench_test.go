//go:build linux

package agentbackend_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/internal/netproxy"
	"github.com/agentbackend/agentbackend/internal/nettest"
	"github.com/agentbackend/agentbackend/internal/testenv"
)

// BenchmarkLocalNetworkDownload downloads 64 MiB over HTTPS with curl in
// the bubblewrap sandbox from a server on this host: raw with the host's
// network (NetworkHost, straight to the server), sdk through the filtering
// proxy of an allow-list (a CONNECT tunnel). The target: sdk within 1.5x
// of raw.
func BenchmarkLocalNetworkDownload(b *testing.B) {
	testenv.NeedBwrap(b)
	if err := netproxy.CanListenIn(); err != nil {
		testenv.Need(b, "netproxy", false, err.Error())
	}
	testenv.NeedCommand(b, "netproxy", "curl")
	o := nettest.NewOrigin(b, "allowed.test")
	lo := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	b.Cleanup(netproxy.SetTestHosts(map[string][]netip.Addr{"allowed.test": lo}))
	port := o.Port(true)
	const size = 64 << 20
	url := fmt.Sprintf("https://allowed.test:%d/bytes/%d", port, size)
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
		download(b, backend(ab.NetworkHost), fmt.Sprintf("%s--resolve allowed.test:%d:127.0.0.1 %s", curl, port, url))
	})
	b.Run("sdk", func(b *testing.B) {
		download(b, backend(ab.NetworkAllow(fmt.Sprintf("allowed.test:%d", port), fmt.Sprintf("127.0.0.1:%d", port))), curl+url)
	})
}
