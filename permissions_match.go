package agentbackend

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/agentbackend/agentbackend/internal/netproxy"
)

// This file compiles Permissions into matchers cheap enough to run on every
// operation: a 50-rule policy must add well under a microsecond to a Read.
// doublestar.Match is correct but walks the pattern each time, so each path
// pattern is classified once: the shapes policies are made of (an exact
// path, "dir/**", "**/name", "**/*.ext", "**/dir/**") are answered by a
// string comparison or two, and any other pattern first passes a prefilter
// (the literal text it starts and ends with, and its longest literal run,
// must all be in the path) before doublestar decides.

// globKind is the shape of a path pattern.
type globKind uint8

const (
	globGeneral globKind = iota // prefilter, then doublestar.Match on the path
	globAny                     // "**": everything
	globExact                   // no wildcard: the path itself
	globDir                     // "d/**" with d literal: d and everything below it
	globSegment                 // "**/d/**" with d one literal name: any path through a directory d
	globBase                    // "**/x" with x one name: prefilter, then x against the base name
)

// globMatcher is a compiled path pattern.
type globMatcher struct {
	kind    globKind
	pattern string // as given to doublestar for globGeneral
	lit     string // globExact: the path; globDir, globSegment: the name d; globBase: x
	litMeta bool   // globBase: x has wildcards
	dirPre  string // globDir: d + "/"
	pre     string // prefilter: the subject starts with it
	suf     string // prefilter: the subject ends with it
	mid     string // prefilter: the subject contains it
}

// globSet is a compiled path pattern: a pattern with braces becomes its
// alternatives ("**/*.{key,pem}" is "**/*.key" or "**/*.pem"), so that each
// can take a shortcut.
type globSet []globMatcher

// maxBraceAlternatives bounds brace expansion; a pattern with more
// alternatives is left whole to doublestar.
const maxBraceAlternatives = 64

// compileGlobSet compiles a path pattern, expanding its braces.
func compileGlobSet(pattern string) (globSet, error) {
	whole, err := compileGlob(pattern)
	if err != nil {
		return nil, err
	}
	alts, ok := expandBraces(whole.pattern, maxBraceAlternatives)
	if !ok || len(alts) == 1 {
		return globSet{whole}, nil
	}
	set := make(globSet, 0, len(alts))
	for _, alt := range alts {
		m, err := compileGlob(alt)
		if err != nil || m.pattern != alt {
			return globSet{whole}, nil // an alternative of its own would be refused: keep the pattern whole
		}
		set = append(set, m)
	}
	return set, nil
}

func (g globSet) match(p string) bool {
	for i := range g {
		if g[i].match(p) {
			return true
		}
	}
	return false
}

// hasLiteral reports whether every alternative names some literal text,
// unlike "**", "*" or "*/*", which match whatever a word says.
func (g globSet) hasLiteral() bool {
	for i := range g {
		m := &g[i]
		switch m.kind {
		case globAny:
			return false
		case globGeneral:
			if m.pre == "" && m.suf == "" && m.mid == "" {
				return false
			}
		case globBase:
			if m.litMeta && m.pre == "" && m.suf == "" && m.mid == "" {
				return false
			}
		}
	}
	return true
}

func (g globSet) mayMatchBelow(dir string) bool {
	for i := range g {
		if g[i].mayMatchBelow(dir) {
			return true
		}
	}
	return false
}

// expandBraces returns the alternatives of a pattern's brace groups, or
// false when there are more than limit or the pattern has escapes (left to
// doublestar, whose rules for them this does not repeat).
func expandBraces(pattern string, limit int) ([]string, bool) {
	if strings.IndexByte(pattern, '\\') >= 0 {
		return nil, false
	}
	open := -1
	for i := 0; i < len(pattern); i++ {
		switch pattern[i] {
		case '[':
			i = skipClass(pattern, i) - 1
		case '{':
			open = i
		}
		if open >= 0 {
			break
		}
	}
	if open < 0 {
		return []string{pattern}, true
	}
	end := skipBraces(pattern, open)
	if end > len(pattern) || pattern[end-1] != '}' {
		return nil, false
	}
	var alts []string
	depth, start := 0, open+1
	for i := open + 1; i < end-1; i++ {
		switch pattern[i] {
		case '[':
			i = skipClass(pattern, i) - 1
		case '{':
			depth++
		case '}':
			depth--
		case ',':
			if depth == 0 {
				alts = append(alts, pattern[start:i])
				start = i + 1
			}
		}
	}
	alts = append(alts, pattern[start:end-1])
	// Joining must not make a "**" (which doublestar treats as a globstar
	// only when written as one) nor hide one inside a group.
	if open > 0 && pattern[open-1] == '*' || end < len(pattern) && pattern[end] == '*' {
		return nil, false
	}
	for _, alt := range alts {
		if strings.HasPrefix(alt, "*") || strings.HasSuffix(alt, "*") || strings.Contains(alt, "**") {
			return nil, false
		}
	}
	var out []string
	for _, alt := range alts {
		rest, ok := expandBraces(pattern[:open]+alt+pattern[end:], limit-len(out))
		if !ok {
			return nil, false
		}
		out = append(out, rest...)
		if len(out) > limit {
			return nil, false
		}
	}
	return out, true
}

