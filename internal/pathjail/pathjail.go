// Package pathjail is the one implementation of the agent-backend path rule
// (spec/paths.md). Every backend, every scope and the daemon resolve paths
// through it, so a path means the same thing everywhere.
//
// Paths are POSIX: slash-separated, with "/" as the only separator. Results
// are clean and relative to the root ("." is the root itself); they never
// start with "/" and never contain a ".." element.
package pathjail

import (
	"path"
	"strings"
)

// Resolve applies the three-case rule to p against root and returns p's
// clean path relative to root:
//
//  1. relative ("a/b", ".", ""): joined to root;
//  2. absolute and inside root ("/ws/a" with root "/ws"): used as is;
//  3. absolute elsewhere ("/etc/passwd"): leading slashes stripped, then
//     treated as relative ("etc/passwd").
//
// root must be absolute and clean (path.Clean). ok is false when the cleaned
// result would leave root ("../x", "a/../../x", "/ws/../y").
func Resolve(root, p string) (rel string, ok bool) {
	if strings.HasPrefix(p, "/") {
		if within, inside := cutRoot(root, p); inside {
			p = within
		} else {
			p = strings.TrimLeft(p, "/")
		}
	}
	rel = path.Clean(p) // returns p itself, without allocating, when p is clean
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return rel, true
}

// cutRoot returns the part of absolute path p below root, without leading
// slashes, when p is root itself or starts with root followed by "/".
func cutRoot(root, p string) (string, bool) {
	if root == "/" {
		return strings.TrimLeft(p, "/"), true
	}
	rest, found := strings.CutPrefix(p, root)
	if !found || (rest != "" && rest[0] != '/') {
		return "", false
	}
	return strings.TrimLeft(rest, "/"), true
}

// Join returns the absolute path of rel (as returned by Resolve) under root.
func Join(root, rel string) string {
	switch {
	case rel == "." || rel == "":
		return root
	case root == "/":
		return "/" + rel
	default:
		return root + "/" + rel
	}
}

// JoinRel joins two root-relative paths as returned by Resolve ("." for the
// root) into one root-relative path.
func JoinRel(base, rel string) string {
	switch {
	case base == "." || base == "":
		return rel
	case rel == "." || rel == "":
		return base
	default:
		return base + "/" + rel
	}
}

// ValidScope reports whether p may name a scope: after the leading slashes
// are stripped it must not contain a ".." element, so "a/.." (which cleans
// to the root) and "a/../b" are refused like the daemon refuses them. It
// returns the clean relative form ("." for the whole workspace).
func ValidScope(p string) (rel string, ok bool) {
	p = strings.TrimLeft(p, "/")
	for elem := range strings.SplitSeq(p, "/") {
		if elem == ".." {
			return "", false
		}
	}
	return path.Clean(p), true
}

// Clean returns the clean absolute POSIX form of a root directory: "/" for
// an empty root, a leading "/" added when missing.
func Clean(root string) string {
	if !strings.HasPrefix(root, "/") {
		root = "/" + root
	}
	return path.Clean(root)
}
