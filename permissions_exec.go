package agentbackend

import (
	"strings"
)

// cmdPiece is one simple command of a command line, as exec rules see it.
type cmdPiece struct {
	text  string   // its words after assignments and keywords, joined by single spaces
	words []string // every word, quotes removed (assignments included)
}

// shellKeywords are skipped at the start of a simple command, so that
// `if rm -rf x; then ...` is matched as "rm -rf x".
var shellKeywords = map[string]bool{
	"!": true, "{": true, "}": true, "if": true, "then": true, "elif": true, "else": true, "fi": true,
	"do": true, "done": true, "while": true, "until": true, "time": true, "case": true, "esac": true,
}

// splitCommand splits a shell command line into simple commands: at
// unquoted ; & | newlines ( and ), and around command substitutions
// ($(...) and backquotes, inside double quotes too). Heredoc bodies are
// dropped, quotes and backslashes removed, comments skipped. It is a
// reading of the line good enough to match rules against, not a shell
// parser: when unsure it splits more, which only makes rules stricter.
func splitCommand(command string) []cmdPiece {
	s := stripHeredocs(command)
	// A frame is one level of command text: the line itself, or a command
	// substitution or subshell inside it. Each keeps its own words, so the
	// command around a substitution goes on after it closes.
	type frame struct {
		dq       bool // inside double quotes
		backtick bool // opened by a backquote (else by a parenthesis)
		words    []string
		word     strings.Builder
		inWord   bool
	}
	var pieces []cmdPiece
	stack := []*frame{{}}
	single := false
	top := func() *frame { return stack[len(stack)-1] }
	endWord := func() {
		f := top()
		if f.inWord {
			f.words = append(f.words, f.word.String())
			f.word.Reset()
			f.inWord = false
		}
	}
	endPiece := func() {
		endWord()
		f := top()
		if p, ok := makePiece(f.words); ok {
			pieces = append(pieces, p)
		}
		f.words = nil
	}
	open := func(backtick bool) {
		stack = append(stack, &frame{backtick: backtick})
	}
	closeFrame := func(backtick bool) bool {
		if len(stack) > 1 && top().backtick == backtick && !top().dq {
			endPiece()
			stack = stack[:len(stack)-1]
			top().inWord = true // the substitution stands in the word it was part of
			return true
		}
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		f := top()
		if single {
			if c == '\'' {
				single = false
			} else {
				f.word.WriteByte(c)
			}
			continue
		}
		if c == '\\' && i+1 < len(s) {
			i++
			if s[i] != '\n' { // a backslash-newline joins lines
				f.word.WriteByte(s[i])
				f.inWord = true
			}
			continue
		}
		if f.dq {
			switch {
			case c == '"':
				f.dq = false
			case c == '$' && i+1 < len(s) && s[i+1] == '(':
				i++
				open(false)
			case c == '`':
				open(true)
			default:
				f.word.WriteByte(c)
			}
			continue
		}
		switch c {
		case '\'':
			single, f.inWord = true, true
		case '"':
			f.dq, f.inWord = true, true
		case ' ', '\t', '\r':
			endWord()
		case '<':
			endWord()
			switch {
			case strings.HasPrefix(s[i:], "<<<"):
				i += 2 // a here-string: its word is data, read as a word
			case strings.HasPrefix(s[i:], "<<"):
				i = skipHeredocDelimiter(s, i+2) - 1 // the body is gone (stripHeredocs)
			}
		case '>':
			endWord() // a redirection: its target is the next word
		case '\n', ';', '&', '|':
			endPiece()
		case '(':
			endWord()
			open(false) // a subshell, <( ) or >( )
		case ')':
			if !closeFrame(false) {
				endPiece()
			}
		case '`':
			if !closeFrame(true) {
				open(true)
			}
		case '#':
			if f.inWord {
				f.word.WriteByte(c)
				continue
			}
			for i+1 < len(s) && s[i+1] != '\n' {
				i++
			}
		case '$':
			if i+1 < len(s) && s[i+1] == '(' {
				i++
				open(false) // a substitution, part of the word around it
				continue
			}
			f.word.WriteByte(c)
			f.inWord = true
		default:
			f.word.WriteByte(c)
			f.inWord = true
		}
	}
	for len(stack) > 1 { // unclosed substitutions
		endPiece()
		stack = stack[:len(stack)-1]
	}
	endPiece()
	return pieces
}

// skipHeredocDelimiter returns the index after the delimiter of a heredoc
// operator whose "<<" ends just before i: an optional "-", blanks, then a
// quoted or plain word.
func skipHeredocDelimiter(s string, i int) int {
	if i < len(s) && s[i] == '-' {
		i++
	}
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	if i < len(s) && (s[i] == '\'' || s[i] == '"') {
		if end := strings.IndexByte(s[i+1:], s[i]); end >= 0 {
			return i + 1 + end + 1
		}
		return len(s)
	}
	for i < len(s) && !strings.ContainsRune(" \t\n;&|<>()", rune(s[i])) {
		i++
	}
	return i
}

// makePiece builds a piece from a simple command's words, skipping leading
// assignments and keywords for its text.
func makePiece(words []string) (cmdPiece, bool) {
	if len(words) == 0 {
		return cmdPiece{}, false
	}
	first := 0
	for first < len(words) && (shellKeywords[words[first]] || isAssignment(words[first])) {
		first++
	}
	if first == len(words) {
		// Only keywords or assignments: nothing runs, but the words still
		// count as arguments.
		return cmdPiece{words: words}, true
	}
	var text strings.Builder
	for _, w := range words[first:] {
		if w == "" {
			continue
		}
		if text.Len() > 0 {
			text.WriteByte(' ')
		}
		text.WriteString(w)
	}
	return cmdPiece{text: text.String(), words: words}, true
}

// isAssignment reports whether w is NAME=value.
func isAssignment(w string) bool {
	name, _, ok := strings.Cut(w, "=")
	return ok && isEnvName(name)
}

// pathWords returns the words of a command that could name files: every
// word, and the part after "=" of options and assignments (--file=.env),
// without options themselves, empty words, or words with variables or
// wildcards (which the shell expands into something else).
func pathWords(words []string) []string {
	var out []string
	add := func(w string) {
		if w == "" || strings.HasPrefix(w, "-") || strings.ContainsAny(w, "$*?[") {
			return
		}
		out = append(out, w)
	}
	for _, w := range words {
		if _, after, ok := strings.Cut(w, "="); ok {
			add(after)
			if strings.HasPrefix(w, "-") || isAssignment(w) {
				continue
			}
		}
		add(w)
	}
	return out
}
