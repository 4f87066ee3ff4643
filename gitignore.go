package agentbackend

import (
	"bytes"
	"context"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// ignoreFiles are the files whose rules Grep honours, as ripgrep does. A
// directory's rules apply below it; deeper files override shallower ones and
// later rules override earlier ones in the same file.
var ignoreFiles = []string{".gitignore", ".ignore"}

// ignoreRules is the rules of one directory, linked to its parent's.
type ignoreRules struct {
	base   string // the directory the rules belong to, root-relative
	rules  []ignoreRule
	parent *ignoreRules
}

// ignoreRule is one line of a gitignore file.
type ignoreRule struct {
	pattern  string // doublestar pattern
	negate   bool   // "!pattern": re-include
	dirOnly  bool   // "pattern/": directories only
	anchored bool   // contains a slash: matched against the path below base, else against the name
}

// loadIgnores returns ign extended with the ignore files among a
// directory's entries, or ign itself when there are none.
func loadIgnores(ctx context.Context, d treeDir, rel string, entries []FileInfo, ign *ignoreRules) *ignoreRules {
	var rules []ignoreRule
	for _, fi := range entries {
		if fi.IsDir || (fi.Name != ignoreFiles[0] && fi.Name != ignoreFiles[1]) {
			continue
		}
		data, err := d.read(ctx, fi.Name, nil)
		if err != nil {
			continue
		}
		rules = append(rules, parseIgnore(data)...)
	}
	if len(rules) == 0 {
		return ign
	}
	return &ignoreRules{base: rel, rules: rules, parent: ign}
}

// parseIgnore parses gitignore syntax: blank lines and # comments skipped,
// trailing unescaped spaces trimmed, "\" escapes a leading # or !, "!"
// negates, a trailing "/" matches directories only, and a slash elsewhere
// anchors the pattern to the file's directory.
func parseIgnore(data []byte) []ignoreRule {
	var rules []ignoreRule
	for line := range bytes.Lines(data) {
		s := strings.TrimRight(string(line), "\r\n")
		for strings.HasSuffix(s, " ") && !strings.HasSuffix(s, `\ `) {
			s = s[:len(s)-1]
		}
		if s == "" || s[0] == '#' {
			continue
		}
		var r ignoreRule
		if s[0] == '!' {
			r.negate, s = true, s[1:]
		} else if strings.HasPrefix(s, `\#`) || strings.HasPrefix(s, `\!`) {
			s = s[1:]
		}
		if strings.HasSuffix(s, "/") {
			r.dirOnly, s = true, strings.TrimRight(s, "/")
		}
		if strings.Contains(s, "/") {
			r.anchored, s = true, strings.TrimPrefix(s, "/")
		}
		if s == "" || !doublestar.ValidatePattern(s) {
			continue
		}
		r.pattern = s
		rules = append(rules, r)
	}
	return rules
}

// ignored reports whether the entry at rel (root-relative) is ignored.
func (ign *ignoreRules) ignored(rel string, isDir bool) bool {
	for r := ign; r != nil; r = r.parent {
		below, ok := belowDir(r.base, rel)
		if !ok {
			continue
		}
		name := below[strings.LastIndexByte(below, '/')+1:]
		// The last matching rule of the deepest file that has one decides.
		for i := len(r.rules) - 1; i >= 0; i-- {
			rule := r.rules[i]
			if rule.dirOnly && !isDir {
				continue
			}
			subject := name
			if rule.anchored {
				subject = below
			}
			if match, _ := doublestar.Match(rule.pattern, subject); match {
				return !rule.negate
			}
		}
	}
	return false
}

// belowDir returns rel relative to dir when rel is inside it.
func belowDir(dir, rel string) (string, bool) {
	if dir == "." {
		return rel, true
	}
	rest, ok := strings.CutPrefix(rel, dir+"/")
	return rest, ok
}
