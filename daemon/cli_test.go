package daemon_test

import (
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/internal/testenv"
)

// cliDaemon is the built CLI's HTTP daemon, running as a process of its
// own: its memory can be read apart from its clients', and it can be
// killed.
type cliDaemon struct {
	cmd    *exec.Cmd
	root   string
	port   int
	log    testenv.Buffer
	exited chan struct{} // closed once the process has ended
}

// startCLIDaemon starts `agent-backend daemon` on a fresh workspace and a
// free loopback port with args, and waits until /health answers. It is
// stopped (SIGTERM) when tb ends.
func startCLIDaemon(tb testing.TB, args ...string) *cliDaemon {
	tb.Helper()
	return startCLIDaemonAt(tb, tb.TempDir(), freePort(tb), nil, args...)
}

// startCLIDaemonAt is startCLIDaemon on the workspace root and port given,
// run as command prefix (such as setpriv) says.
func startCLIDaemonAt(tb testing.TB, root string, port int, prefix []string, args ...string) *cliDaemon {
	tb.Helper()
	p := &cliDaemon{root: root, port: port, exited: make(chan struct{})}
	args = append([]string{testenv.BuildCLI(tb), "daemon", "--rootDir", p.root, "--port", strconv.Itoa(p.port), "--isolation", "none",
		"--ssh-host-key", filepath.Join(tb.TempDir(), "key")}, args...)
	args = append(prefix, args...)
	p.cmd = exec.Command(args[0], args[1:]...)
	p.cmd.Stderr = &p.log
	require.NoError(tb, p.cmd.Start())
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	tb.Cleanup(p.stop)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/health", p.port))
		if err == nil {
			resp.Body.Close()
			return p
		}
		select {
		case <-p.exited:
			tb.Fatalf("the daemon exited: %s", p.log.String())
		default:
		}
		require.True(tb, time.Now().Before(deadline), "daemon not up: %v\n%s", err, p.log.String())
	}
}

// stop stops the daemon (SIGTERM) and waits for it.
func (p *cliDaemon) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.exited
}

// kill kills the daemon (SIGKILL) and waits for it.
func (p *cliDaemon) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// remote returns a RemoteBackend on the daemon's workspace, closed when tb
// ends.
func (p *cliDaemon) remote(tb testing.TB, cfg ab.RemoteConfig) *ab.RemoteBackend {
	tb.Helper()
	cfg.Host, cfg.Port, cfg.RootDir, cfg.InsecureIgnoreHostKey = "127.0.0.1", p.port, p.root, true
	b, err := ab.NewRemote(cfg)
	require.NoError(tb, err)
	tb.Cleanup(func() { b.Close() })
	return b
}
