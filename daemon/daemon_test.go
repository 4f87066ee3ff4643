package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/agentbackend/agentbackend/agentmcp"
	"github.com/agentbackend/agentbackend/daemon"
	"github.com/agentbackend/agentbackend/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		testenv.RemoveCLI()
		os.Exit(code)
	}))
}

func get(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func TestHealth(t *testing.T) {
	defer http.DefaultClient.CloseIdleConnections()
	d, port := startDaemon(t, daemon.Config{AuthToken: "tok"})
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/health", port))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := fmt.Sprintf(`{"status":"ok","version":%q,"referenceVersion":%q,"rootDir":%q,"transports":{"mcp":true,"ssh":false,"ssh-ws":true}}`+"\n",
		agentmcp.Version(), agentmcp.ReferenceVersion, d.RootDir())
	if resp.StatusCode != 200 || string(body) != want {
		t.Errorf("GET /health = %d %s, want 200 %s", resp.StatusCode, body, want)
	}
	_, disabled := startDaemon(t, daemon.Config{DisableSSHWS: true})
	_, h := get(t, fmt.Sprintf("http://127.0.0.1:%d/health", disabled))
	if tr := h["transports"].(map[string]any); tr["ssh-ws"] != false {
		t.Errorf("transports with --disable-ssh-ws: %v", tr)
	}
}

func TestMCPChecks(t *testing.T) {
	defer http.DefaultClient.CloseIdleConnections()
	d, port := startDaemon(t, daemon.Config{AuthToken: "tok"})
	_, staticPort := startDaemon(t, daemon.Config{AuthToken: "tok", ScopePath: "fixed"})
	post := func(port int, headers map[string]string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d/mcp", port), strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	auth := "Bearer tok"
	cases := []struct {
		name    string
		port    int
		headers map[string]string
		status  int
		body    map[string]any
	}{
		{"no token", port, nil, 401, map[string]any{"error": "Unauthorized", "message": "Invalid or missing authentication token"}},
		{"wrong token", port, map[string]string{"Authorization": "Bearer nope"}, 401, nil},
		{"token without Bearer", port, map[string]string{"Authorization": "tok"}, 401, nil},
		{"root mismatch", port, map[string]string{"Authorization": auth, "X-Root-Dir": "/elsewhere"}, 403,
			map[string]any{"error": "Root directory mismatch", "message": "Server is configured for " + d.RootDir() + ", not /elsewhere"}},
		{"scope conflict", staticPort, map[string]string{"Authorization": auth, "X-Scope-Path": "other"}, 400,
			map[string]any{"error": "Scope conflict", "message": "Server was started with static scope 'fixed', but request also specified scope 'other'. Use one or the other, not both."}},
		{"scope traversal", port, map[string]string{"Authorization": auth, "X-Scope-Path": "a/../../b"}, 400,
			map[string]any{"error": "Invalid scope path", "message": "Scope path must not contain path traversal sequences"}},
		{"root undefined is ignored", port, map[string]string{"Authorization": auth, "X-Root-Dir": "undefined"}, 0, nil},
		{"root matches", port, map[string]string{"Authorization": auth, "X-Root-Dir": d.RootDir(), "X-Scope-Path": "/users/a"}, 0, nil},
	}
	for _, c := range cases {
		status, body := post(c.port, c.headers)
		if c.status == 0 {
			switch body["error"] {
			case "Unauthorized", "Root directory mismatch", "Scope conflict", "Invalid scope path":
				t.Errorf("%s: refused with %d %v", c.name, status, body)
			}
			continue
		}
		if status != c.status {
			t.Errorf("%s: status %d (%v), want %d", c.name, status, body, c.status)
		}
		if c.body != nil && fmt.Sprint(body) != fmt.Sprint(c.body) {
			t.Errorf("%s: body %v, want %v", c.name, body, c.body)
		}
	}
}

// TestWSUnauthorized: a missing or wrong token closes the WebSocket with
// 4001 "Unauthorized"; the query parameter and the header both work.
func TestWSUnauthorized(t *testing.T) {
	_, port := startDaemon(t, daemon.Config{AuthToken: "tok"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range []struct {
		url    string
		header http.Header
		ok     bool
	}{
		{"/ssh", nil, false},
		{"/ssh?token=nope", nil, false},
		{"/ssh", http.Header{"Authorization": {"Bearer nope"}}, false},
		{"/ssh?token=tok", nil, true},
		{"/ssh", http.Header{"Authorization": {"Bearer tok"}}, true},
	} {
		ws, _, err := websocket.Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d%s", port, c.url), &websocket.DialOptions{HTTPHeader: c.header})
		if err != nil {
			t.Fatalf("%s: %v", c.url, err)
		}
		if c.ok {
			// The server speaks first: its SSH version line.
			_, msg, err := ws.Read(ctx)
			if err != nil || !strings.HasPrefix(string(msg), "SSH-2.0-") {
				t.Errorf("%s %v: read %q, %v; want the SSH banner", c.url, c.header, msg, err)
			}
			ws.Close(websocket.StatusNormalClosure, "")
			continue
		}
		_, _, err = ws.Read(ctx)
		var ce websocket.CloseError
		if !errorsAs(err, &ce) || ce.Code != 4001 || ce.Reason != "Unauthorized" {
			t.Errorf("%s %v: %v, want close 4001 Unauthorized", c.url, c.header, err)
		}
		ws.CloseNow()
	}
}

// TestHostKeyPersisted: a missing key is generated and saved (0600), the
// next daemon loads the same one, and an unwritable path still works with
// an in-memory key.
func TestHostKeyPersisted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "host")
	d1, err := daemon.New(daemon.Config{RootDir: t.TempDir(), HostKeyPath: path, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer d1.Close()
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("saved key: %v %v", fi, err)
	}
	d2, err := daemon.New(daemon.Config{RootDir: t.TempDir(), HostKeyPath: path, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if string(d1.HostKey().Marshal()) != string(d2.HostKey().Marshal()) {
		t.Error("the second daemon did not load the saved key")
	}
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o644)
	d3, err := daemon.New(daemon.Config{RootDir: t.TempDir(), HostKeyPath: filepath.Join(blocker, "host"), Logger: quietLogger()})
	if err != nil {
		t.Fatalf("unsavable key path: %v", err)
	}
	defer d3.Close()
	if d3.HostKey() == nil {
		t.Error("no in-memory key")
	}
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("junk"), 0o600)
	if _, err := daemon.New(daemon.Config{RootDir: t.TempDir(), HostKeyPath: bad, Logger: quietLogger()}); err == nil {
		t.Error("a corrupt key file was accepted (or overwritten)")
	}
}
