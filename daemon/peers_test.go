package daemon_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/agentbackend/agentbackend/internal/testenv"
)

// The reference implementation, agent-backend 0.13.2 from npm, is the
// "agent-backend-ts" part of testenv: tests that need it skip without it,
// and fail when AGENTBE_REQUIRE names it. It is found in the node_modules
// directory AGENTBE_NPM_PEERS_DIR (default /tmp/peers/node_modules), with
// node on PATH. CI: `npm install --prefix /tmp/peers agent-backend@0.13.2`.
const peerPart = "agent-backend-ts"

// npmPeers returns the node_modules directory holding agent-backend.
func npmPeers(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("AGENTBE_NPM_PEERS_DIR")
	if dir == "" {
		dir = "/tmp/peers/node_modules"
	}
	_, err := os.Stat(filepath.Join(dir, "agent-backend", "package.json"))
	testenv.Need(t, peerPart, err == nil, "agent-backend not installed in "+dir+
		" (npm install --prefix /tmp/peers agent-backend@0.13.2, or set AGENTBE_NPM_PEERS_DIR)")
	testenv.NeedCommand(t, peerPart, "node")
	return dir
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// refDaemon is a running reference daemon.
type refDaemon struct {
	root    string
	port    int
	hostKey ssh.PublicKey
}

// startRefDaemon runs the reference daemon on 127.0.0.1 (it listens on
// every interface; nothing but this test talks to it) with its own host key
// file, and stops it when the test ends.
func startRefDaemon(t testing.TB, token string) *refDaemon {
	t.Helper()
	modules := npmPeers(t)
	root, keyPath := t.TempDir(), filepath.Join(t.TempDir(), "host_key")
	port := freePort(t)
	var log bytes.Buffer
	cmd := exec.Command("node", filepath.Join(modules, "agent-backend", "bin", "agent-backend.js"), "daemon",
		"--rootDir", root, "--port", strconv.Itoa(port), "--auth-token", token, "--ssh-host-key", keyPath,
		"--isolation", "none")
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/health")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reference daemon did not become healthy: %v\n%s", err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	data, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatalf("reference host key: %v\n%s", err, log.String())
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		t.Fatalf("reference host key: %v", err)
	}
	return &refDaemon{root: root, port: port, hostKey: signer.PublicKey()}
}

// runNode runs a Node script with a deadline and returns its stdout.
func runNode(t testing.TB, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %v: %v\n%s", args, err, stderr.String())
	}
	return out
}
