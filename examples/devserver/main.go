// Command devserver shows what an agent does with a dev server: start it in
// the background, follow its output until it says it is ready, send it a
// request, read what it logged, and kill it.
//
//	go run ./examples/devserver
//
// The server must exist on any machine with Go, so it is this program
// itself: copied into the workspace and started there with -serve, it
// serves HTTP on a free port of 127.0.0.1 and logs each request. With
// bubblewrap installed it runs sandboxed, and the sandbox has no network of
// the host's by default: this workspace opts into the host's network
// (NetworkHost), so that 127.0.0.1 is the same on both sides.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"time"

	ab "github.com/agentbackend/agentbackend"
)

func main() {
	serve := flag.Bool("serve", false, "run the dev server (what the example starts in the background)")
	flag.Parse()
	if *serve {
		runServer()
		return
	}
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

// runServer is the dev server: it announces its address on stdout once it
// listens, and logs each request on stderr, as dev servers do.
func runServer() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("dev server listening on http://%s\n", ln.Addr())
	logger := log.New(os.Stderr, "", 0)
	log.Fatal(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logger.Printf("%s %s", r.Method, r.URL.Path)
		fmt.Fprintf(w, "hello from the dev server, you asked for %s\n", r.URL.Path)
	})))
}

var listening = regexp.MustCompile(`listening on (http://\S+)`)

func run() error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "agentbackend-devserver-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// NetworkHost: the server must be reachable from this process. It also
	// lets the command reach every service of the host; leave it out for
	// an agent's commands that need no network.
	ws, err := ab.NewLocal(ab.LocalConfig{RootDir: dir, Network: ab.NetworkHost})
	if err != nil {
		return err
	}
	defer ws.Close() // kills the server too, should anything below fail
	fmt.Printf("workspace %s (isolation: %s)\n", ws.RootDir(), ws.Isolation())

	// The "project": a dev server binary in the workspace.
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := copyFile(self, filepath.Join(ws.RootDir(), "bin", "devserver")); err != nil {
		return err
	}

	// Start it in the background; Start returns as soon as it runs.
	p, err := ws.Start(ctx, "./bin/devserver -serve", nil)
	if err != nil {
		return err
	}
	fmt.Printf("started %s: %s\n", p.ID(), p.Command())

	// Follow its output until it says where it listens.
	url, err := waitReady(p, 30*time.Second)
	if err != nil {
		return err
	}
	fmt.Printf("ready at %s\n", url)

	// Use it.
	resp, err := http.Get(url + "/index.html")
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	fmt.Printf("GET /index.html: %s %s", resp.Status, body)

	// What it logged. The request's log line is written before the
	// response; give the copy from the process's pipe a moment to take it
	// in.
	var log []byte
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		changed := p.Changed()
		if log, _, _ = p.ErrorOutput(0); len(log) > 0 {
			break
		}
		select {
		case <-changed:
		case <-time.After(100 * time.Millisecond):
		}
	}
	fmt.Printf("its log:\n%s", log)

	// Stop it: the whole process group goes.
	if err := p.Kill(); err != nil {
		return err
	}
	_, err = p.Wait(ctx)
	fmt.Printf("after Kill: %s (Wait: %v)\n", p.Info(), err)
	return nil
}

// waitReady reads p's standard output as it comes until the ready line
// appears, the process ends, or the time is up.
func waitReady(p *ab.Process, timeout time.Duration) (string, error) {
	deadline := time.After(timeout)
	for {
		changed := p.Changed()
		out, _, done := p.Output(0) // from the start: the line may come in pieces
		if m := listening.FindSubmatch(out); m != nil {
			return string(m[1]), nil
		}
		if done {
			res, err := p.Wait(context.Background())
			return "", fmt.Errorf("the dev server ended before it was ready: %v (%q)", err, res.Stderr)
		}
		select {
		case <-changed:
		case <-deadline:
			return "", fmt.Errorf("the dev server is not ready after %v", timeout)
		}
	}
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o755)
}
