package agentbackend

import (
	"context"
	"slices"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// globTree matches pattern against every path below dir in t.
func globTree(ctx context.Context, t tree, pattern, dir string) ([]string, error) {
	pattern = strings.TrimPrefix(pattern, "./")
	if pattern == "" || strings.HasPrefix(pattern, "/") || !doublestar.ValidatePattern(pattern) {
		return nil, errArgument("glob", dir, "invalid glob pattern %q: use a pattern relative to the directory, like *.go, src/**/*.ts or {a,b}/*.md", pattern)
	}
	start, fi, err := startDir(ctx, t, "glob", dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir {
		return nil, errArgument("glob", dir, "%s is not a directory", dir)
	}
	var found resultSet[string]
	relToStart := func(rel string) string {
		below, _ := belowDir(start, rel)
		return below
	}
	match := func(rel string) {
		p := relToStart(rel)
		if ok, _ := doublestar.Match(pattern, p); ok {
			found.add(p)
		}
	}
	prune := newGlobPruner(pattern)
	err = walk(ctx, t, start, walkOptions{
		hidden:   true,
		noIgnore: true,
		descend:  func(rel string) bool { return prune.mayContain(relToStart(rel)) },
		file: func(_ context.Context, _ treeDir, rel string, _ FileInfo) error {
			match(rel)
			return nil
		},
		dir: func(rel string, _ FileInfo) error {
			match(rel)
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(found.items)
	return found.items, nil
}

// globPruner decides which directories a pattern can reach into, so a walk
// for src/*.go never lists anything outside src.
type globPruner struct {
	segments []string // the pattern's path segments up to its first "**"
	deep     bool     // the pattern has a "**": any depth below the segments
	off      bool     // pruning disabled (a brace holds a slash)
}

func newGlobPruner(pattern string) globPruner {
	if strings.ContainsAny(pattern, "{") && braceHoldsSlash(pattern) {
		return globPruner{off: true}
	}
	var p globPruner
	for seg := range strings.SplitSeq(pattern, "/") {
		if seg == "**" {
			p.deep = true
			break
		}
		p.segments = append(p.segments, seg)
	}
	return p
}

// mayContain reports whether a match can lie inside dir (relative to the
// glob's start).
func (p globPruner) mayContain(dir string) bool {
	if p.off {
		return true
	}
	depth := 0
	for name := range strings.SplitSeq(dir, "/") {
		if depth == len(p.segments) {
			return p.deep
		}
		if ok, _ := doublestar.Match(p.segments[depth], name); !ok {
			return false
		}
		depth++
	}
	return depth < len(p.segments) || p.deep
}

func braceHoldsSlash(pattern string) bool {
	depth := 0
	for _, c := range pattern {
		switch c {
		case '{':
			depth++
		case '}':
			depth--
		case '/':
			if depth > 0 {
				return true
			}
		}
	}
	return false
}
