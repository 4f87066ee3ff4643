package agentbackend

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// The hold wrapper's exit line: only the line with this exec's token is
// read (and taken out of stderr), whole or split across writes; anything
// else, a forged line with another token or a line too long to be one,
// is output, and never held back without bound.
func TestExitLine(t *testing.T) {
	write := func(e *exitLine, parts ...string) {
		for _, p := range parts {
			n, err := e.Write([]byte(p))
			assert.NoError(t, err)
			assert.Equal(t, len(p), n)
		}
	}
	var out bytes.Buffer
	e := newExitLine(&out)
	mark := exitMark + e.token + " "
	write(e, "a\n"+exitMark+"0000000000000000 0\n", "b"+mark[:3], mark[3:]+"4", "2\nc")
	assert.True(t, e.seen)
	assert.Equal(t, 42, e.code)
	select {
	case <-e.ended:
	default:
		t.Fatal("ended is not closed after the exit line")
	}
	assert.Equal(t, "a\n"+exitMark+"0000000000000000 0\nbc", out.String())

	out.Reset()
	e = newExitLine(&out)
	mark = exitMark + e.token + " "
	big := strings.Repeat("x", 1<<20)
	write(e, mark, big) // the mark, then a megabyte without a newline
	assert.False(t, e.seen)
	assert.Less(t, len(e.held), len(mark)+maxExitCode+1, "held back without bound")
	assert.Equal(t, len(mark)+len(big)-len(e.held), out.Len())
}

// On a terminal the wrapper's lines end with "\r\n" (the terminal's
// output processing): both are read, and taken out, all the same.
func TestWrapperLinesOnATerminal(t *testing.T) {
	var out bytes.Buffer
	e := newExitLine(&out)
	p := &pidLine{next: e, found: make(chan struct{})}
	_, err := p.Write([]byte("4321\r\nhello\r\n" + exitMark + e.token + " 7\r\n"))
	assert.NoError(t, err)
	assert.True(t, p.seen())
	assert.Equal(t, 4321, p.pid)
	assert.True(t, e.seen)
	assert.Equal(t, 7, e.code)
	assert.Equal(t, "hello\r\n", out.String())
}
