package agentbackend

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/bmatcuk/doublestar/v4"
)

var matcherPatterns = []string{
	"**", "*", ".env", "a/b/c.txt", "src/**", "**/.env", "**/.env*", "**/*.pem", "**/id_rsa*",
	"**/.ssh/**", "**/.git/config", ".ssh/**", "src/*.go", "src/**/*_test.go", "a/**/b", "**/x/**/y",
	"{a,b}/**", "**/*.{key,pem}", "**/[ab]c", "{src,docs/{x,y}}/**", "**/{.env,id_rsa}", "[{]a", "{a/b,c}/z", "a\\*b", "**/?", "docs/*/index.md", "**/node_modules",
	"**/.*", "*.pem", "x*/y", "**/a/b/**", "a/**/x", "**/.env.*", "[!.]*", "**/*secret*",
}

var matcherPaths = []string{
	"", ".env", ".env.local", "a/.env", "a/b/.env", "envy", "src/.envrc", "x.pem", "a/x.pem", "a/.pem",
	"a/b/c.txt", "src", "src/main.go", "src/a/b_test.go", "src/x_test.go", "a/b", "a/x/b", "a/x/y/b",
	"b", "b/c", "c/x.key", "ac", "bc", "q/bc", "a*b", "axb", "z", "docs/x/index.md", "docs/index.md",
	".ssh", ".ssh/id_rsa", "home/.ssh", "home/.ssh/config", "x.ssh/k", ".sshx/k", "id_rsa", "k/id_rsa.pub",
	".git/config", "sub/.git/config", "node_modules", "a/node_modules", "a/node_modules/x", "x1/y", "x/y",
	"a/b/z", "q/a/b/z", "top.secret", "my_secret_file",
}

// The compiled matchers (with their shortcuts and prefilters) answer
// exactly what doublestar answers.
func TestGlobMatcherAgreesWithDoublestar(t *testing.T) {
	for _, pattern := range matcherPatterns {
		m, err := compileGlobSet(pattern)
		if err != nil {
			t.Fatalf("compileGlobSet(%q): %v", pattern, err)
		}
		for _, p := range matcherPaths {
			want, _ := doublestar.Match(pattern, p)
			if got := m.match(p); got != want {
				t.Errorf("pattern %q (%d alternatives) on %q: got %v, doublestar says %v", pattern, len(m), p, got, want)
			}
		}
	}
}

// FuzzGlobMatcher: for any valid pattern and path, the compiled matcher
// agrees with doublestar. A prefilter that rejected a real match would let
// a path dodge a Deny rule.
func FuzzGlobMatcher(f *testing.F) {
	for _, p := range matcherPatterns {
		f.Add(p, "a/b/.env")
	}
	for _, p := range matcherPaths {
		f.Add("**/.env*", p)
	}
	f.Fuzz(func(t *testing.T, pattern, p string) {
		pattern = strings.TrimLeft(pattern, "/")
		for strings.HasPrefix(pattern, "./") {
			pattern = strings.TrimLeft(pattern[2:], "/")
		}
		if pattern == "" || strings.HasSuffix(pattern, "/") || !doublestar.ValidatePattern(pattern) {
			return
		}
		m, err := compileGlobSet(pattern)
		if err != nil {
			t.Fatalf("compileGlobSet(%q): %v", pattern, err)
		}
		want, err := doublestar.Match(pattern, p)
		if err != nil {
			return
		}
		if got := m.match(p); got != want {
			t.Fatalf("pattern %q (%+v) on %q: got %v, doublestar says %v", pattern, m, p, got, want)
		}
	})
}

