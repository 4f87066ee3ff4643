//go:build unix

package agentbackend

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestExecScriptQuoting runs the scripts RemoteBackend sends through a real
// shell: hostile values and directory names arrive as data, never as code.
func TestExecScriptQuoting(t *testing.T) {
	dir := filepath.Join(t.TempDir(), `it's "a" $(dir) `+"`x`; ls")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"A": `'; touch pwned; echo '`,
		"B": "$(touch pwned) `touch pwned` ${HOME}",
		"C": "line one\nline two\n",
		"D": `\' \\ "`,
		"E": "",
	}
	for _, shell := range []string{"/bin/sh", "/bin/bash"} {
		if _, err := os.Stat(shell); err != nil {
			continue
		}
		script := execScript(dir, env, `printf '%s|' "$A" "$B" "$C" "$D" "$E" "$HOME" "$(pwd)"`)
		out, err := exec.Command(shell, "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", shell, err, out)
		}
		want := env["A"] + "|" + env["B"] + "|" + env["C"] + "|" + env["D"] + "||" + dir + "|" + dir + "|"
		if string(out) != want {
			t.Errorf("%s:\n got %q\nwant %q", shell, out, want)
		}
		if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
			t.Fatalf("%s: a value ran as a command", shell)
		}
	}
	// A missing directory stops the script before the command.
	out, err := exec.Command("/bin/sh", "-c", execScript(filepath.Join(dir, "missing"), nil, "echo ran")).CombinedOutput()
	if err == nil || string(out) == "ran\n" {
		t.Errorf("missing cwd: %v %q", err, out)
	}
}

func TestMCPEndpoint(t *testing.T) {
	b, err := NewRemote(RemoteConfig{Host: "::1", Port: 443, RootDir: "/srv/ws/", AuthToken: "t", InsecureIgnoreHostKey: true,
		Headers: map[string]string{"X-Proxy": "p", "authorization": "evil", "X-Scope-Path": "evil"}})
	if err != nil {
		t.Fatal(err)
	}
	url, h, err := b.MCPEndpoint("/users/a/")
	if err != nil || url != "https://[::1]:443/mcp" || h.Get("Authorization") != "Bearer t" || h.Get("X-Root-Dir") != "/srv/ws" ||
		h.Get("X-Scope-Path") != "users/a" || h.Get("X-Proxy") != "p" {
		t.Errorf("MCPEndpoint = %q %v %v", url, h, err)
	}
	if _, _, err := b.MCPEndpoint("a/../.."); ErrorCode(err) != CodePathEscape {
		t.Errorf("escaping scope: %v", err)
	}
}
