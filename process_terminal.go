package agentbackend

import (
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Background processes on a pseudo-terminal: REPLs, `npm init`, test
// watchers, TUIs, anything that behaves differently (or refuses to run)
// without a terminal. ExecOptions.Terminal asks Start for one; the process
// is then a Process like any other, with its input written to Stdin, its
// output read from Output, and Resize besides.

// The terminal a process gets when ExecOptions.Terminal leaves a field
// zero.
const (
	DefaultTerminalRows = 24
	DefaultTerminalCols = 80
	DefaultTerminalType = "xterm-256color"
)

// maxTerminalSize bounds rows and columns (a terminal's size is 16 bits).
const maxTerminalSize = 0xffff

// Terminal describes the pseudo-terminal a background process runs on
// (ExecOptions.Terminal). The zero value is a 24x80 xterm-256color.
type Terminal struct {
	// Rows and Cols are the terminal's size in character cells; 0 means
	// DefaultTerminalRows and DefaultTerminalCols.
	Rows, Cols int
	// Term is the command's TERM; "" means DefaultTerminalType. It names a
	// terminal type: letters, digits and ".+-_" only.
	Term string
}

// terminalOf checks the terminal of an Exec or Start call (op) and
// returns it with its defaults filled in, or nil for a call without one.
// Only Start takes one, and not with ExecOptions.Stdin: the input of a
// process on a terminal is typed into the terminal (Process.Stdin).
func terminalOf(op string, o *ExecOptions) (*Terminal, error) {
	if o == nil || o.Terminal == nil {
		return nil, nil
	}
	if op != "start" {
		return nil, errArgument(op, "", "a terminal is for background processes: start the command with Start (run_in_background)")
	}
	if o.Stdin != nil {
		return nil, errArgument(op, "", "a process on a terminal takes its input from the terminal: write to Process.Stdin instead of setting ExecOptions.Stdin")
	}
	t := *o.Terminal
	if t.Rows == 0 {
		t.Rows = DefaultTerminalRows
	}
	if t.Cols == 0 {
		t.Cols = DefaultTerminalCols
	}
	if err := checkTerminalSize(op, t.Rows, t.Cols); err != nil {
		return nil, err
	}
	if t.Term == "" {
		t.Term = DefaultTerminalType
	}
	if len(t.Term) > 64 {
		return nil, errArgument(op, "", "terminal type %.64q... is too long", t.Term)
	}
	for _, c := range []byte(t.Term) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '+' || c == '-' || c == '_') {
			return nil, errArgument(op, "", "terminal type %q: only letters, digits and .+-_ are allowed", t.Term)
		}
	}
	return &t, nil
}

func checkTerminalSize(op string, rows, cols int) error {
	if rows < 1 || cols < 1 || rows > maxTerminalSize || cols > maxTerminalSize {
		return errArgument(op, "", "terminal size %dx%d: rows and columns must be between 1 and %d", rows, cols, maxTerminalSize)
	}
	return nil
}

// terminalControl is what a backend gives a Process on a terminal to
// resize it. It returns os.ErrProcessDone once the command has ended.
type terminalControl interface {
	resize(rows, cols int) error
}

// Resize changes the size of the process's terminal; the program in the
// foreground is told (SIGWINCH), as when a terminal window is resized.
// A process without a terminal is INVALID_ARGUMENT; after the process has
// ended it returns os.ErrProcessDone.
func (p *Process) Resize(rows, cols int) error {
	if p.term == nil {
		return errArgument("resize", "", "process %s has no terminal: start it with ExecOptions.Terminal", p.id)
	}
	if err := checkTerminalSize("resize", rows, cols); err != nil {
		return err
	}
	select {
	case <-p.done:
		return os.ErrProcessDone
	default:
	}
	return p.term.resize(rows, cols)
}

// terminalInput is the Stdin of a process on a terminal: it writes to the
// terminal's controlling side (a local terminal's, or the pipe to a
// container's), which stays open for the output while the process runs,
// so Close ends only this writer.
type terminalInput struct {
	w      io.Writer
	closed atomic.Bool
}

func (t *terminalInput) Write(b []byte) (int, error) {
	if t.closed.Load() {
		return 0, os.ErrClosed
	}
	return t.w.Write(b)
}

func (t *terminalInput) Close() error {
	t.closed.Store(true)
	return nil
}

// SetWriteDeadline bounds the writes, which block while the program does
// not read its input and the terminal's buffer is full, where the terminal
// takes a deadline (a local one does).
func (t *terminalInput) SetWriteDeadline(d time.Time) error {
	if dw, ok := t.w.(interface{ SetWriteDeadline(time.Time) error }); ok {
		return dw.SetWriteDeadline(d)
	}
	return os.ErrNoDeadline
}