func TestExpandBraces(t *testing.T) {
	for _, c := range []struct {
		pattern string
		want    []string
	}{
		{"a", []string{"a"}},
		{"**/*.{key,pem}", []string{"**/*.key", "**/*.pem"}},
		{"{a,b{c,d}}/x", []string{"a/x", "bc/x", "bd/x"}},
		{"{a,b}/{c,d}", []string{"a/c", "a/d", "b/c", "b/d"}},
		{"[{]{a,b}", []string{"[{]a", "[{]b"}},
	} {
		got, ok := expandBraces(c.pattern, 64)
		if !ok || !slices.Equal(got, c.want) {
			t.Errorf("expandBraces(%q) = %q %v, want %q", c.pattern, got, ok, c.want)
		}
	}
	if _, ok := expandBraces(strings.Repeat("{a,b}", 7), 64); ok {
		t.Error("128 alternatives expanded")
	}
	if _, ok := expandBraces(`{a\,b}`, 64); ok {
		t.Error("a pattern with escapes expanded")
	}
}

func TestCompileGlobErrors(t *testing.T) {
	for _, pattern := range []string{"", "/", "./", "[", "a/{b", "secrets/"} {
		if _, err := compileGlob(pattern); err == nil {
			t.Errorf("compileGlob(%q) succeeded", pattern)
		}
	}
	m, err := compileGlob("/./src/**")
	if err != nil || m.kind != globDir || m.lit != "src" {
		t.Errorf("leading / and ./ are dropped: %+v %v", m, err)
	}
}

// mayMatchBelow never says no when some path below the directory matches.
func TestMayMatchBelow(t *testing.T) {
	dirs := []string{"a", "a/b", "src", "src/x", ".ssh", "home", "docs", "docs/x", "x1", "node_modules"}
	below := []string{"f", ".env", "b/c.txt", "x/y", "id_rsa", "b", "x/b", "config", "index.md", "y", "q/node_modules/z"}
	for _, pattern := range matcherPatterns {
		m, _ := compileGlobSet(pattern)
		for _, d := range dirs {
			if m.mayMatchBelow(d) {
				continue
			}
			for _, b := range below {
				if ok, _ := doublestar.Match(pattern, d+"/"+b); ok {
					t.Errorf("pattern %q: mayMatchBelow(%q) = false, but it matches %q", pattern, d, d+"/"+b)
				}
			}
		}
	}
	for _, c := range []struct {
		pattern, dir string
		want         bool
	}{
		{"src/**", "docs", false}, {"src/**", "src/a", true}, {"src/**", "src", true},
		{"a/b/secret", "a", true}, {"a/b/secret", "c", false}, {"a/b/secret", "a/b/secret", false},
		{"docs/*/index.md", "src", false}, {"docs/*/index.md", "docs", true}, {"**/.env", "anything", true},
	} {
		m, _ := compileGlobSet(c.pattern)
		if got := m.mayMatchBelow(c.dir); got != c.want {
			t.Errorf("%q.mayMatchBelow(%q) = %v, want %v", c.pattern, c.dir, got, c.want)
		}
	}
}

func TestCommandMatcher(t *testing.T) {
	for _, c := range []struct {
		pattern, command string
		want             bool
	}{
		{"go test *", "go test ./...", true},
		{"go test *", "go test", false},
		{"go test*", "go test", true},
		{"go   test  *", "go test -run X", true},
		{"go test *", "go testify", false},
		{"rm *", "rm -rf /", true},
		{"*", "anything at all", true},
		{"ls", "ls", true},
		{"ls", "ls -la", false},
		{"git [cd]iff*", "git diff HEAD", true},
		{"git [!d]iff*", "git diff HEAD", false},
		{"echo a?c", "echo abc", true},
		{"echo \\*", "echo *", true},
		{"echo \\*", "echo x", false},
		{"re:^npm (ci|install)$", "npm ci", true},
		{"re:^npm (ci|install)$", "npm ci --force", false},
		{"re:curl", "echo; curl x", true},
	} {
		m, err := compileCommand(c.pattern)
		if err != nil {
			t.Fatalf("compileCommand(%q): %v", c.pattern, err)
		}
		if got := m.match(c.command); got != c.want {
			t.Errorf("%q on %q: got %v, want %v", c.pattern, c.command, got, c.want)
		}
	}
	for _, bad := range []string{"", "  ", "re:(", "ls [a"} {
		if _, err := compileCommand(bad); err == nil {
			t.Errorf("compileCommand(%q) succeeded", bad)
		}
	}
}

