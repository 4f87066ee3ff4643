//go:build unix

package agentbackend_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/crypto/ssh"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/agentmcp"
	"github.com/agentbackend/agentbackend/daemon"
)

// Remote benchmarks: a daemon on 127.0.0.1 and a RemoteBackend on the same
// workspace. raw is the same call on a LocalBackend of that workspace (what
// the daemon does underneath), sdk the call through the wire.

// benchRemote starts a daemon on a fresh workspace and returns a connected
// RemoteBackend and a LocalBackend on the same directory.
func benchRemote(b *testing.B) (*ab.RemoteBackend, *ab.LocalBackend) {
	b.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(key)
	d, err := daemon.New(daemon.Config{RootDir: b.TempDir(), HostKey: signer, Isolation: ab.IsolationNone,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Serve(ctx, ln); close(done) }()
	rb, err := ab.NewRemote(ab.RemoteConfig{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port,
		RootDir: d.RootDir(), HostKey: d.HostKey()})
	if err != nil {
		b.Fatal(err)
	}
	if err := rb.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	lb, err := ab.NewLocal(ab.LocalConfig{RootDir: d.RootDir(), Isolation: ab.IsolationNone})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		rb.Close()
		lb.Close()
		cancel()
		<-done
		d.Close()
	})
	return rb, lb
}

// benchPair runs op on the local backend as raw and on the remote one as
// sdk.
func benchPair(b *testing.B, size int, op func(b *testing.B, fb ab.FileBackend)) {
	rb, lb := benchRemote(b)
	for _, c := range []struct {
		name string
		fb   ab.FileBackend
	}{{"raw", lb}, {"sdk", rb}} {
		b.Run(c.name, func(b *testing.B) {
			if size > 0 {
				b.SetBytes(int64(size))
			}
			b.ReportAllocs()
			op(b, c.fb)
		})
	}
}

func BenchmarkRemoteRead4K(b *testing.B) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 256)
	benchPair(b, 0, func(b *testing.B, fb ab.FileBackend) {
		ctx := context.Background()
		if err := fb.Write(ctx, "dir/file.bin", data); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := fb.Read(ctx, "dir/file.bin"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkRemoteWrite4K(b *testing.B) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 256)
	benchPair(b, 0, func(b *testing.B, fb ab.FileBackend) {
		ctx := context.Background()
		for b.Loop() {
			if err := fb.Write(ctx, "dir/file.bin", data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkRemoteExec(b *testing.B) {
	benchPair(b, 0, func(b *testing.B, fb ab.FileBackend) {
		ctx := context.Background()
		for b.Loop() {
			if _, err := fb.Exec(ctx, "true", nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

const size64M = 64 << 20

func BenchmarkRemoteRead64M(b *testing.B) {
	data := bytes.Repeat([]byte("0123456789abcdef"), size64M/16)
	benchPair(b, size64M, func(b *testing.B, fb ab.FileBackend) {
		ctx := context.Background()
		if err := fb.Write(ctx, "big.bin", data); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if got, err := fb.Read(ctx, "big.bin"); err != nil || len(got) != size64M {
				b.Fatal(len(got), err)
			}
		}
	})
}

func BenchmarkRemoteWrite64M(b *testing.B) {
	data := bytes.Repeat([]byte("0123456789abcdef"), size64M/16)
	benchPair(b, size64M, func(b *testing.B, fb ab.FileBackend) {
		ctx := context.Background()
		for b.Loop() {
			if err := fb.Write(ctx, "big.bin", data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRemoteMCPReadTextFile: the MCP tool read_text_file on a 4 KiB
// file. raw is the tool served in this process (agentmcp.Connect on the
// local workspace, an in-memory transport); sdk goes over HTTP to the
// daemon's POST /mcp (agentmcp.ConnectRemote).
func BenchmarkRemoteMCPReadTextFile(b *testing.B) {
	rb, lb := benchRemote(b)
	ctx := context.Background()
	if err := lb.Write(ctx, "dir/file.txt", bytes.Repeat([]byte("0123456789abcde\n"), 256)); err != nil {
		b.Fatal(err)
	}
	local, err := agentmcp.Connect(ctx, lb, nil)
	if err != nil {
		b.Fatal(err)
	}
	remote, err := agentmcp.ConnectRemote(ctx, rb, "")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		cs   *mcp.ClientSession
	}{{"raw", local}, {"sdk", remote}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			params := &mcp.CallToolParams{Name: "read_text_file", Arguments: map[string]any{"path": "dir/file.txt"}}
			for b.Loop() {
				res, err := c.cs.CallTool(ctx, params)
				if err != nil || res.IsError {
					b.Fatal(res, err)
				}
			}
		})
	}
}
