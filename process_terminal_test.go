package agentbackend

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestTerminalKey(t *testing.T) {
	for name, want := range map[string]string{
		"Enter": "\r", "enter": "\r", "Tab": "\t", "Ctrl-C": "\x03", "ctrl+c": "\x03", "C-d": "\x04", "^Z": "\x1a",
		"Up": "\x1b[A", "Left": "\x1b[D", "Page-Down": "\x1b[6~", "Ctrl-[": "\x1b", "F5": "\x1b[15~", "Escape": "\x1b",
	} {
		got, ok := TerminalKey(name)
		assert.True(t, ok, name)
		assert.Equal(t, want, string(got), name)
	}
	for _, name := range []string{"", "Ctrl-", "Ctrl-CC", "Ctrl-1", "Hyper", "F13"} {
		_, ok := TerminalKey(name)
		assert.False(t, ok, name)
	}
}

func TestTerminalText(t *testing.T) {
	for raw, want := range map[string]string{
		"plain\r\nlines\r\n":                 "plain\nlines\n",
		"\x1b[1;32mgreen\x1b[0m text\r\n":    "green text\n",
		"10%\r50%\r100%\r\n":                 "100%\n",
		"abc\b\bX\r\n":                       "aXc\n",
		"\x1b]0;window title\x07prompt$ ":    "prompt$",
		"\x1b(Bcharset\x1b[?2004h\x1b[K end": "charset end",
		"a\tb":                               "a       b",
		"unfinished \x1b[1":                  "unfinished",
		"caf\xc3\xa9 \xe2\x9c\x93\r\n":       "café ✓\n",
		"over\rwritten longer\rOVER\r\n":     "OVERten longer\n",
		"\x1bP dcs string \x1b\\after\r\n":   "after\n",
		"bell\x07 and nul\x00\r\n":           "bell and nul\n",
	} {
		assert.Equal(t, want, TerminalText([]byte(raw)), "%q", raw)
	}
}
