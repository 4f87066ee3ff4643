package agentbackend_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/daemon"
)

// A daemon on 127.0.0.1 serving a temporary workspace, and a RemoteBackend
// on it with the daemon's host key pinned.
func ExampleNewRemote() {
	dir, _ := osMkdirTemp()
	defer os.RemoveAll(dir)
	d, err := daemon.New(daemon.Config{RootDir: dir, AuthToken: "s3cret", HostKeyPath: dir + "/.host_key",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx, ln) }()
	defer func() { stop(); <-served }()

	rb, err := ab.NewRemote(ab.RemoteConfig{
		Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port,
		RootDir: d.RootDir(), AuthToken: "s3cret", HostKey: d.HostKey(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rb.Close()

	_ = rb.Write(ctx, "hello.txt", []byte("hello from afar\n"))
	res, _ := rb.Exec(ctx, "cat hello.txt", nil)
	fmt.Print(string(res.Stdout))
	_, err = rb.Read(ctx, "../etc/passwd")
	fmt.Println(ab.ErrorCode(err))
	// Output:
	// hello from afar
	// PATH_ESCAPE_ATTEMPT
}

func osMkdirTemp() (string, error) { return os.MkdirTemp("", "agentbe-example-") }
