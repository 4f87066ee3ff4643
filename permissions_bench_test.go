package agentbackend_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	ab "github.com/agentbackend/agentbackend"
)

// benchPermissions is a 50-rule policy of the kind agents get: the secrets
// list, build outputs, vendored code, a few exact files and globs.
func benchPermissions() *ab.Permissions {
	p := ab.DefaultPermissions() // 28 secret patterns on every file access
	extra := []ab.Rule{
		{Pattern: "build/**", Action: ab.Deny}, {Pattern: "dist/**", Action: ab.Deny},
		{Pattern: "**/node_modules/**", Action: ab.Deny}, {Pattern: "vendor/**", Action: ab.Deny},
		{Pattern: "**/*.min.js", Action: ab.Deny}, {Pattern: "docs/private/**", Action: ab.Ask},
		{Pattern: "config/prod.yaml", Action: ab.Deny}, {Pattern: "**/*.sqlite", Action: ab.Deny},
		{Pattern: "**/*.{bak,orig}", Action: ab.Deny}, {Pattern: "data/**/*.csv", Action: ab.Ask},
		{Pattern: "**/.cache/**", Action: ab.Deny}, {Pattern: "tmp/*", Action: ab.Deny},
		{Pattern: "**/secrets/**", Action: ab.Deny}, {Pattern: "**/*_rsa", Action: ab.Deny},
		{Pattern: "infra/**/terraform.tfvars", Action: ab.Deny}, {Pattern: "**/credentials*", Action: ab.Deny},
		{Pattern: "**/*password*", Action: ab.Deny}, {Pattern: "**/*.crt", Action: ab.Deny},
		{Pattern: "logs/**", Action: ab.Ask}, {Pattern: "**/coverage/**", Action: ab.Deny},
		{Pattern: "release/*.tar.gz", Action: ab.Deny}, {Pattern: "**/[Tt]humbs.db", Action: ab.Deny},
	}
	p.Read.Rules = append(p.Read.Rules, extra...)[:50]
	return p
}

// BenchmarkScopedReadPolicy: a Read through a scope with a 50-rule read
// policy (sdk) beside the same Read through a scope with none (raw), on a
// memory backend, where a Read costs little more than the policy, and on a
// local one, where the symbolic-link check (one openat2) comes on top.
func BenchmarkScopedReadPolicy(b *testing.B) {
	ctx := context.Background()
	if n := len(benchPermissions().Read.Rules); n != 50 {
		b.Fatalf("%d rules", n)
	}
	mem, _ := ab.NewMemory(ab.MemoryConfig{})
	defer mem.Close()
	mem.Write(ctx, "src/pkg/handler.go", make([]byte, 4096))
	run := func(b *testing.B, backend ab.FileBackend, p *ab.Permissions) {
		s, err := backend.Scope(".", &ab.ScopeConfig{Permissions: p})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Read(ctx, "src/pkg/handler.go"); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("raw", func(b *testing.B) { run(b, mem, nil) })
	b.Run("sdk", func(b *testing.B) { run(b, mem, benchPermissions()) })
}

// BenchmarkScopedReadPolicyLocal is the same on a local backend: sdk adds
// the policy and the symbolic-link check.
func BenchmarkScopedReadPolicyLocal(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	os.MkdirAll(filepath.Join(dir, "src/pkg"), 0o755)
	os.WriteFile(filepath.Join(dir, "src/pkg/handler.go"), make([]byte, 4096), 0o644)
	local, err := ab.NewLocal(ab.LocalConfig{RootDir: dir, Isolation: ab.IsolationNone})
	if err != nil {
		b.Fatal(err)
	}
	defer local.Close()
	run := func(b *testing.B, p *ab.Permissions) {
		s, err := local.Scope(".", &ab.ScopeConfig{Permissions: p})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Read(ctx, "src/pkg/handler.go"); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("raw", func(b *testing.B) { run(b, nil) })
	b.Run("sdk", func(b *testing.B) { run(b, benchPermissions()) })
}