// compileGlob classifies a path pattern. The pattern is validated and has
// its leading "/" and "./" dropped.
func compileGlob(pattern string) (globMatcher, error) {
	for {
		trimmed := strings.TrimPrefix(strings.TrimLeft(pattern, "/"), "./")
		if trimmed == pattern {
			break
		}
		pattern = trimmed
	}
	switch {
	case pattern == "":
		return globMatcher{}, fmt.Errorf("empty pattern (use ** for every path)")
	case strings.HasSuffix(pattern, "/"):
		return globMatcher{}, fmt.Errorf("pattern %q ends with \"/\", which no path does: write %q for the directory and everything in it", pattern, pattern+"**")
	case !doublestar.ValidatePattern(pattern):
		return globMatcher{}, fmt.Errorf("invalid glob %q (check brackets, braces and escapes)", pattern)
	}
	m := globMatcher{pattern: pattern}
	if !utf8.ValidString(pattern) || strings.ContainsRune(pattern, utf8.RuneError) {
		// doublestar compares runes, and every invalid byte is the same
		// RuneError to it: leave such patterns to it alone.
		return m, nil
	}
	if pattern == "**" {
		m.kind = globAny
		return m, nil
	}
	if !hasGlobMeta(pattern) {
		m.kind, m.lit = globExact, pattern
		return m, nil
	}
	if d, ok := strings.CutSuffix(pattern, "/**"); ok && !hasGlobMeta(d) {
		m.kind, m.lit, m.dirPre = globDir, d, d+"/"
		return m, nil
	}
	if rest, ok := strings.CutPrefix(pattern, "**/"); ok && !strings.Contains(rest, "/") {
		m.kind, m.lit, m.litMeta = globBase, rest, hasGlobMeta(rest)
		m.pre, m.suf, m.mid = prefilter(rest)
		return m, nil
	}
	if rest, ok := strings.CutPrefix(pattern, "**/"); ok {
		if d, ok := strings.CutSuffix(rest, "/**"); ok && d != "" && !strings.Contains(d, "/") && !hasGlobMeta(d) {
			m.kind, m.lit = globSegment, d
			return m, nil
		}
	}
	m.kind = globGeneral
	m.pre, m.suf, m.mid = prefilter(pattern)
	return m, nil
}

// hasGlobMeta reports whether s holds a character doublestar treats
// specially.
func hasGlobMeta(s string) bool { return strings.ContainsAny(s, "*?[{\\") }

// prefilter returns literal text every match of pattern must start with,
// end with and contain. A run of literal text between wildcards appears
// verbatim in every match, except that a "/" next to a `**` may vanish
// (`a/**/b` matches "a/b"), so such slashes are left out: the filter only
// ever gets weaker, never wrong.
func prefilter(pattern string) (pre, suf, mid string) {
	type run struct {
		text        string
		first, last bool // at the start / end of the pattern
	}
	var runs []run
	start := 0
	flush := func(end int) {
		if end > start {
			runs = append(runs, run{text: pattern[start:end], first: start == 0, last: end == len(pattern)})
		}
	}
	for i := 0; i < len(pattern); {
		c := pattern[i]
		switch c {
		case '*', '?':
			flush(i)
			i++
		case '\\':
			flush(i)
			i += 2
		case '[':
			flush(i)
			i = skipClass(pattern, i)
		case '{':
			flush(i)
			i = skipBraces(pattern, i)
		default:
			i++
			continue
		}
		start = min(i, len(pattern))
	}
	flush(len(pattern))
	for _, r := range runs {
		text := r.text
		if !r.first {
			text = strings.TrimPrefix(text, "/")
		}
		if !r.last {
			text = strings.TrimSuffix(text, "/")
		}
		if r.first {
			pre = text
		}
		if r.last {
			suf = text
		}
		if len(text) > len(mid) {
			mid = text
		}
	}
	return pre, suf, mid
}

