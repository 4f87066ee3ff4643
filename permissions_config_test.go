package agentbackend_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	ab "github.com/agentbackend/agentbackend"
)

// Invalid permissions are refused when the scope is made, naming the field.
func TestPermissionValidation(t *testing.T) {
	b := newMemory(t)
	for _, c := range []struct {
		p    *ab.Permissions
		want string
	}{
		{&ab.Permissions{Read: ab.Policy{Default: "maybe"}}, "read.default"},
		{&ab.Permissions{Write: ab.Policy{Rules: []ab.Rule{{Pattern: "a", Action: "allow"}, {Pattern: "[", Action: ab.Deny}}}}, "write.rules[1].pattern"},
		{&ab.Permissions{Exec: ab.Policy{Rules: []ab.Rule{{Pattern: "re:(", Action: ab.Deny}}}}, "exec.rules[0].pattern"},
		{&ab.Permissions{Delete: ab.Policy{Rules: []ab.Rule{{Pattern: "a"}}}}, "delete.rules[0].action"},
		{&ab.Permissions{List: ab.Policy{Rules: []ab.Rule{{Pattern: "secrets/", Action: ab.Deny}}}}, "secrets/**"},
		{&ab.Permissions{AskFallback: "panic"}, "askFallback"},
	} {
		_, err := b.Scope("x", &ab.ScopeConfig{Permissions: c.p})
		if !errors.Is(err, ab.ErrInvalidConfiguration) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Scope with %+v: %v, want INVALID_CONFIGURATION naming %s", c.p, err, c.want)
		}
	}
}

func TestPermissionsFromJSON(t *testing.T) {
	p, err := ab.PermissionsFromJSON([]byte(`{
		"read":  {"rules": [{"pattern": "**/.env", "action": "deny", "reason": "secrets"}]},
		"write": {"default": "deny", "rules": [{"pattern": "src/**", "action": "allow"}]},
		"exec":  {"default": "ask", "rules": [{"pattern": "go test *", "action": "allow"}]},
		"askFallback": "error"}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Write.Default != ab.Deny || p.Read.Rules[0].Reason != "secrets" || p.Exec.Rules[0].Pattern != "go test *" || p.AskFallback != ab.FallbackError {
		t.Errorf("decoded %+v", p)
	}
	for _, c := range []struct{ json, want string }{
		{`{"raed": {}}`, `unknown field "raed"`},
		{`{"read": {"rules": [{"pattern": "a", "action": "alow"}]}}`, `read.rules[0].action: invalid action "alow"`},
		{`{"read": {"rules": [{"pattern": "[", "action": "deny"}]}}`, `read.rules[0].pattern`},
		{`{"read": {"rules": {"pattern": "a"}}}`, `read.rules: got a JSON object, want an array`},
		{`{"read": {"default": 1}}`, `read.default: got a JSON number, want a string`},
		{`{"read": `, `unexpected EOF`},
		{`{} {}`, `unexpected data`},
	} {
		_, err := ab.PermissionsFromJSON([]byte(c.json))
		if !errors.Is(err, ab.ErrInvalidConfiguration) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("PermissionsFromJSON(%s): %v, want INVALID_CONFIGURATION with %q", c.json, err, c.want)
		}
	}
}

// AccessDenied answers for the whole chain; tools under ReadOnly lose exec
// and write.
func TestAccessDenied(t *testing.T) {
	b := newMemory(t)
	if ab.AccessDenied(b, ab.AccessExec) {
		t.Error("a backend denies nothing")
	}
	ro := permScope(t, b, ".", ab.ReadOnlyPermissions())
	child, _ := ro.Scope("x", &ab.ScopeConfig{Permissions: ab.DefaultPermissions()})
	defer child.Close()
	for _, s := range []*ab.ScopedBackend{ro, child} {
		for a, want := range map[Access]bool{ab.AccessExec: true, ab.AccessWrite: true, ab.AccessDelete: true, ab.AccessRead: false, ab.AccessList: false, ab.AccessSearch: false} {
			if got := ab.AccessDenied(s, a); got != want {
				t.Errorf("AccessDenied(%s, %s) = %v, want %v", s.Path(), a, got, want)
			}
		}
	}
	strict := permScope(t, b, ".", ab.StrictPermissions())
	if ab.AccessDenied(strict, ab.AccessExec) {
		t.Error("Strict asks for exec: not denied")
	}
}

// A scope whose permissions allow everything costs nothing and checks
// nothing; the zero value and Permissive are the same.
func TestPermissivePermissions(t *testing.T) {
	ctx := context.Background()
	b := newMemory(t)
	seed(t, b, ".", map[string]string{".env": "s"})
	for _, p := range []*ab.Permissions{{}, ab.PermissivePermissions()} {
		s := permScope(t, b, ".", p)
		if _, err := s.Read(ctx, ".env"); err != nil {
			t.Errorf("Read under %+v: %v", p, err)
		}
	}
	c := ab.DefaultPermissions().Clone()
	c.Read.Rules = nil
	if len(ab.DefaultPermissions().Read.Rules) == 0 {
		t.Error("Clone shares rules with the preset")
	}
}
