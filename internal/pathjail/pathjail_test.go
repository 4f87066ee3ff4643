package pathjail

import (
	"path"
	"strings"
	"testing"
)

func TestResolveThreeCases(t *testing.T) {
	cases := []struct {
		root, p, want string
		ok            bool
	}{
		// 1. relative
		{"/var/ws", "file.txt", "file.txt", true},
		{"/var/ws", "subdir/file.txt", "subdir/file.txt", true},
		{"/var/ws", ".", ".", true},
		{"/var/ws", "", ".", true},
		{"/var/ws", "./a//b/", "a/b", true},
		{"/var/ws", "a/../b", "b", true},
		// 2. absolute inside the root
		{"/var/ws", "/var/ws/file.txt", "file.txt", true},
		{"/var/ws", "/var/ws/a/b/c", "a/b/c", true},
		{"/var/ws", "/var/ws", ".", true},
		{"/var/ws", "/var/ws/", ".", true},
		{"/var/ws", "/var/ws//a", "a", true},
		// 3. absolute elsewhere: treated as relative
		{"/var/ws", "/file.txt", "file.txt", true},
		{"/var/ws", "/etc/passwd", "etc/passwd", true},
		{"/var/ws", "///etc/passwd", "etc/passwd", true},
		{"/var/ws", "/var/wsx/a", "var/wsx/a", true},
		{"/var/ws", "/", ".", true},
		// escapes
		{"/var/ws", "../etc/passwd", "", false},
		{"/var/ws", "../../..", "", false},
		{"/var/ws", "a/b/../../../../etc", "", false},
		{"/var/ws", "..", "", false},
		{"/var/ws", "/var/ws/../ws2/x", "", false},
		{"/var/ws", "/../etc", "", false},
		{"/var/ws", "/etc/../../x", "", false},
		// the root "/" (memory backends)
		{"/", "/a/b", "a/b", true},
		{"/", "a/b", "a/b", true},
		{"/", "/", ".", true},
		{"/", "/../x", "", false},
		// dotted names are names, not traversal
		{"/var/ws", "..foo", "..foo", true},
		{"/var/ws", "a/..b/c", "a/..b/c", true},
		{"/var/ws", `..\x`, `..\x`, true},
	}
	for _, c := range cases {
		got, ok := Resolve(c.root, c.p)
		if got != c.want || ok != c.ok {
			t.Errorf("Resolve(%q, %q) = %q, %v; want %q, %v", c.root, c.p, got, ok, c.want, c.ok)
		}
	}
}

func TestScopeRootRule(t *testing.T) {
	// A scope applies the same rule with its own root: a sibling scope is an
	// escape even though it is inside the parent workspace.
	root := "/var/workspace/users/user1"
	for p, want := range map[string]string{
		"file.txt":                            "file.txt",
		"/file.txt":                           "file.txt",
		"/var/workspace/users/user1/file.txt": "file.txt",
		"/var/workspace/users/user2/file.txt": "var/workspace/users/user2/file.txt",
	} {
		if got, ok := Resolve(root, p); !ok || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", p, got, ok, want)
		}
	}
	if _, ok := Resolve(root, "../user2/secret"); ok {
		t.Error("../user2/secret from a scope must be an escape")
	}
}

func TestJoin(t *testing.T) {
	for _, c := range []struct{ root, rel, want string }{
		{"/var/ws", ".", "/var/ws"},
		{"/var/ws", "a/b", "/var/ws/a/b"},
		{"/", ".", "/"},
		{"/", "a", "/a"},
	} {
		if got := Join(c.root, c.rel); got != c.want {
			t.Errorf("Join(%q, %q) = %q, want %q", c.root, c.rel, got, c.want)
		}
	}
	for _, c := range []struct{ a, b, want string }{
		{".", "x", "x"}, {"a", ".", "a"}, {"a", "b/c", "a/b/c"}, {".", ".", "."},
	} {
		if got := JoinRel(c.a, c.b); got != c.want {
			t.Errorf("JoinRel(%q, %q) = %q, want %q", c.a, c.b, got, c.want)
		}
	}
}

func TestValidScope(t *testing.T) {
	for p, want := range map[string]string{
		"users/u1": "users/u1", "/users/u1/": "users/u1", "": ".", ".": ".", "a/./b": "a/b", "..x": "..x",
	} {
		if got, ok := ValidScope(p); !ok || got != want {
			t.Errorf("ValidScope(%q) = %q, %v; want %q", p, got, ok, want)
		}
	}
	for _, p := range []string{"..", "a/..", "a/../b", "../x", "/../x", "a/b/../../.."} {
		if _, ok := ValidScope(p); ok {
			t.Errorf("ValidScope(%q) accepted a traversal", p)
		}
	}
}

// FuzzResolve checks the jail's one promise: whatever the input, an accepted
// path stays inside the root and comes back clean and relative.
// Seeds live in testdata/fuzz/FuzzResolve.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{"a", "../x", "/etc/passwd", "/ws/../x", "a/../../b", "./.././", "//ws//a"} {
		f.Add("/ws", s)
	}
	f.Fuzz(func(t *testing.T, root, p string) {
		root = Clean(root)
		rel, ok := Resolve(root, p)
		if !ok {
			return
		}
		if rel == "" || strings.HasPrefix(rel, "/") || path.Clean(rel) != rel {
			t.Fatalf("Resolve(%q, %q) = %q: not clean and relative", root, p, rel)
		}
		for elem := range strings.SplitSeq(rel, "/") {
			if elem == ".." {
				t.Fatalf("Resolve(%q, %q) = %q: contains ..", root, p, rel)
			}
		}
		abs := Join(root, rel)
		if abs != root && !strings.HasPrefix(abs, strings.TrimSuffix(root, "/")+"/") {
			t.Fatalf("Resolve(%q, %q) -> %q is outside the root", root, p, abs)
		}
		// Resolving the result again must be stable (the resolved form can
		// travel down through layers without changing meaning).
		if again, ok := Resolve(root, rel); !ok || again != rel {
			t.Fatalf("Resolve is not idempotent on %q: %q, %v", rel, again, ok)
		}
		if scoped, ok := ValidScope(p); ok {
			if strings.HasPrefix(scoped, "..") && (scoped == ".." || strings.HasPrefix(scoped, "../")) {
				t.Fatalf("ValidScope(%q) = %q escapes", p, scoped)
			}
		}
	})
}
