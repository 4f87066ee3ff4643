package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

// TestRunHTTP runs the full daemon from the command line and stops it the
// way SIGINT/SIGTERM do (the context), with exit status 0.
func TestRunHTTP(t *testing.T) {
	defer http.DefaultClient.CloseIdleConnections()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"daemon", "--rootDir", dir, "--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--auth-token", "tok",
			"--isolation", "none", "--ssh-host-key", filepath.Join(t.TempDir(), "key")}, nil, nil, &stderr)
	}()
	var health map[string]any
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/health", port))
		if err == nil {
			json.NewDecoder(resp.Body).Decode(&health)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("daemon not up: %v\n%s", err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if health["status"] != "ok" || health["rootDir"] != dir {
		t.Errorf("/health = %v", health)
	}
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/mcp", port), "application/json", bytes.NewReader([]byte("{}")))
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST /mcp without the token: %d", resp.StatusCode)
		}
	}
	http.DefaultClient.CloseIdleConnections()
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}