// skipClass returns the index after the character class starting at i.
func skipClass(p string, i int) int {
	j := i + 1
	if j < len(p) && (p[j] == '!' || p[j] == '^') {
		j++
	}
	if j < len(p) && p[j] == ']' {
		j++
	}
	for j < len(p) && p[j] != ']' {
		if p[j] == '\\' {
			j++
		}
		j++
	}
	return min(j+1, len(p))
}

// skipBraces returns the index after the brace group starting at i.
func skipBraces(p string, i int) int {
	depth := 0
	for j := i; j < len(p); j++ {
		switch p[j] {
		case '\\':
			j++
		case '[':
			j = skipClass(p, j) - 1
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return j + 1
			}
		}
	}
	return len(p)
}

// match reports whether the path p (clean, relative, "" for the root)
// matches.
func (m *globMatcher) match(p string) bool {
	switch m.kind {
	case globAny:
		return true
	case globExact:
		return p == m.lit
	case globDir:
		return p == m.lit || strings.HasPrefix(p, m.dirPre)
	case globSegment:
		return hasSegment(p, m.lit)
	case globBase:
		if p == "" {
			ok, _ := doublestar.Match(m.pattern, p) // the root has no base name
			return ok
		}
		base := p[strings.LastIndexByte(p, '/')+1:]
		if !m.litMeta {
			return base == m.lit
		}
		if !m.passes(base) {
			return false
		}
		ok, _ := doublestar.Match(m.lit, base)
		return ok
	}
	if !m.passes(p) {
		return false
	}
	ok, _ := doublestar.Match(m.pattern, p)
	return ok
}

// passes applies the prefilter.
func (m *globMatcher) passes(s string) bool {
	return strings.HasPrefix(s, m.pre) && strings.HasSuffix(s, m.suf) && strings.Contains(s, m.mid)
}

// mayMatchBelow reports whether the pattern could match a path strictly
// below dir (clean, relative, "" for the root), by its literal leading
// directories: a pattern that starts with a wildcard might. Recursive
// removes and renames use it so that moving or removing a directory cannot
// carry away what a rule protects inside it.
func (m *globMatcher) mayMatchBelow(dir string) bool {
	if dir == "" {
		return true
	}
	below := dir + "/"
	switch m.kind {
	case globExact:
		return strings.HasPrefix(m.lit, below)
	case globDir:
		return strings.HasPrefix(m.dirPre, below) || strings.HasPrefix(below, m.dirPre)
	case globGeneral:
		// The pattern's fixed start lies inside dir, or dir continues it
		// (a wildcard after the fixed start can reach into dir).
		lead := m.pattern
		if i := strings.IndexAny(lead, "*?[{\\"); i >= 0 {
			lead = lead[:i]
		}
		return strings.HasPrefix(lead, below) || strings.HasPrefix(below, lead)
	}
	return true // "**", "**/x" and "**/d/**" can match anywhere
}

// hasSegment reports whether name is one of p's slash-separated elements.
func hasSegment(p, name string) bool {
	for from := 0; from <= len(p); {
		i := strings.Index(p[from:], name)
		if i < 0 {
			return false
		}
		i += from
		end := i + len(name)
		if (i == 0 || p[i-1] == '/') && (end == len(p) || p[end] == '/') {
			return true
		}
		from = i + 1
	}
	return false
}

// cmdMatcher is a compiled exec pattern.
type cmdMatcher struct {
	re     *regexp.Regexp
	prefix string // a glob's literal start, checked before the expression
}