// terminalKeys are the bytes an xterm sends for the named keys that are
// not a control character of their own (see TerminalKey).
var terminalKeys = map[string]string{
	"enter": "\r", "return": "\r", "tab": "\t", "backspace": "\x7f", "escape": "\x1b", "esc": "\x1b",
	"space": " ", "up": "\x1b[A", "down": "\x1b[B", "right": "\x1b[C", "left": "\x1b[D",
	"home": "\x1b[H", "end": "\x1b[F", "pageup": "\x1b[5~", "pagedown": "\x1b[6~",
	"insert": "\x1b[2~", "delete": "\x1b[3~",
	"f1": "\x1bOP", "f2": "\x1bOQ", "f3": "\x1bOR", "f4": "\x1bOS",
	"f5": "\x1b[15~", "f6": "\x1b[17~", "f7": "\x1b[18~", "f8": "\x1b[19~",
	"f9": "\x1b[20~", "f10": "\x1b[21~", "f11": "\x1b[23~", "f12": "\x1b[24~",
}

// TerminalKey returns what a terminal sends when the named key is pressed,
// to write to the Stdin of a process on a terminal: Enter, Tab, Backspace,
// Escape, Space, Up, Down, Left, Right, Home, End, PageUp, PageDown,
// Insert, Delete, F1 to F12, and Ctrl with a letter or one of @[\]^_
// ("Ctrl-C", also spelt "Ctrl+C", "C-c" or "^C"). Names are not case
// sensitive. It reports false for a name it does not know.
func TerminalKey(name string) ([]byte, bool) {
	n := strings.ToLower(strings.TrimSpace(name))
	if seq, ok := terminalKeys[strings.NewReplacer("-", "", "_", "", " ", "").Replace(n)]; ok {
		return []byte(seq), true
	}
	for _, prefix := range []string{"ctrl-", "ctrl+", "control-", "control+", "c-", "^"} {
		if rest, ok := strings.CutPrefix(n, prefix); ok && len(rest) == 1 {
			c := rest[0]
			switch {
			case 'a' <= c && c <= 'z':
				return []byte{c - 'a' + 1}, true
			case c == '@', c == '[', c == '\\', c == ']', c == '^', c == '_':
				return []byte{c - '@'}, true
			}
		}
	}
	return nil, false
}

// TerminalText renders what a terminal showed as plain text, for a reader
// that is not a terminal (a model, a log): escape sequences (colours,
// cursor movement, titles) are dropped, "\r\n" ends a line, a lone "\r"
// returns to the start of the line and what follows overwrites it (as a
// progress bar redraws itself), and a backspace steps back. It renders the
// output line by line: a full-screen program that moves the cursor around
// comes out as the text it wrote, in the order it wrote it.
func TerminalText(raw []byte) string {
	var out strings.Builder
	var line []rune
	col := 0
	put := func(r rune) {
		if col < len(line) {
			line[col] = r
		} else {
			line = append(line, r)
		}
		col++
	}
	flush := func() {
		out.WriteString(strings.TrimRight(string(line), " "))
		out.WriteByte('\n')
		line, col = line[:0], 0
	}
	s := string(raw)
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == 0x1b:
			i += escapeLen(s[i:])
			continue
		case c == '\n':
			flush()
		case c == '\r':
			col = 0
		case c == '\b':
			col = max(0, col-1)
		case c == '\t':
			for put(' '); col%8 != 0; {
				put(' ')
			}
		case c < 0x20 || c == 0x7f:
			// other control characters show nothing
		default:
			r, n := utf8.DecodeRuneInString(s[i:])
			put(r)
			i += n
			continue
		}
		i++
	}
	if len(line) > 0 {
		out.WriteString(strings.TrimRight(string(line), " "))
	}
	return out.String()
}

// escapeLen returns the length of the escape sequence at the start of s
// (which starts with ESC): CSI (ESC [ ... final byte), OSC and the other
// string sequences (up to BEL or ESC \), a character-set choice (ESC ( B),
// or ESC and one character. An unfinished sequence runs to the end.
func escapeLen(s string) int {
	if len(s) < 2 {
		return len(s)
	}
	switch s[1] {
	case '[':
		for i := 2; i < len(s); i++ {
			if s[i] >= 0x40 && s[i] <= 0x7e {
				return i + 1
			}
		}
		return len(s)
	case ']', 'P', '_', '^', 'X':
		for i := 2; i < len(s); i++ {
			if s[i] == 0x07 {
				return i + 1
			}
			if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\' {
				return i + 2
			}
		}
		return len(s)
	case '(', ')', '*', '+', '#', '%':
		return min(3, len(s))
	}
	return 2
}
