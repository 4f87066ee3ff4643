package daemon_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"

	"golang.org/x/crypto/ssh"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/backendtest"
	"github.com/agentbackend/agentbackend/daemon"
)

// testKey is one host key for every test daemon (generating is cheap, but
// one key keeps the logs readable).
var testKey = func() ssh.Signer {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	s, _ := ssh.NewSignerFromKey(k)
	return s
}()

// startDaemon runs a daemon on 127.0.0.1 for the test and returns it with
// its port.
func startDaemon(t testing.TB, cfg daemon.Config) (*daemon.Daemon, int) {
	t.Helper()
	if cfg.RootDir == "" {
		cfg.RootDir = t.TempDir()
	}
	if cfg.HostKey == nil {
		cfg.HostKey = testKey
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	d, err := daemon.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		d.Close()
	})
	return d, ln.Addr().(*net.TCPAddr).Port
}

// remoteFor returns a RemoteBackend on the daemon's workspace.
func remoteFor(t testing.TB, d *daemon.Daemon, port int, cfg ab.RemoteConfig) *ab.RemoteBackend {
	t.Helper()
	cfg.Host, cfg.Port = "127.0.0.1", port
	if cfg.RootDir == "" {
		cfg.RootDir = d.RootDir()
	}
	if cfg.HostKey == nil && !cfg.InsecureIgnoreHostKey {
		cfg.HostKey = d.HostKey()
	}
	b, err := ab.NewRemote(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestConformanceRemote(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) ab.FileBackend {
		d, port := startDaemon(t, daemon.Config{AuthToken: "secret"})
		return remoteFor(t, d, port, ab.RemoteConfig{AuthToken: "secret"})
	})
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func errorsAs(err error, target any) bool { return errors.As(err, target) }