func TestSplitCommand(t *testing.T) {
	for _, c := range []struct {
		command string
		want    []string // the pieces' texts
	}{
		{"go test ./...", []string{"go test ./..."}},
		{"  go   test  ", []string{"go test"}},
		{"go test ./... && rm -rf x", []string{"go test ./...", "rm -rf x"}},
		{"a; b | c || d & e\nf", []string{"a", "b", "c", "d", "e", "f"}},
		{`git commit -m "fix; tidy"`, []string{"git commit -m fix; tidy"}},
		{`echo 'a | b'`, []string{"echo a | b"}},
		{`echo "$(cat .env)"`, []string{"echo", "cat .env"}},
		{`echo "a $(cat .env) b"`, []string{"echo a  b", "cat .env"}},
		{"echo `cat .env` x", []string{"echo x", "cat .env"}},
		{"echo $(cat $(ls x)) y", []string{"echo y", "cat", "ls x"}},
		{"go test $(rm -rf x) ./...", []string{"go test ./...", "rm -rf x"}},
		{"(cd x; rm y)", []string{"cd x", "rm y"}},
		{"FOO=1 BAR=2 rm -rf x", []string{"rm -rf x"}},
		{"if rm x; then echo y; fi", []string{"rm x", "echo y"}},
		{`r""m -rf x`, []string{"rm -rf x"}},
		{`r\m x`, []string{"rm x"}},
		{"cat <<EOF > out\nrm -rf /\nEOF\necho done", []string{"cat out", "echo done"}},
		{"echo hi # rm -rf x", []string{"echo hi"}},
		{"echo a#b", []string{"echo a#b"}},
		{"diff <(ls a) <(ls b)", []string{"diff", "ls a", "ls b"}},
		{"cat <<-'EOF' >x\nbody\n\tEOF\nls", []string{"cat x", "ls"}},
		{"cat <<< hi", []string{"cat hi"}},
		{"echo x>.env", []string{"echo x .env"}},
		{"# only a comment", nil},
		{"", nil},
	} {
		var got []string
		for _, p := range splitCommand(c.command) {
			if p.text != "" {
				got = append(got, p.text)
			}
		}
		slices.Sort(got)
		want := slices.Clone(c.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("splitCommand(%q) = %q, want %q", c.command, got, c.want)
		}
	}
}

func TestPathWords(t *testing.T) {
	got := pathWords([]string{"cat", "-n", ".env", "--file=a/.env", "FOO=.envrc", "$HOME/x", "*.pem", "x=y"})
	want := []string{"cat", ".env", "a/.env", ".envrc", "y"}
	if !slices.Equal(got, want) {
		t.Errorf("pathWords = %q, want %q", got, want)
	}
}

// BenchmarkPolicyDecide is the policy alone: the 50 rules of
// BenchmarkScopedReadPolicy's "sdk" against paths that match none (the
// common case), one early and one late.
func BenchmarkPolicyDecide(b *testing.B) {
	p := DefaultPermissions()
	for i := len(p.Read.Rules); i < 50; i++ {
		p.Read.Rules = append(p.Read.Rules, Rule{Pattern: fmt.Sprintf("gen%d/**/*.{tmp,bak}", i), Action: Deny})
	}
	c, err := compilePermissions(p)
	if err != nil {
		b.Fatal(err)
	}
	pol := &c.pol[AccessRead.index()]
	for _, path := range []string{"src/pkg/handler.go", ".env", "deep/a/b/c/d/e/f/g/main_test.go", "gen49/x/y.bak"} {
		b.Run(strings.ReplaceAll(path, "/", "_"), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				pol.decide(path, false)
			}
		})
	}
}
