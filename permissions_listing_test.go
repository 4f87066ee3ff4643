package agentbackend_test

import (
	"context"
	"slices"
	"testing"

	ab "github.com/agentbackend/agentbackend"
)

// Listings and searches leave out what is denied, show what would ask,
// and never prompt.
func TestPermissionFilteredListings(t *testing.T) {
	ctx := context.Background()
	for _, pb := range permBackends() {
		t.Run(pb.name, func(t *testing.T) {
			b, at := pb.make(t)
			seed(t, b, at, map[string]string{
				"src/a.go": "needle", "src/.env": "needle", "src/private/p.go": "needle", "src/vendor/v.go": "needle",
				"src/ask.go": "needle", "src/z.go": "needle",
			})
			approver := &countingApprover{dec: ab.AllowOnce}
			s := permScope(t, b, at, &ab.Permissions{
				Read:     ab.Policy{Rules: []ab.Rule{{Pattern: "**/.env", Action: ab.Deny}, {Pattern: "src/ask.go", Action: ab.Ask}}},
				List:     ab.Policy{Rules: []ab.Rule{{Pattern: "src/private/**", Action: ab.Deny}}},
				Search:   ab.Policy{Rules: []ab.Rule{{Pattern: "src/vendor/**", Action: ab.Deny}}},
				Approver: approver,
			})
			names, err := s.ReadDir(ctx, "src")
			if want := []string{"a.go", "ask.go", "vendor", "z.go"}; err != nil || !slices.Equal(names, want) {
				t.Errorf("ReadDir = %q %v, want %q", names, err, want)
			}
			infos, err := s.ReadDirInfo(ctx, "src")
			if err != nil || len(infos) != 4 {
				t.Errorf("ReadDirInfo = %v %v", infos, err)
			}
			entries, err := ab.Ls(ctx, s, "src", true)
			if err != nil || len(entries) != 4 {
				t.Errorf("Ls = %v %v", entries, err)
			}
			all, err := ab.Glob(ctx, s, "**", "src")
			if want := []string{"a.go", "ask.go", "vendor", "vendor/v.go", "z.go"}; err != nil || !slices.Equal(all, want) {
				t.Errorf("Glob(**) = %q %v, want %q", all, err, want)
			}
			_, err = s.ReadDir(ctx, "src/private")
			wantDenied(t, err, "ReadDir of a denied directory")
			res, err := ab.Grep(ctx, s, ab.GrepOptions{Pattern: "needle", Hidden: true})
			if want := []string{"src/a.go", "src/z.go"}; err != nil || !slices.Equal(res.Files, want) {
				t.Errorf("Grep = %q %v, want %q (no ask, no denied read or search)", res.Files, err, want)
			}
			for _, mode := range []ab.GrepMode{ab.GrepContent, ab.GrepCount} {
				res, err := ab.Grep(ctx, s, ab.GrepOptions{Pattern: "needle", Hidden: true, Mode: mode, HeadLimit: 1})
				if err != nil || !res.Truncated || len(res.Files) != 2 || len(res.Lines)+len(res.Counts) != 1 {
					t.Errorf("Grep %s with HeadLimit 1 = %+v %v", mode, res, err)
				}
				for _, l := range res.Lines {
					if l.Path != "src/a.go" {
						t.Errorf("Grep content line from %s", l.Path)
					}
				}
			}
			res, err = ab.Grep(ctx, s, ab.GrepOptions{Pattern: "needle", Hidden: true, HeadLimit: 1})
			if err != nil || !slices.Equal(res.Files, []string{"src/a.go"}) || !res.Truncated {
				t.Errorf("Grep with HeadLimit counts only what is kept: %+v %v", res, err)
			}
			if approver.calls.Load() != 0 {
				t.Errorf("listings prompted %d times", approver.calls.Load())
			}
			// An "allow always" lets the asking file into searches.
			approver.dec = ab.AllowAlways
			if _, err := s.Read(ctx, "src/ask.go"); err != nil {
				t.Fatal(err)
			}
			res, _ = ab.Grep(ctx, s, ab.GrepOptions{Pattern: "needle", Hidden: true})
			if !slices.Contains(res.Files, "src/ask.go") {
				t.Errorf("Grep after allow-always = %q, want src/ask.go", res.Files)
			}
		})
	}
}

// A tree operation cannot carry away what a rule protects inside it.
func TestPermissionTreeOperations(t *testing.T) {
	ctx := context.Background()
	for _, pb := range permBackends() {
		t.Run(pb.name, func(t *testing.T) {
			b, at := pb.make(t)
			seed(t, b, at, map[string]string{"cfg/.env": "S", "cfg/app.yaml": "a", "tmp/x.txt": "x", "keep/a": "a"})
			s := permScope(t, b, at, &ab.Permissions{
				Read:   ab.Policy{Rules: []ab.Rule{{Pattern: "**/.env", Action: ab.Deny}}},
				Delete: ab.Policy{Rules: []ab.Rule{{Pattern: "keep/a", Action: ab.Deny}}},
				Write:  ab.Policy{Rules: []ab.Rule{{Pattern: "locked/**", Action: ab.Deny}}},
			})
			wantDenied(t, s.Rename(ctx, "cfg", "public"), "Rename of a directory holding a denied file")
			wantDenied(t, s.Rename(ctx, "cfg/.env", "cfg/env.txt"), "Rename of a file that cannot be read")
			wantDenied(t, s.Remove(ctx, "keep", ab.RemoveOptions{Recursive: true}), "recursive Remove over a protected file")
			wantDenied(t, s.Rename(ctx, "keep", "kept"), "Rename moving a protected file away")
			wantDenied(t, s.Rename(ctx, "tmp", "locked"), "Rename into a denied place")
			wantAllowed(t, s.Remove(ctx, "tmp", ab.RemoveOptions{Recursive: true}), "recursive Remove of a free tree")
			wantAllowed(t, s.Rename(ctx, "cfg/app.yaml", "app.yaml"), "Rename of a free file")
			check, _ := b.Scope(at, nil)
			defer check.Close()
			for _, p := range []string{"cfg/.env", "keep/a"} {
				if ok, _ := check.Exists(ctx, p); !ok {
					t.Errorf("%s is gone", p)
				}
			}
		})
	}
}