// compileCommand compiles an exec pattern: "re:" and an RE2 expression, or
// a glob where `*` is any run of characters and `?` one character.
func compileCommand(pattern string) (cmdMatcher, error) {
	if expr, ok := strings.CutPrefix(pattern, "re:"); ok {
		re, err := regexp.Compile(expr)
		if err != nil {
			return cmdMatcher{}, fmt.Errorf("invalid regular expression %q: %v", expr, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
		return cmdMatcher{re: re}, nil
	}
	if strings.TrimSpace(pattern) == "" {
		return cmdMatcher{}, fmt.Errorf("empty pattern (use * for every command)")
	}
	pattern = strings.Join(strings.Fields(pattern), " ") // commands are matched with single spaces
	var sb strings.Builder
	sb.WriteString(`(?s)\A`)
	lit := true
	var prefix strings.Builder
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch {
		case c == '*':
			sb.WriteString(".*")
			lit = false
		case c == '?':
			sb.WriteString(".")
			lit = false
		case c == '[':
			end := skipClass(pattern, i)
			class := pattern[i:end]
			if !strings.HasSuffix(class, "]") || len(class) < 3 {
				return cmdMatcher{}, fmt.Errorf("invalid glob %q: unclosed [", pattern)
			}
			if class[1] == '!' {
				class = "[^" + class[2:]
			}
			sb.WriteString(class)
			i = end - 1
			lit = false
		case c == '\\' && i+1 < len(pattern):
			i++
			sb.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
			if lit {
				prefix.WriteByte(pattern[i])
			}
		default:
			sb.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
			if lit {
				prefix.WriteByte(c)
			}
		}
	}
	sb.WriteString(`\z`)
	re, err := regexp.Compile(sb.String())
	if err != nil {
		return cmdMatcher{}, fmt.Errorf("invalid glob %q: %v", pattern, err)
	}
	return cmdMatcher{re: re, prefix: prefix.String()}, nil
}

func (m *cmdMatcher) match(command string) bool {
	return strings.HasPrefix(command, m.prefix) && m.re.MatchString(command)
}

// compiledRule is a Rule with its matcher.
type compiledRule struct {
	Rule
	glob globSet       // file accesses
	cmd  cmdMatcher    // exec
	host netproxy.Rule // network
}

// compiledPolicy is a Policy ready to decide.
type compiledPolicy struct {
	def   Action // never empty
	rules []compiledRule
	// trivial: every outcome is Allow, so the policy need not be consulted.
	trivial bool
}

// decide returns the action for subject and the rule that decided (nil
// for the default). Paths are matched as clean relative paths with the
// root as "".
func (p *compiledPolicy) decide(subject string, exec bool) (Action, *compiledRule) {
	for i := range p.rules {
		r := &p.rules[i]
		var ok bool
		if exec {
			ok = r.cmd.match(subject)
		} else {
			ok = r.glob.match(subject)
		}
		if ok {
			return r.Action, r
		}
	}
	return p.def, nil
}

// decideHost returns the action for a connection to host (canonical) on
// port, and the rule that decided (nil for the default).
func (p *compiledPolicy) decideHost(host string, port int) (Action, *compiledRule) {
	for i := range p.rules {
		if r := &p.rules[i]; r.host.Match(host, port) {
			return r.Action, r
		}
	}
	return p.def, nil
}

// compiledPermissions is Permissions ready to decide, one policy per
// Access (in the order of allAccesses).
type compiledPermissions struct {
	pol      [numAccesses]compiledPolicy
	approver Approver
	fallback AskFallback
	trivial  bool // every policy is trivial
}

// compilePermissions validates and compiles p; errors name the field.
func compilePermissions(p *Permissions) (*compiledPermissions, error) {
	c := &compiledPermissions{approver: p.Approver, fallback: p.AskFallback, trivial: true}
	if c.fallback == "" {
		c.fallback = FallbackDeny
	}
	if c.fallback != FallbackDeny && c.fallback != FallbackError {
		return nil, errConfig("permissions: askFallback: invalid value %q: want %q or %q", p.AskFallback, FallbackDeny, FallbackError)
	}
	for i, a := range allAccesses {
		src := p.Policy(a)
		field := fieldName(a)
		if !src.Default.valid(true) {
			return nil, errConfig("permissions: %s.default: invalid action %q: want %q, %q or %q", field, src.Default, Allow, Deny, Ask)
		}
		pol := compiledPolicy{def: src.Default, trivial: src.Default == "" || src.Default == Allow}
		if pol.def == "" {
			pol.def = Allow
		}
		for j, r := range src.Rules {
			if !r.Action.valid(false) {
				return nil, errConfig("permissions: %s.rules[%d].action: invalid action %q: want %q, %q or %q", field, j, r.Action, Allow, Deny, Ask)
			}
			cr := compiledRule{Rule: r}
			var err error
			switch a {
			case AccessExec:
				cr.cmd, err = compileCommand(r.Pattern)
			case AccessNetwork:
				cr.host, err = netproxy.ParseRule(r.Pattern)
			default:
				cr.glob, err = compileGlobSet(r.Pattern)
			}
			if err != nil {
				return nil, errConfig("permissions: %s.rules[%d].pattern: %v", field, j, err)
			}
			if r.Action != Allow {
				pol.trivial = false
			}
			pol.rules = append(pol.rules, cr)
		}
		if pol.trivial {
			pol.rules = nil // nothing to consult
		}
		c.trivial = c.trivial && pol.trivial
		c.pol[i] = pol
	}
	return c, nil
}
