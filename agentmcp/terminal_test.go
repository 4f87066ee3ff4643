package agentmcp_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
)

// A model drives a program on a terminal: it starts it with terminal: true,
// types text and keys with send_input and reads the answers, as text.
func TestTerminalToolsThroughASession(t *testing.T) {
	noLeaks(t)
	backends := map[string]ab.FileBackend{
		"local": newLocal(t, ab.LocalConfig{}),
		"scope": scopeOf(t, newLocal(t, ab.LocalConfig{}), "sub"),
	}
	if _, err := exec.LookPath("bwrap"); err == nil {
		backends["bwrap"] = newLocal(t, ab.LocalConfig{Isolation: ab.IsolationBwrap})
	}
	for name, b := range backends {
		t.Run(name, func(t *testing.T) {
			cs := connect(t, b)
			id := shellID(t, call(t, cs, "run_in_background", obj{
				"command":  `printf '\033[1;32mready\033[0m\n'; while read -r line; do echo "you said: $line"; done`,
				"terminal": true, "rows": 30, "cols": 100}))
			r := call(t, cs, "read_output", obj{"shell_id": id, "wait_seconds": 10})
			require.False(t, r.IsError, r.Text)
			assert.Contains(t, r.Text, "--- terminal ---\nready", "colours are not shown as escapes")

			r = call(t, cs, "send_input", obj{"shell_id": id, "text": "hello", "keys": []string{"Enter"}, "wait_seconds": 10})
			require.False(t, r.IsError, r.Text)
			assert.Contains(t, r.Text, "you said: hello")

			r = call(t, cs, "send_input", obj{"shell_id": id, "keys": []string{"Escape-ish"}})
			assert.True(t, r.IsError)
			assert.Contains(t, r.Text, "unknown key")

			r = call(t, cs, "send_input", obj{"shell_id": id, "keys": []string{"Ctrl-C"}, "wait_seconds": 10})
			require.False(t, r.IsError, r.Text)
			out := ""
			if strings.HasPrefix(r.Text, id+" running") {
				out = readUntilEnded(t, cs, id)
			}
			assert.True(t, strings.Contains(r.Text+out, "with code 130"), "Ctrl-C did not end it: %q %q", r.Text, out)

			r = call(t, cs, "send_input", obj{"shell_id": "bg_999999", "text": "x"})
			assert.True(t, r.IsError)
		})
	}
}
